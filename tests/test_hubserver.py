"""tests/hubserver.py speaks the Hub's file protocol as huggingface_hub 2.x and timm read it.

Real HTTP on 127.0.0.1, the real huggingface_hub client, real weights (tests/hub_repos.py); no mocks. The one
stand-in: the persistent-500 test records huggingface_hub's backoff sleeps instead of sleeping them (23 s).
"""

from __future__ import annotations

import filecmp
import hashlib
import http.client
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_repos import (
    CUSTOM_CODE,
    LITE0,
    MINILM,
    MNV2,
    PICKLE_ONLY,
    lite0_model,
    photo_batch,
)
from hubserver import HubServer

TESTS = Path(__file__).resolve().parent
MiB = 1024 * 1024


def _files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _git_hash(data: bytes) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    return subprocess.run([git, "hash-object", "--stdin"], input=data, capture_output=True, check=True).stdout.decode().strip()


def _request(hub: HubServer, method: str, path: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection(hub.url.split("//", 1)[1], timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


@pytest.mark.parametrize("repo_id", [LITE0, MNV2, MINILM, PICKLE_ONLY, CUSTOM_CODE])
def test_snapshot_download_is_byte_identical(hub, real_repos, hf_cache, repo_id):
    from huggingface_hub import snapshot_download

    sha = hub.models[repo_id]["sha"]
    path = Path(snapshot_download(repo_id, endpoint=hub.url, cache_dir=hf_cache))
    assert path == hf_cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / sha
    got, want = _files(path), _files(real_repos[repo_id])
    assert sorted(got) == sorted(want)
    for name in want:
        assert filecmp.cmp(got[name], want[name], shallow=False), name
    # the cache's blobs are named by the ETag: sha256 for LFS files, the git blob id for the others
    entries = hub.entries(repo_id)
    blobs = {p.name for p in (path.parent.parent / "blobs").iterdir()}
    assert blobs == {e.sha256 if e.lfs else e.blob_id for e in entries.values()}
    assert (path.parent.parent / "refs" / "main").read_text() == sha

    # what huggingface_hub asked, in order: revision info, the recursive tree at the sha, then per file
    # a HEAD on resolve and a GET (LFS files: HEAD answers 302 and the GET goes to the CDN URL)
    log = [(m, p) for m, p, _ in hub.requests]
    assert log[:2] == [("GET", f"/api/models/{repo_id}/revision/main"), ("GET", f"/api/models/{repo_id}/tree/{sha}")]
    assert hub.requests[1][2] == {"recursive": ["true"], "expand": ["false"]}
    assert sorted(p for m, p in log[2:] if m == "HEAD") == sorted(f"/{repo_id}/resolve/{sha}/{f}" for f in want)
    gets = sorted(p for m, p in log[2:] if m == "GET")
    assert gets == sorted(f"/cdn-lfs/{repo_id}/{e.sha256}/{f}" if e.lfs else f"/{repo_id}/resolve/{sha}/{f}"
                          for f, e in entries.items())
    assert len(log) == 2 + 2 * len(want) and not hub.ranges


def test_rerun_uses_the_cache(hub, hf_cache):
    from huggingface_hub import snapshot_download

    sha = hub.models[MINILM]["sha"]
    first = snapshot_download(MINILM, endpoint=hub.url, cache_dir=hf_cache)
    hub.requests.clear()
    assert snapshot_download(MINILM, endpoint=hub.url, cache_dir=hf_cache) == first
    assert hub.paths() == [f"/api/models/{MINILM}/revision/main"] and not hub.paths("HEAD")  # tree cached on disk
    hub.requests.clear()
    assert snapshot_download(MINILM, revision=sha, endpoint=hub.url, cache_dir=hf_cache) == first
    assert hub.requests == []  # a commit sha with everything cached: no request at all


def test_model_info_tree_and_paths_info(hub, real_repos):
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile, RepoFolder
    from safetensors import safe_open

    api = HfApi(endpoint=hub.url)
    info = api.model_info(LITE0, files_metadata=True)
    assert hub.requests[-1][2] == {"blobs": ["true"]}  # what files_metadata=True sends
    assert info.id == LITE0 and info.sha == hub.models[LITE0]["sha"] and len(info.sha) == 40
    assert (info.library_name, info.pipeline_tag) == ("timm", "image-classification")
    assert {"timm", "safetensors", "image-classification"} <= set(info.tags)
    assert info.card_data["license"] == "apache-2.0"
    folder = real_repos[LITE0]
    sib = {s.rfilename: s for s in info.siblings}
    assert sorted(sib) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    weights = (folder / "model.safetensors").read_bytes()
    st = sib["model.safetensors"]
    assert st.size == len(weights) and st.lfs.sha256 == hashlib.sha256(weights).hexdigest() and st.lfs.size == len(weights)
    config = (folder / "config.json").read_bytes()
    assert sib["config.json"].lfs is None and sib["config.json"].size == len(config)
    if (git := _git_hash(config)) is not None:  # ids are real git ids: a blob, and for LFS files the pointer's blob
        assert sib["config.json"].blob_id == git
        pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{st.lfs.sha256}\n"
                   f"size {len(weights)}\n").encode()
        assert st.blob_id == _git_hash(pointer) and st.lfs.pointer_size == len(pointer)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        n_params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    assert info.safetensors.total == n_params == sum(p.numel() for p in lite0_model().state_dict().values())
    assert info.safetensors.parameters == {"F32": n_params - 49, "I64": 49}  # the BatchNorms' num_batches_tracked
    plain = api.model_info(LITE0)
    assert [s.size for s in plain.siblings] == [None] * 4  # sizes only when asked with blobs=true

    mini = api.model_info(MINILM)
    assert mini.config["model_type"] == "bert" and mini.library_name == "sentence-transformers"
    custom = api.model_info(CUSTOM_CODE)
    assert "custom_code" in custom.tags and custom.config["auto_map"]["AutoModel"].startswith("modeling_zoo_custom.")
    assert "pytorch" in api.model_info(PICKLE_ONLY).tags

    tree = list(api.list_repo_tree(MINILM, recursive=True))
    assert [t.path for t in tree if isinstance(t, RepoFolder)] == ["1_Pooling"]
    files = {t.path: t for t in tree if isinstance(t, RepoFile)}
    assert sorted(files) == sorted(_files(real_repos[MINILM]))
    assert files["model.safetensors"].lfs is not None and files["tokenizer.json"].lfs is None
    assert files["tokenizer.json"].size == (real_repos[MINILM] / "tokenizer.json").stat().st_size
    top = [t.path for t in api.list_repo_tree(MINILM)]
    assert "1_Pooling" in top and "1_Pooling/config.json" not in top
    assert [t.path for t in api.list_repo_tree(MINILM, path_in_repo="1_Pooling")] == ["1_Pooling/config.json"]
    hub.tree_page_size = 4  # pagination through Link headers, as huggingface_hub follows it
    hub.requests.clear()
    assert [t.path for t in api.list_repo_tree(MINILM, recursive=True)] == [t.path for t in tree]
    assert len(hub.paths()) == -(-len(tree) // 4)
    assert api.list_repo_files(MINILM) == sorted(files, key=lambda p: p.split("/"))
    got = api.get_paths_info(MINILM, ["1_Pooling", "modules.json", "no/such.file"])
    assert [(type(g).__name__, g.path) for g in got] == [("RepoFolder", "1_Pooling"), ("RepoFile", "modules.json")]
    assert api.file_exists(MINILM, "modules.json") and not api.file_exists(MINILM, "pytorch_model.bin")
    assert api.repo_exists(MINILM) and not api.repo_exists("nobody/nothing")


def test_resolve_headers_and_ranges(hub, real_repos):
    sha = hub.models[MINILM]["sha"]
    data = (real_repos[MINILM] / "tokenizer.json").read_bytes()
    resp, body = _request(hub, "HEAD", f"/{MINILM}/resolve/main/tokenizer.json")
    assert resp.status == 200 and body == b""
    assert resp.getheader("X-Repo-Commit") == sha and resp.getheader("Accept-Ranges") == "bytes"
    blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's id of the file
    assert resp.getheader("ETag") == f'"{blob_id}"'
    assert int(resp.getheader("Content-Length")) == len(data) and resp.getheader("X-Xet-Hash") is None
    for rng, status, want, content_range in [
        ("bytes=0-9", 206, data[:10], f"bytes 0-9/{len(data)}"),
        ("bytes=100-", 206, data[100:], f"bytes 100-{len(data) - 1}/{len(data)}"),
        ("bytes=-7", 206, data[-7:], f"bytes {len(data) - 7}-{len(data) - 1}/{len(data)}"),
        (f"bytes={len(data)}-", 416, b"", f"bytes */{len(data)}"),
    ]:
        resp, body = _request(hub, "GET", f"/{MINILM}/resolve/{sha}/tokenizer.json", {"Range": rng})
        assert (resp.status, body, resp.getheader("Content-Range")) == (status, want, content_range), rng
    assert [r for _, _, r in hub.ranges] == ["bytes=0-9", "bytes=100-", "bytes=-7", f"bytes={len(data)}-"]

    # an LFS file: 302 to the CDN origin with the linked etag/size, as the real Hub answers
    weights = real_repos[MINILM] / "model.safetensors"
    entry = hub.entries(MINILM)["model.safetensors"]
    resp, _ = _request(hub, "HEAD", f"/{MINILM}/resolve/main/model.safetensors")
    assert resp.status == 302 and resp.getheader("X-Repo-Commit") == sha and resp.getheader("X-Xet-Hash") is None
    assert resp.getheader("X-Linked-Etag") == f'"{entry.sha256}"'
    assert int(resp.getheader("X-Linked-Size")) == weights.stat().st_size
    location = resp.getheader("Location")
    assert location.startswith(hub.cdn_url + "/cdn-lfs/") and not location.startswith(hub.url)
    resp, body = _request(hub, "GET", location.split(str(hub._httpd.server_address[1]), 1)[1], {"Range": "bytes=5-12"})
    with open(weights, "rb") as f:
        f.seek(5)
        assert (resp.status, body) == (206, f.read(8))


def test_cut_download_resumes_with_range_in_the_same_call(hub, real_repos, hf_cache, caplog):
    """huggingface_hub resumes within the same hf_hub_download call (after a 1 s pause), with a Range from
    the bytes it had written, which are whole 10 MiB chunks (constants.DOWNLOAD_CHUNK_SIZE)."""
    from huggingface_hub import hf_hub_download

    want = real_repos[MINILM] / "model.safetensors"
    size = want.stat().st_size
    hub.cut_next("/model.safetensors")  # half: 43 MiB -> 4 whole chunks written
    path = hf_hub_download(MINILM, "model.safetensors", endpoint=hub.url, cache_dir=hf_cache)
    assert filecmp.cmp(path, want, shallow=False)
    cdn = [p for p in hub.paths() if p.endswith("/model.safetensors")]
    assert len(cdn) == 2 and cdn[0] == cdn[1] and cdn[0].startswith("/cdn-lfs/")
    assert hub.ranges == [("GET", cdn[0], f"bytes={(size // 2) // (10 * MiB) * 10 * MiB}-")]
    assert hub.paths("HEAD") == [f"/{MINILM}/resolve/main/model.safetensors"]  # one call, one HEAD
    assert "Trying to resume download" in caplog.text
    assert not list(Path(path).parent.parent.parent.joinpath("blobs").glob("*.incomplete"))


def test_cut_before_first_chunk_restarts_without_range(real_repos, hf_cache):
    """With LFS served in place (lfs_redirect=False): a cut inside the first 10 MiB leaves nothing written,
    so the retry GETs the whole file again, with no Range."""
    from huggingface_hub import hf_hub_download

    with HubServer(lfs_redirect=False) as hub:
        hub.add_repo(LITE0, real_repos[LITE0])
        sha = hub.models[LITE0]["sha"]
        hub.cut_next("model.safetensors", at_bytes=3 * MiB)
        path = hf_hub_download(LITE0, "model.safetensors", endpoint=hub.url, cache_dir=hf_cache)
        assert filecmp.cmp(path, real_repos[LITE0] / "model.safetensors", shallow=False)
        assert hub.paths() == [f"/{LITE0}/resolve/main/model.safetensors"] * 2 and hub.ranges == []
        entry = hub.entries(LITE0)["model.safetensors"]
        resp, _ = _request(hub, "HEAD", f"/{LITE0}/resolve/{sha}/model.safetensors")
        assert (resp.status, resp.getheader("ETag"), resp.getheader("X-Linked-Etag")) == (200, f'"{entry.sha256}"', None)
        assert Path(path).resolve().name == entry.sha256


def test_errors_map_to_huggingface_hub_exceptions(hub, real_repos, hf_cache):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    api = HfApi(endpoint=hub.url)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "config.json", endpoint=hub.url, cache_dir=hf_cache)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("nobody/nothing", endpoint=hub.url, cache_dir=hf_cache)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(MNV2, "config.json", revision="v2.0", endpoint=hub.url, cache_dir=hf_cache)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(MNV2, revision="0" * 40, endpoint=hub.url, cache_dir=hf_cache)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(MNV2, "pytorch_model.bin", endpoint=hub.url, cache_dir=hf_cache)
    sha = hub.models[MNV2]["sha"]
    assert (hf_cache / f"models--{MNV2.replace('/', '--')}" / ".no_exist" / sha / "pytorch_model.bin").is_file()

    gated = "zoo-tests/gated-mobilenetv2"
    hub.add_repo(gated, real_repos[MNV2], library_name="timm", gated=True)
    assert api.model_info(gated).gated == "manual"  # info and file list stay public
    assert len(list(api.list_repo_tree(gated))) == 4
    assert Path(hf_hub_download(gated, "README.md", endpoint=hub.url, cache_dir=hf_cache)).is_file()
    with pytest.raises(GatedRepoError) as e:
        snapshot_download(gated, endpoint=hub.url, cache_dir=hf_cache)
    assert e.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as e:
        hf_hub_download(gated, "model.safetensors", endpoint=hub.url, cache_dir=hf_cache, token="hf_nope")
    assert e.value.response.status_code == 403
    hub.grant(gated, "hf_granted")
    path = snapshot_download(gated, endpoint=hub.url, cache_dir=hf_cache, token="hf_granted")
    assert filecmp.cmp(Path(path) / "model.safetensors", real_repos[MNV2] / "model.safetensors", shallow=False)

    hub.deny_repos[LITE0] = 403  # the existing switch: every request refused, info included
    with pytest.raises(GatedRepoError):
        api.model_info(LITE0)
    with pytest.raises(GatedRepoError):
        snapshot_download(LITE0, endpoint=hub.url, cache_dir=hf_cache)


class _SleepRecorder:
    """Stands in for the ``time`` module inside huggingface_hub.utils._http only: records backoff sleeps."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def __getattr__(self, name: str):
        return getattr(time, name)


def test_server_errors_and_huggingface_hub_retries(hub, hf_cache, monkeypatch):
    """What each entry point does with 500s (its retries are the client's, the server just answers 500)."""
    import huggingface_hub.utils._http as hf_http
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    clock = _SleepRecorder()
    monkeypatch.setattr(hf_http, "time", clock)
    api = HfApi(endpoint=hub.url)
    hub.fail_repos.add(MNV2)

    with pytest.raises(HfHubHTTPError) as e:  # model_info: no retry at all
        api.model_info(MNV2)
    assert e.value.response.status_code == 500 and len(hub.requests) == 1 and clock.sleeps == []

    hub.requests.clear()
    with pytest.raises(LocalEntryNotFoundError) as e:  # snapshot_download: repo_info fails once, nothing cached
        snapshot_download(MNV2, endpoint=hub.url, cache_dir=hf_cache)
    assert isinstance(e.value.__cause__, HfHubHTTPError) and e.value.__cause__.response.status_code == 500
    assert len(hub.requests) == 1 and clock.sleeps == []

    hub.requests.clear()
    with pytest.raises(LocalEntryNotFoundError) as e:  # hf_hub_download: one HEAD, then 1 + 5 retried HEADs
        hf_hub_download(MNV2, "config.json", endpoint=hub.url, cache_dir=hf_cache)
    assert isinstance(e.value.__cause__, HfHubHTTPError) and e.value.__cause__.response.status_code == 500
    assert hub.paths("HEAD") == [f"/{MNV2}/resolve/main/config.json"] * 7 and len(hub.requests) == 7
    assert clock.sleeps == [1, 2, 4, 8, 8]  # 23 s of backoff when not recorded

    hub.fail_repos.clear()
    hub.requests.clear()
    clock.sleeps.clear()
    hub.fail_next(2, f"/api/models/{MNV2}/tree/")  # transient: the tree listing retries through it
    hub.fail_next(1, f"/{MNV2}/resolve/")  # and the failed HEAD is asked again at once (no sleep)
    path = snapshot_download(MNV2, endpoint=hub.url, cache_dir=hf_cache)
    assert (Path(path) / "model.safetensors").is_file()
    assert len([p for p in hub.paths() if "/tree/" in p]) == 3 and len(hub.paths("HEAD")) == 4 + 1
    assert clock.sleeps == [1, 2]


def test_throttled_download(hub, real_repos, hf_cache):
    from huggingface_hub import hf_hub_download

    hub.slow_bytes_per_s = 2 * MiB
    start = time.monotonic()
    path = hf_hub_download(MINILM, "tokenizer.json", endpoint=hub.url, cache_dir=hf_cache)  # 455 KiB
    assert time.monotonic() - start >= 0.2
    assert filecmp.cmp(path, real_repos[MINILM] / "tokenizer.json", shallow=False)


def test_mobilenetv2_repo_matches_torchvision(real_repos):
    """The served MobileNetV2 repo, loaded as timm loads an HF folder, gives torchvision's logits."""
    import torch

    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import timm
    import torchvision
    from hub_repos import MNV2_WEIGHTS, _asset

    model = timm.create_model(f"local-dir:{real_repos[MNV2]}", pretrained=True).eval()
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(str(_asset(MNV2_WEIGHTS)), map_location="cpu", weights_only=True))
    x = photo_batch()
    with torch.no_grad():
        ours, theirs = model(x), reference.eval()(x)
    assert float((ours - theirs).abs().max()) < 1e-4
    assert 281 <= int(theirs.argmax()) <= 285  # ImageNet's cat classes: the photo is a cat


_TIMM_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from zoo._compat import ensure_torchvision
ensure_torchvision()
import timm, torch
from hub_repos import photo_batch
model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()
cfg = model.pretrained_cfg
with torch.no_grad():
    logits = model(photo_batch(224, cfg["mean"], cfg["std"]))[0]
print(json.dumps({{"logits": logits.tolist(), "hf_hub_id": cfg.get("hf_hub_id")}}))
"""


def test_timm_create_model_from_the_server(hub, tmp_path):
    """timm.create_model("hf-hub:...", pretrained=True) in a fresh process whose HF_ENDPOINT is the server
    (huggingface_hub reads HF_ENDPOINT at import), against the offline weights loaded here."""
    import torch

    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE", "HF_HOME")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-sub"), HF_HUB_DISABLE_TELEMETRY="1",
               OMP_NUM_THREADS="1")
    script = _TIMM_SCRIPT.format(tests=str(TESTS), repo=LITE0)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    sha = hub.models[LITE0]["sha"]
    log = [(m, p) for m, p, _ in hub.requests]
    entry = hub.entries(LITE0)["model.safetensors"]
    assert log == [("HEAD", f"/{LITE0}/resolve/main/config.json"), ("GET", f"/{LITE0}/resolve/main/config.json"),
                   ("HEAD", f"/{LITE0}/resolve/main/model.safetensors"),
                   ("GET", f"/cdn-lfs/{LITE0}/{entry.sha256}/model.safetensors")]
    snap = tmp_path / "hf-sub" / "hub" / f"models--{LITE0.replace('/', '--')}" / "snapshots" / sha
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "model.safetensors"]

    model = lite0_model()
    cfg = model.pretrained_cfg
    with torch.no_grad():
        want = model(photo_batch(224, cfg["mean"], cfg["std"]))[0]
    got = torch.tensor(out["logits"])
    assert float((got - want).abs().max()) < 1e-4
    assert 281 <= int(got.argmax()) <= 285  # a cat
