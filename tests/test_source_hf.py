"""The Hugging Face source against a local Hub-like HTTP server (tests/hubserver.py): real HTTP, no mocks."""

from __future__ import annotations

import socket

import pytest
from hubserver import HubServer

from zoo.errors import HubError
from zoo.record import ModelRecord
from zoo.sources import Failed, Unchanged
from zoo.sources.hf import card_prose, iter_records

CXR = "radiology-lab/vit-base-patch16-224-cxr"
BIOMED = "biomed-nlp/BiomedBERT-base-uncased-abstract-fulltext"
ST = "st-org/mpnet-base-sentence"
ASR = "speech-lab/wav2vec2-base-960h"
GATED = "bigvision/gated-vision-encoder"
TINY = "someone/resnet18-tiny"
FAST = {"retries": 2, "backoff": 0.01}


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Unset offline mode for this test only; keep every HF write under tmp_path."""
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored_tokens"))


@pytest.fixture
def hub(online):
    with HubServer(page_size=2) as server:
        yield server


def _by_id(items):
    return {it.id: it for it in items}


def _run(hub, **kw):
    return list(iter_records(endpoint=hub.url, **{**FAST, **kw}))


def test_records_parsed(hub):
    items = _by_id(_run(hub))
    assert len(items) == 6
    assert all(isinstance(r, ModelRecord) for r in items.values())
    for r in items.values():
        r.validate()
        assert r.weights == r.id and r.source == "hf"
        assert r.source_version == hub.url.split("//", 1)[1]
        assert r.revision == hub.models[r.name]["sha"]

    cxr = items[f"hf:{CXR}"]
    assert (cxr.modality, cxr.tasks, cxr.library) == ("image", ["image-classification"], "transformers")
    assert (cxr.license, cxr.license_class) == ("apache-2.0", "permissive")
    assert cxr.params == 85_812_238
    assert cxr.results == {"chexpert_auroc": 88.7}  # scores in percent (vocab.result_value)
    assert cxr.domains == ["medical-radiology"]
    assert cxr.pretraining_data == ["chexpert", "mimic-cxr", "in21k"]
    assert (cxr.downloads, cxr.likes, cxr.gated) == (15_234, 41, False)
    assert cxr.description.startswith("# ViT-Base chest X-ray classifier")
    assert "license:" not in cxr.description and "<!--" not in cxr.description and "![" not in cxr.description
    assert "fine-tuned on CheXpert" in cxr.description
    assert cxr.extra["pipeline_tag"] == "image-classification"
    assert cxr.extra["last_modified"].startswith("2024-11-20T08:00:00")
    assert cxr.extra["model_type"] == "vit"

    bio = items[f"hf:{BIOMED}"]
    assert (bio.modality, bio.tasks, bio.license_class) == ("text", ["fill-mask"], "permissive")
    assert bio.domains == ["biomedical-text"] and bio.pretraining_data == ["pubmed", "pmc"]

    st = items[f"hf:{ST}"]
    assert (st.modality, st.tasks, st.library) == ("text", ["sentence-embedding"], "sentence-transformers")
    assert st.pretraining_data == ["s2orc"]  # ms_marco / reddit have no vocab name: skipped, kept in extra
    assert st.extra["datasets"] == ["ms_marco", "sentence-transformers/reddit-title-body"]
    assert len(st.description) <= 2010 and st.description.endswith("…")

    asr = items[f"hf:{ASR}"]
    assert (asr.modality, asr.tasks) == ("audio", ["speech-recognition"])
    assert asr.results == {"librispeech_asr_clean_wer": 3.4, "librispeech_asr_other_wer": 8.6}
    assert asr.domains == ["speech"] and asr.pretraining_data == ["librispeech"]

    gated = items[f"hf:{GATED}"]
    assert gated.gated is True and gated.license_class == "non-commercial"
    assert (gated.modality, gated.tasks) == ("image", ["image-embedding"])
    assert gated.results == {"imagenet_top1": pytest.approx(84.2)} and gated.imagenet_top1 == pytest.approx(84.2)
    assert gated.domains == ["natural-images"]

    tiny = items[f"hf:{TINY}"]  # no card, no safetensors: fields stay empty, nothing guessed
    assert (tiny.description, tiny.params, tiny.results, tiny.domains) == ("", None, {}, ["general"])
    assert (tiny.library, tiny.license_class) == ("timm", "permissive")

    # metadata only: never a weights file
    assert not [p for p in hub.paths() + hub.paths("HEAD") if "/resolve/" in p and not p.endswith("/README.md")]


def test_pagination_followed(hub):
    _run(hub)
    listing = [q for (m, p, q) in hub.requests if p == "/api/models"]
    assert len(listing) == 3  # 6 models, 2 per page
    assert "cursor" not in listing[0] and all("cursor" in q for q in listing[1:])
    assert set(listing[0]["expand"]) == {"sha", "lastModified"}


def test_limit_and_filters_passed_through(hub):
    items = _run(hub, limit=3)
    assert len(items) == 3

    hub.requests.clear()
    items = _run(hub, task="image-classification", library="transformers")
    assert [r.id for r in items] == [f"hf:{CXR}"]
    q = [q for (_, p, q) in hub.requests if p == "/api/models"][0]
    assert q["pipeline_tag"] == ["image-classification"] and q["filter"] == ["transformers"]

    hub.requests.clear()
    items = _run(hub, author="speech-lab", search="wav2vec")
    assert [r.id for r in items] == [f"hf:{ASR}"]
    q = [q for (_, p, q) in hub.requests if p == "/api/models"][0]
    assert q["author"] == ["speech-lab"] and q["search"] == ["wav2vec"]

    # a zoo task name is translated to the Hub pipeline tag
    items = _run(hub, task="sentence-embedding")
    assert [r.id for r in items] == [f"hf:{ST}"]


def test_incremental_skip(hub):
    first = _by_id(_run(hub))
    known = {rid: r.revision for rid, r in first.items()}
    new_sha = hub.bump(ASR)
    hub.requests.clear()
    ticks = []
    second = _by_id(_run(hub, known_revisions=known, progress=ticks.append))
    assert sum(ticks) == 6
    assert isinstance(second[f"hf:{ASR}"], ModelRecord) and second[f"hf:{ASR}"].revision == new_sha
    assert all(isinstance(second[i], Unchanged) for i in known if i != f"hf:{ASR}")
    info_paths = [p for p in hub.paths() if p.startswith("/api/models/")]
    assert info_paths == [f"/api/models/{ASR}/revision/{new_sha}"]
    assert [p for p in hub.paths() if "/resolve/" in p] == [f"/{ASR}/resolve/{new_sha}/README.md"]


def test_explicit_ids_and_404_continues(hub):
    items = _run(hub, ids=[f"hf:{CXR}", "hf:nobody/missing-model", "hf:bad//id", ASR],
                 known_revisions={f"hf:{ASR}": hub.models[ASR]["sha"]})
    assert [type(i).__name__ for i in items] == ["ModelRecord", "Failed", "Failed", "Unchanged"]
    assert items[1].id == "hf:nobody/missing-model" and "404" in items[1].reason
    assert "not a valid Hub repo id" in items[2].reason
    assert not [p for p in hub.paths() if p == "/api/models"]  # no listing when ids are given


def test_listing_refused_raises(hub):
    with pytest.raises(HubError, match=r"refused the model listing \(404\)"):
        list(iter_records(endpoint=hub.url + "/not-a-hub", **FAST))


def test_gated_denied_is_failed(hub):
    hub.deny_repos[GATED] = 403
    items = _by_id(_run(hub))
    assert isinstance(items[f"hf:{GATED}"], Failed) and "403" in items[f"hf:{GATED}"].reason
    assert sum(isinstance(i, ModelRecord) for i in items.values()) == 5


def test_transient_500_retried(hub):
    hub.fail_next(2, prefix=f"/api/models/{BIOMED}")
    hub.fail_next(1, prefix=f"/{CXR}/resolve/")
    items = _by_id(_run(hub))
    assert all(isinstance(i, ModelRecord) for i in items.values())
    assert items[f"hf:{CXR}"].description
    assert len([p for p in hub.paths() if p.startswith(f"/api/models/{BIOMED}")]) == 3


def test_persistent_500_raises(hub):
    hub.fail_repos.add(ASR)
    with pytest.raises(HubError, match=r"HTTP 500 after 3 tries.*HF_ENDPOINT"):
        _run(hub)
    assert len([p for p in hub.paths() if p.startswith(f"/api/models/{ASR}")]) == 3


def test_connection_refused_raises(online):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(HubError, match="Check the network and the HF_ENDPOINT"):
        list(iter_records(endpoint=f"http://127.0.0.1:{port}", ids=["a/b"], **FAST))


def test_offline_mode_is_a_clear_error(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match=r"needs the network.*HF_HUB_OFFLINE"):
        list(iter_records(endpoint="http://127.0.0.1:9", ids=["a/b"]))


def test_server_works_with_hf_hub_download(hub, tmp_path):
    """The resolve endpoint has the headers huggingface_hub's file download needs."""
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(CXR, "README.md", endpoint=hub.url, cache_dir=tmp_path / "cache")
    with open(path, encoding="utf-8") as f:
        assert f.read().startswith("---\nlicense: apache-2.0")


def test_card_prose():
    assert card_prose("---\na: 1\n---\n\nHello <!-- x -->world\n\n\n\nBye") == "Hello world\n\nBye"
    assert card_prose("No front matter") == "No front matter"
    long = card_prose("word " * 1000, max_chars=100)
    assert len(long) <= 102 and long.endswith("…")


def test_cli_index_hf_end_to_end_and_incremental(hub, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from zoo.cli import cli

    monkeypatch.setenv("ZOO_DB", str(tmp_path / "user.db"))
    res = CliRunner().invoke(cli, ["index", "hf", "--endpoint", hub.url, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["added"] == 6 and summary["failed"] == 0
    shown = json.loads(CliRunner().invoke(cli, ["show", f"hf:{CXR}", "--json"]).output)
    assert shown["modality"] == "image" and shown["source"] == "hf"
    hub.requests.clear()
    again = json.loads(CliRunner().invoke(cli, ["index", "hf", "--endpoint", hub.url, "--json"]).output)
    assert again["unchanged"] == 6 and again["added"] == again["updated"] == 0
    assert not [p for p in hub.paths() if p.startswith(f"/api/models/{CXR}")]


def test_persistent_server_error_rolls_the_run_back(hub, tmp_path):
    from zoo import api

    db = tmp_path / "user.db"
    api.index("hf", db=db, endpoint=hub.url, ids=[CXR], **FAST)
    with api.open_registry(db) as reg:
        before = reg.conn.execute("SELECT id, revision, content_hash FROM main.models").fetchall()
    hub.bump(CXR)  # the failing run would have updated this one
    hub.fail_repos.add(BIOMED)
    with pytest.raises(HubError):
        api.index("hf", db=db, endpoint=hub.url, **FAST)
    with api.open_registry(db) as reg:
        after = reg.conn.execute("SELECT id, revision, content_hash FROM main.models").fetchall()
        assert [tuple(r) for r in after] == [tuple(r) for r in before]
        assert reg.conn.execute("SELECT count(*) FROM main.index_runs").fetchone()[0] == 1
