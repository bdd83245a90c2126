"""zoo.shift with REAL offline-zoo weights: BN statistics of CNNs, vocabulary coverage of text encoders."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo import shift as zs
from zoo.data import load_sample
from zoo.errors import UsageError
from zoo.sources.manifest import iter_records
from zoo.weights import is_available

ROOT = Path(__file__).resolve().parents[1]
RECORDS = {r.id: r for r in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml")}
MOBILENET = RECORDS["local:mobilenet_v2.tv_in1k"]
CIFAR = RECORDS["local:cifar_resnet20.c10"]
XCEPTION = RECORDS["local:mini_xception.fer2013"]
GLOVE = RECORDS["local:glove-6b-50d.avg"]
MINILM = RECORDS["local:all-MiniLM-L6-v2"]
TEXT_DIR = ROOT.parent / "shared" / "data" / "text"


def needs(record):
    return pytest.mark.skipif(not is_available(record.weights), reason=f"{record.id} weights not on this machine")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------------- data


def _photo_crops(folder: Path, n: int = 16, labelled: bool = False) -> Path:
    """Random crops of scikit-image's natural photos (astronaut, coffee, chelsea, rocket), as JPEG files."""
    skd = pytest.importorskip("skimage.data")
    photos = [skd.astronaut(), skd.coffee(), skd.chelsea(), skd.rocket()]
    rng = np.random.default_rng(0)
    for i in range(n):
        a = photos[i % len(photos)]
        h, w = a.shape[:2]
        s = int(min(h, w) * rng.uniform(0.4, 0.8))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        target = folder / f"c{i % 2}" if labelled else folder
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a[y:y + s, x:x + s]).save(target / f"{i:03d}.jpg", quality=95)
    return folder


def _mnist(folder: Path, n: int = 16) -> Path:
    sys.path.insert(0, str(ROOT))
    from benchmarks.datasets import load

    x, _, _, _ = load("mnist5k", 0)
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(x[i]).save(folder / f"{i:03d}.png")
    return folder


def _noise(folder: Path, n: int = 16, side: int = 96) -> Path:
    rng = np.random.default_rng(7)  # not the anchor's seed: different noise images
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def _english(n: int = 120) -> list[str]:
    """Sentences of the shared Subj file (one "label text" line each), the labels dropped."""
    path = TEXT_DIR / "subj.all"
    if not path.is_file():
        pytest.skip(f"{path} not on this machine")
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.split(" ", 1)[1].strip() for _, line in zip(range(n), f, strict=False)]


def _random_strings(n: int = 120) -> list[str]:
    rng = np.random.default_rng(11)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    return [" ".join("".join(rng.choice(letters, int(rng.integers(2, 9)))) for _ in range(8)) for _ in range(n)]


def _csv(path: Path, texts: list[str], labels: list[str] | None = None) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"] if labels else ["text"])
        w.writerows(zip(texts, labels, strict=True) if labels else [[t] for t in texts])
    return path


# ---------------------------------------------------------------------------------------- images


@needs(MOBILENET)
def test_mobilenet_natural_photos_closer_than_digits_and_noise(tmp_path):
    nat = zs.domain_shift(MOBILENET, load_sample(_photo_crops(tmp_path / "nat")), device="cpu")
    digits = zs.domain_shift(MOBILENET, load_sample(_mnist(tmp_path / "mnist")), device="cpu")
    noise = zs.domain_shift(MOBILENET, load_sample(_noise(tmp_path / "noise")), device="cpu")
    for r in (nat, digits, noise):
        assert r.method == "bn-hellinger" and r.model_id == MOBILENET.id and not r.cached
        assert 0.0 <= r.value <= 1.0 and r.raw > 0 and r.n_items == 16 and r.reason == ""
        assert r.detail["layers"] == 52 and r.detail["anchor_raw"] > 0 and r.detail["skipped"] == 0
    assert nat.value < digits.value and nat.value < noise.value
    assert nat.level == "near" and digits.level == "far" and noise.level == "far"
    # the anchor is the same model's statistics on noise: value and raw agree on it
    assert nat.value == pytest.approx(nat.raw / nat.detail["anchor_raw"])


@needs(CIFAR)
def test_cifar_resnet_orders_photos_digits_noise_and_is_deterministic(tmp_path):
    nat_sample = load_sample(_photo_crops(tmp_path / "nat"))
    nat = zs.domain_shift(CIFAR, nat_sample, device="cpu")
    digits = zs.domain_shift(CIFAR, load_sample(_mnist(tmp_path / "mnist")), device="cpu")
    noise = zs.domain_shift(CIFAR, load_sample(_noise(tmp_path / "noise")), device="cpu")
    assert nat.value < digits.value < noise.value
    again = zs.domain_shift(CIFAR, nat_sample, device="cpu", cache=False)
    assert not again.cached and again.value == pytest.approx(nat.value, rel=1e-9, abs=1e-12)
    assert again.raw == pytest.approx(nat.raw, rel=1e-9, abs=1e-12)


@needs(CIFAR)
def test_cache_hit_and_unlabelled_equals_labelled(tmp_path, _cache):
    unlabelled = load_sample(_photo_crops(tmp_path / "flat"))
    assert unlabelled.task == "unlabelled"
    first = zs.domain_shift(CIFAR, unlabelled, device="cpu")
    files = sorted(p.name for p in (_cache / "shift").glob("*.json"))
    assert any(f.startswith("anchor-") for f in files) and any(not f.startswith("anchor-") for f in files)
    t = time.perf_counter()
    hit = zs.domain_shift(CIFAR, unlabelled, device="cpu")
    assert hit.cached and time.perf_counter() - t < 1.0
    assert (hit.value, hit.raw, hit.method, hit.n_items) == (first.value, first.raw, first.method, first.n_items)
    assert hit.detail["most_shifted_layers"] == first.detail["most_shifted_layers"]
    # the same images in class folders: labels are not used, so the value is the same
    labelled = load_sample(_photo_crops(tmp_path / "classes", labelled=True))
    assert labelled.task == "classification"
    assert zs.domain_shift(CIFAR, labelled, device="cpu").value == pytest.approx(first.value, rel=1e-6)


@needs(CIFAR)
def test_max_items_takes_a_seeded_subset(tmp_path):
    sample = load_sample(_photo_crops(tmp_path / "nat", n=12))
    a = zs.domain_shift(CIFAR, sample, device="cpu", max_items=5)
    b = zs.domain_shift(CIFAR, sample, device="cpu", max_items=5, cache=False)
    assert a.n_items == b.n_items == 5 and a.value == pytest.approx(b.value, rel=1e-9)
    assert zs.domain_shift(CIFAR, sample, device="cpu", max_items=12).n_items == 12
    with pytest.raises(UsageError):
        zs.domain_shift(CIFAR, sample, max_items=0)


@needs(XCEPTION)
def test_grayscale_face_model_faces_closer_than_noise(tmp_path):
    skd = pytest.importorskip("skimage.data")
    faces = skd.lfw_subset()[:16]
    (tmp_path / "faces").mkdir()
    for i, f in enumerate(faces):
        Image.fromarray((f * 255).astype(np.uint8), mode="L").save(tmp_path / "faces" / f"{i}.png")
    near = zs.domain_shift(XCEPTION, load_sample(tmp_path / "faces"), device="cpu")
    far = zs.domain_shift(XCEPTION, load_sample(_noise(tmp_path / "noise")), device="cpu")
    assert near.method == far.method == "bn-hellinger"
    assert near.value < far.value and near.level == "near"


def test_image_model_without_batchnorm_is_unavailable(tmp_path):
    import torch

    from zoo.backbones import LoadedBackbone, image_transform, register_adapter
    from zoo.record import ModelRecord

    @register_adapter("test_shift_groupnorm")
    def _load(record, *, device):  # a real torch network, normalised per sample (no running statistics)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.GroupNorm(2, 8), torch.nn.AdaptiveAvgPool2d(1),
                                    torch.nn.Flatten()).eval()
        pre = image_transform([3, 16, 16], [0.5] * 3, [0.5] * 3, crop_pct=1.0)
        return LoadedBackbone(record=record, model=model, head=None, preprocess=pre, feature_dim=8, trainable=True,
                              _features_fn=lambda x: model(x).numpy())

    rec = ModelRecord(id="local:test-groupnorm-net", modality="image", library="test_shift_groupnorm")
    res = zs.domain_shift(rec, load_sample(_noise(tmp_path / "noise", n=4, side=16)), device="cpu")
    assert res.value is None and res.raw is None and res.method == "unavailable"
    assert "BatchNorm" in res.reason and res.level is None


def test_array_sample_is_unavailable_and_wrong_modality_is_an_error(tmp_path):
    np.savez(tmp_path / "f.npz", x=np.random.default_rng(0).normal(size=(10, 4)))
    res = zs.domain_shift(CIFAR, load_sample(tmp_path / "f.npz"))
    assert res.value is None and res.method == "unavailable" and "precomputed" in res.reason
    texts = load_sample(_csv(tmp_path / "t.csv", ["a sentence", "another one"]))
    with pytest.raises(UsageError, match="text data"):
        zs.domain_shift(CIFAR, texts)


# ---------------------------------------------------------------------------------------- text


@pytest.mark.parametrize("record", [GLOVE, MINILM], ids=["glove", "minilm"])
def test_text_english_near_random_strings_far(record, tmp_path):
    if not is_available(record.weights):
        pytest.skip(f"{record.id} weights not on this machine")
    english = load_sample(_csv(tmp_path / "en.csv", _english()))
    assert english.task == "unlabelled"
    random = load_sample(_csv(tmp_path / "rnd.csv", _random_strings()))
    en = zs.domain_shift(record, english, device="cpu")
    rnd = zs.domain_shift(record, random, device="cpu")
    assert en.method == rnd.method == "vocab-oov"
    assert en.value < zs.NEAR <= zs.FAR <= rnd.value <= 1.0
    assert en.level == "near" and rnd.level == "far"
    assert en.detail["words"] > 1000 and 0 < en.detail["anchor_raw"] <= 1
    again = zs.domain_shift(record, english, device="cpu")
    assert again.cached and again.value == en.value
    # labels change nothing but the cache key
    labelled = load_sample(_csv(tmp_path / "lab.csv", _english(), ["a", "b"] * 60))
    assert zs.domain_shift(record, labelled, device="cpu").value == pytest.approx(en.value)


@needs(MINILM)
def test_text_without_words_is_unavailable(tmp_path):
    res = zs.domain_shift(MINILM, load_sample(_csv(tmp_path / "n.csv", ["12 345", "6,78 9", "1 2 3"])))
    assert res.value is None and res.method == "unavailable" and "no words" in res.reason


def test_levels():
    r = zs.ShiftResult("local:x", 0.1, 0.01, "bn-hellinger")
    assert r.level == "near" and r.to_dict()["level"] == "near"
    assert zs.ShiftResult("local:x", 0.3, 0.03, "bn-hellinger").level == "moderate"
    assert zs.ShiftResult("local:x", 0.5, 0.05, "bn-hellinger").level == "far"


def test_importing_shift_and_language_does_not_import_torch():
    import subprocess

    code = ("import sys, zoo.shift, zoo.language; "
            "bad = [m for m in ('torch', 'torchvision', 'timm', 'transformers', 'py3langid') if m in sys.modules]; "
            "print(*bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
