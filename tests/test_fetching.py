"""zoo.fetching without the network: sizes, what a loader needs, loadability, complete snapshots."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from zoo.errors import UsageError
from zoo.fetching import FetchPolicy, parse_size
from zoo.loadable import loadable_reason, wanted_files
from zoo.weights import local_snapshot, snapshot_complete


def test_parse_size_reads_units_and_refuses_nonsense():
    assert parse_size("10GB") == 10 * 10**9
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("1.5G") == 1_500_000_000
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_size("750k") == 750_000
    assert parse_size("123") == 123
    assert parse_size("none") is None
    with pytest.raises(UsageError, match="not a size"):
        parse_size("ten gigs")


def test_max_download_default_reads_the_environment(monkeypatch):
    monkeypatch.setenv("ZOO_MAX_DOWNLOAD", "2MB")
    assert FetchPolicy.make(True).max_bytes == 2_000_000
    monkeypatch.delenv("ZOO_MAX_DOWNLOAD")
    assert FetchPolicy.make(True).max_bytes == 10 * 10**9
    assert FetchPolicy.make(True, max_download="none").max_bytes is None


def test_wanted_files_prefers_safetensors_and_skips_other_formats():
    repo = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
            "tokenizer.json", "vocab.txt", "README.md", "onnx/model.onnx", "preprocessor_config.json"]
    files, why = wanted_files("transformers", repo)
    assert why is None
    assert set(files) == {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "preprocessor_config.json"}


def test_wanted_files_takes_every_shard():
    repo = ["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors", "pytorch_model-00001-of-00002.bin"]
    files, why = wanted_files("transformers", repo)
    assert why is None and "pytorch_model-00001-of-00002.bin" not in files
    assert {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} <= set(files)


def test_pickle_only_repo_is_refused_unless_allowed():
    repo = ["config.json", "pytorch_model.bin"]
    files, why = wanted_files("timm", repo)
    assert files == [] and "--allow-pickle" in why and "weights_only=True" in why
    files, why = wanted_files("timm", repo, allow_pickle=True)
    assert why is None and files == ["config.json", "pytorch_model.bin"]


def test_repo_without_loadable_weights_says_what_it_has():
    files, why = wanted_files("transformers", ["config.json", "tf_model.h5"])
    assert files == [] and "tf_model.h5" in why
    files, why = wanted_files("timm", ["model.safetensors"])
    assert files == [] and "config.json" in why


def test_sentence_transformers_takes_module_folders():
    repo = ["modules.json", "config_sentence_transformers.json", "sentence_bert_config.json", "config.json",
            "model.safetensors", "1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors",
            "tokenizer.json", "onnx/model.onnx", "openvino/openvino_model.xml"]
    files, why = wanted_files("sentence-transformers", repo)
    assert why is None
    assert {"modules.json", "1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors",
            "model.safetensors"} <= set(files)
    assert not any(f.startswith(("onnx/", "openvino/")) for f in files)


def _rec(**kw):
    base = dict(id="hf:org/m", library="transformers", modality="text", weights="hf:org/m", architecture=None, extra={})
    return SimpleNamespace(**{**base, **kw})


def test_loadable_reason_names_library_modality_and_url_weights():
    assert loadable_reason(_rec()) is None
    assert "no loader for library 'other'" in loadable_reason(_rec(library="other"))
    assert "audio model" in loadable_reason(_rec(modality="audio"))
    url = loadable_reason(_rec(library="timm", modality="image", weights="url:https://example.org/w.pth"))
    assert "release URL" in url


def test_catalog_counts_loadable_records():
    import zoo

    s = zoo.stats()
    assert 0 < s.loadable < s.total
    assert s.loadable + sum(s.not_loadable.values()) == s.total
    assert s.not_loadable.get("weights only at a release URL", 0) > 0


def _snapshot(tmp_path, repo: str, commit: str, files: dict[str, bytes], ref: str | None = "main"):
    base = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
    snap = base / "snapshots" / commit
    for name, data in files.items():
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).write_bytes(data)
    if ref:
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / ref).write_text(commit)
    return snap


def test_snapshot_complete_needs_config_and_every_shard(tmp_path):
    snap = _snapshot(tmp_path, "o/a", "a" * 40, {"config.json": b"{}"})
    assert not snapshot_complete(snap)  # an interrupted fetch: the config, no weights
    (snap / "model.safetensors").write_bytes(b"x")
    assert snapshot_complete(snap)
    shards = _snapshot(tmp_path, "o/b", "b" * 40, {"config.json": b"{}", "model-1.safetensors": b"x"})
    (shards / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}))
    assert not snapshot_complete(shards)
    (shards / "model-2.safetensors").write_bytes(b"y")
    assert snapshot_complete(shards)


def test_local_snapshot_follows_the_ref_and_ignores_incomplete(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    old = _snapshot(tmp_path, "o/m", "1" * 40, {"config.json": b"{}", "model.safetensors": b"old"}, ref=None)
    new = _snapshot(tmp_path, "o/m", "2" * 40, {"config.json": b"{}"}, ref="main")  # main points at a partial one
    assert local_snapshot("hf:o/m") == old  # the complete one, not the partial one main names
    (new / "model.safetensors").write_bytes(b"new")
    assert local_snapshot("hf:o/m") == new
    assert local_snapshot("hf:o/m@" + "1" * 40) == old
    assert local_snapshot("hf:o/other") is None


def test_no_fetch_policy_says_the_fix(monkeypatch):
    from zoo.errors import WeightsUnavailable

    policy = FetchPolicy(enabled=False)
    rec = _rec(id="timm:x", library="timm", modality="image", weights="hf:timm/not-cached-anywhere")
    with pytest.raises(WeightsUnavailable, match="--no-fetch"):
        policy.ensure(rec)
    with pytest.raises(WeightsUnavailable, match="HF_HUB_OFFLINE"):  # the tests run offline
        FetchPolicy().ensure(rec)
