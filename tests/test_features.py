"""zoo.features with REAL offline-zoo models: CIFAR ResNet-20 on digit PNGs, MiniLM on texts."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_digits
from PIL import Image

from zoo import features as zf
from zoo.cli.cache_cmd import cache as cache_group
from zoo.data import load_sample
from zoo.errors import UsageError
from zoo.sources.manifest import iter_records
from zoo.weights import is_available

MANIFEST = Path(__file__).resolve().parents[1] / "zoo" / "manifests" / "offline.yaml"
RECORDS = {r.id: r for r in iter_records(MANIFEST)}
CIFAR = RECORDS["local:cifar_resnet20.c10"]
MINILM = RECORDS["local:all-MiniLM-L6-v2"]

needs_cifar = pytest.mark.skipif(not is_available(CIFAR.weights), reason="CIFAR ResNet-20 weights not on this machine")
needs_minilm = pytest.mark.skipif(not is_available(MINILM.weights), reason="all-MiniLM-L6-v2 not installed")

TEXTS = [
    ("A man is playing a guitar.", "music"), ("Someone strums an acoustic guitar.", "music"),
    ("The band played all night.", "music"), ("The new tax law takes effect next year.", "law"),
    ("Parliament changed the income tax rules.", "law"), ("The court ruled on the contract.", "law"),
]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _texts_csv(path: Path, rows=TEXTS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


@pytest.fixture
def digits(tmp_path):
    return load_sample(write_digits(tmp_path / "digits", per_class=10))


@needs_cifar
def test_images_extract_cache_and_recompute(digits, tmp_path):
    first = zf.extract(CIFAR, digits)
    assert first.features.shape == (30, CIFAR.feature_dim) and first.features.dtype == np.float32
    assert np.isfinite(first.features).all() and not first.cached
    assert first.seconds > 0 and 0 < first.decode_seconds < first.seconds
    assert first.device in ("cpu", "cuda") and first.data_hash == digits.content_hash
    assert first.key == zf.feature_key(CIFAR, digits)
    # rows follow the sample order: a feature row of one image equals the backbone's own output
    from zoo.backbones import load_backbone

    lb = load_backbone(CIFAR, device="cpu")
    with Image.open(digits.items[7]) as im:
        ref = lb.features([lb.preprocess(im.convert("L"))])[0]
    np.testing.assert_allclose(first.features[7], ref, rtol=1e-4, atol=1e-4)

    t = time.perf_counter()
    second = zf.extract(CIFAR, digits)
    elapsed = time.perf_counter() - t
    assert second.cached and second.seconds == 0 and second.key == first.key
    np.testing.assert_array_equal(second.features, first.features)
    assert elapsed < first.seconds / 3

    info = zf.cache_info()
    assert len(info) == 1 and info[0]["model_id"] == CIFAR.id and (info[0]["n"], info[0]["d"]) == (30, 64)
    assert info[0]["bytes"] > 30 * 64 * 4 and info[0]["data_hash"] == digits.content_hash
    assert not list(zf.features_dir().glob("*.tmp")) and not list(zf.features_dir().glob(".*"))

    # a truncated array is detected and recomputed
    npy = zf.features_dir() / f"{first.key}.npy"
    npy.write_bytes(npy.read_bytes()[:300])
    third = zf.extract(CIFAR, digits)
    assert not third.cached
    np.testing.assert_allclose(third.features, first.features, rtol=1e-5, atol=1e-5)
    assert zf.extract(CIFAR, digits).cached  # and rewritten

    # cache=False neither reads nor writes
    assert not zf.extract(CIFAR, digits, cache=False, batch_size=7).cached
    assert len(zf.cache_info()) == 1


@needs_cifar
def test_key_changes_with_data_and_preprocessing(digits, tmp_path):
    key = zf.feature_key(CIFAR, digits)
    assert key == zf.feature_key(CIFAR, load_sample(digits.source))  # stable
    # a changed label: move one image to another class
    other = write_digits(tmp_path / "moved", per_class=10)
    (other / "0" / "0.png").rename(other / "1" / "moved.png")
    assert zf.feature_key(CIFAR, load_sample(other)) != key
    # a changed image
    changed = write_digits(tmp_path / "changed", per_class=10)
    Image.fromarray(np.full((8, 8), 200, np.uint8), mode="L").save(changed / "2" / "3.png")
    assert zf.feature_key(CIFAR, load_sample(changed)) != key
    # different preprocessing or model
    assert zf.feature_key(dataclasses.replace(CIFAR, input_size=[3, 40, 40]), digits) != key
    assert zf.feature_key(dataclasses.replace(CIFAR, mean=[0.5, 0.5, 0.5]), digits) != key
    assert zf.feature_key(dataclasses.replace(CIFAR, id="local:cifar_resnet20.copy"), digits) != key


@needs_cifar
@needs_minilm
def test_text_into_image_model_is_a_usage_error(tmp_path):
    texts = load_sample(_texts_csv(tmp_path / "t.csv"))
    with pytest.raises(UsageError, match="text model") as e:
        zf.extract(CIFAR, texts)
    assert "--modality text" in str(e.value) and MINILM.id in str(e.value)


@needs_minilm
def test_texts_extract_and_cache(tmp_path, capsys):
    sample = load_sample(_texts_csv(tmp_path / "t.csv"))
    first = zf.extract(MINILM, sample, batch_size=4, progress=True)
    assert f"features {MINILM.id}" in capsys.readouterr().err  # the tqdm bar, on stderr
    assert first.features.shape == (len(TEXTS), MINILM.feature_dim) and np.isfinite(first.features).all()
    assert first.decode_seconds == 0 and not first.cached
    f = first.features / np.linalg.norm(first.features, axis=1, keepdims=True)
    sims = f @ f.T
    assert sims[0, 1] > sims[0, 4]  # guitar sentences closer than guitar vs tax
    second = zf.extract(MINILM, sample)
    assert second.cached and second.seconds == 0
    np.testing.assert_array_equal(second.features, first.features)
    relabelled = load_sample(_texts_csv(tmp_path / "u.csv", [(t, "x" if lab == "music" else "y") for t, lab in TEXTS]))
    assert zf.feature_key(MINILM, relabelled) != first.key


def test_arrays_are_their_own_features(tmp_path):
    x = np.random.default_rng(0).normal(size=(12, 2, 3)).astype(np.float64)
    np.savez(tmp_path / "emb.npz", x=x, y=np.repeat([0, 1, 2], 4))
    sample = load_sample(tmp_path / "emb.npz")
    out = zf.extract(MINILM, sample)
    assert out.features.shape == (12, 6) and out.features.dtype == np.float32
    np.testing.assert_allclose(out.features, x.reshape(12, 6).astype(np.float32))
    assert zf.cache_info() == []


def _fake_entry(key: str, model_id: str, n: int = 4, d: int = 3) -> None:
    zf._write(key, np.zeros((n, d), np.float32), {"key": key, "model_id": model_id, "data_hash": "abc",
                                                  "n": n, "d": d, "created": "2026-01-01T00:00:00+00:00"})


def test_clear_cache_and_cli():
    _fake_entry("a" * 64, CIFAR.id)
    _fake_entry("b" * 64, MINILM.id)
    _fake_entry("c" * 64, MINILM.id)
    runner = CliRunner()
    res = runner.invoke(cache_group, ["show", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["count"] == 3 and {e["model_id"] for e in doc["entries"]} == {CIFAR.id, MINILM.id}
    assert doc["total_bytes"] == sum(e["bytes"] for e in doc["entries"]) > 0
    res = runner.invoke(cache_group, ["show"])
    assert res.exit_code == 0 and "4×3" in res.output and "total: 3" in res.output

    res = runner.invoke(cache_group, ["clear", "--model", MINILM.id], input="n\n")
    assert res.exit_code != 0 and len(zf.cache_info()) == 3  # declined
    res = runner.invoke(cache_group, ["clear", "--model", MINILM.id, "--yes"])
    assert res.exit_code == 0 and "Removed 2" in res.output
    assert [e["model_id"] for e in zf.cache_info()] == [CIFAR.id]
    res = runner.invoke(cache_group, ["clear", "--yes"])
    assert res.exit_code == 0 and "Removed 1" in res.output
    assert zf.cache_info() == [] and not list(zf.features_dir().iterdir())
    assert zf.clear_cache() == 0


def test_clear_cache_by_model():
    _fake_entry("d" * 64, CIFAR.id)
    _fake_entry("e" * 64, MINILM.id)
    assert zf.clear_cache("local:nothing") == 0
    assert zf.clear_cache(CIFAR.id) == 1
    assert [e["model_id"] for e in zf.cache_info()] == [MINILM.id]
    assert zf.clear_cache() == 1


@needs_cifar
def test_thread_count_follows_zoo_num_threads(digits, monkeypatch):
    import torch

    monkeypatch.setenv("ZOO_NUM_THREADS", "1")
    before = torch.get_num_threads()
    out = zf.extract(CIFAR, digits, cache=False, device="cpu")  # torch threads are a CPU setting
    assert out.threads == 1 and out.forward_seconds > 0 and out.load_seconds > 0
    assert torch.get_num_threads() == before  # restored after the extraction
    monkeypatch.setenv("ZOO_NUM_THREADS", "many")
    with pytest.raises(UsageError, match="ZOO_NUM_THREADS"):
        zf.extract(CIFAR, digits, cache=False, device="cpu")


@needs_cifar
def test_several_decode_workers_keep_the_row_order(digits, monkeypatch):
    one = zf.extract(CIFAR, digits, cache=False, batch_size=4, device="cpu")
    monkeypatch.setenv("ZOO_DECODE_WORKERS", "3")  # several, as on a GPU; forced here on the CPU
    three = zf.extract(CIFAR, digits, cache=False, batch_size=4, device="cpu")
    np.testing.assert_array_equal(one.features, three.features)
    assert 0 < three.decode_seconds < three.seconds
    monkeypatch.setenv("ZOO_DECODE_WORKERS", "0")
    with pytest.raises(UsageError, match="ZOO_DECODE_WORKERS"):
        zf.extract(CIFAR, digits, cache=False, device="cpu")


def test_decode_workers_default_to_several_only_for_large_inputs_on_a_gpu(monkeypatch):
    monkeypatch.delenv("ZOO_DECODE_WORKERS", raising=False)
    monkeypatch.setattr(zf.os, "cpu_count", lambda: 16)
    assert zf.decode_workers("cpu", 224) == 1 and zf.decode_workers("cuda", 32) == 1
    assert zf.decode_workers("cuda", 224) == 4 and zf.decode_workers("cuda:1", 128) == 4
    monkeypatch.setattr(zf.os, "cpu_count", lambda: 3)
    assert zf.decode_workers("cuda", 224) == 2
    monkeypatch.setenv("ZOO_DECODE_WORKERS", "4")
    assert zf.decode_workers("cpu", 32) == 4


@needs_cifar
def test_decoding_overlaps_and_results_do_not_depend_on_the_batch_size(digits):
    a = zf.extract(CIFAR, digits, cache=False, batch_size=4)  # 8 decode batches, prefetched one ahead
    b = zf.extract(CIFAR, digits, cache=False, batch_size=64)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)
    assert a.decode_seconds > 0 and a.forward_seconds > 0


def test_gpu_extraction_runs_in_ieee_float32_and_restores_the_setting():
    """TF32 convolutions moved CIFAR ResNet-20 features by 1e-3 on an H100; extraction turns them off."""
    import torch

    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    conv.fp32_precision = "tf32"
    try:
        with zf.inference_settings("cpu"):
            assert conv.fp32_precision == "tf32"  # the CPU path leaves CUDA settings alone
        with zf.inference_settings("cuda"):  # the flags are plain settings: no GPU needed to read them
            assert conv.fp32_precision == "ieee" and torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert conv.fp32_precision == "tf32"
    finally:
        conv.fp32_precision = before
