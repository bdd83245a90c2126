"""Source classification heads (for LEEP/NCE) with REAL offline-zoo weights.

Every check compares zoo's probabilities with the ORIGINAL network run independently: the full CIFAR
ResNet with its linear layer, the Keras face model rebuilt with its own softmax output, torchvision's
MobileNetV2 and timm's EfficientNet-Lite with their 1000-way classifiers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from zoo._compat import ensure_torchvision  # noqa: E402

ensure_torchvision()

import torch  # noqa: E402
from helpers import write_digits  # noqa: E402
from PIL import Image  # noqa: E402

from zoo import backbones as bb  # noqa: E402
from zoo import features as zf  # noqa: E402
from zoo.backbones.checkpoints import _load_state_dict  # noqa: E402
from zoo.data import load_sample  # noqa: E402
from zoo.record import ModelRecord  # noqa: E402
from zoo.source_heads import CIFAR10_LABELS, NoSourceHead, softmax, source_head_status  # noqa: E402
from zoo.sources.manifest import iter_records  # noqa: E402
from zoo.weights import is_available  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[1] / "zoo" / "manifests" / "offline.yaml"
RECORDS = {r.id: r for r in iter_records(MANIFEST)}
CIFAR = RECORDS["local:cifar_resnet20.c10"]
FER = RECORDS["local:mini_xception.fer2013"]
MINILM = RECORDS["local:all-MiniLM-L6-v2"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _needs(rec: ModelRecord):
    return pytest.mark.skipif(not is_available(rec.weights), reason=f"{rec.id} weights not on this machine")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _faces(root: Path, per_class: int = 8) -> Path:
    skdata = pytest.importorskip("skimage.data", reason="scikit-image provides the face images")
    imgs = skdata.lfw_subset()  # 100 faces then 100 non-faces, 25x25 grayscale in [0, 1]
    for name, block in (("face", imgs[:per_class]), ("other", imgs[100:100 + per_class])):
        (root / name).mkdir(parents=True)
        for i, img in enumerate(block):
            Image.fromarray((img * 255).astype(np.uint8), mode="L").save(root / name / f"{i}.png")
    return root


def _gray_pngs_as_rgb_tensors(paths: list[str], size: int, mean, std) -> torch.Tensor:
    """The CIFAR ResNets' input built by hand (not through zoo): gray -> RGB, bilinear resize, normalise."""
    from torchvision import transforms as T

    tfm = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BILINEAR), T.ToTensor(), T.Normalize(mean, std)])
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(tfm(im.convert("RGB")))
    return torch.stack(out)


# ------------------------------------------------------------------ static knowledge


def test_status_from_the_record_alone():
    assert source_head_status(CIFAR).has_head is True
    assert source_head_status(FER).has_head is True
    assert source_head_status(RECORDS["local:mobilenet_v2.tv_in1k"]).has_head is True
    assert source_head_status(RECORDS["local:efficientnet_lite0.in1k"]).has_head is None  # timm: known once loaded
    for rid in ("local:all-MiniLM-L6-v2", "local:paraphrase-MiniLM-L3-v2.onnx", "local:glove-6b-50d.avg"):
        st = source_head_status(RECORDS[rid])
        assert st.has_head is False and "no source head" in st.reason and "LEEP" in st.reason, rid


def test_softmax_rows_sum_to_one_even_for_huge_logits():
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 1.0, 1.0]], dtype=np.float32))
    assert p.dtype == np.float32 and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(p[1], 1 / 3, atol=1e-6)


# ------------------------------------------------------------------ CIFAR ResNet-20 (CIFAR-10 head)


@_needs(CIFAR)
def test_cifar_probs_match_the_original_network(tmp_path):
    from zoo.nets.cifar_resnet import cifar_resnet

    sample = load_sample(write_digits(tmp_path / "digits", per_class=8))
    out = zf.extract(CIFAR, sample, with_source_probs=True, batch_size=10)
    n = len(sample)
    assert out.features.shape == (n, 64) and out.source_probs.shape == (n, 10)
    assert out.source_probs.dtype == np.float32 and out.source_classes == 10
    assert out.source_labels == list(CIFAR10_LABELS) and out.source_note == ""
    np.testing.assert_allclose(out.source_probs.sum(1), 1.0, atol=1e-5)

    full = cifar_resnet(20, checkpoint=str(bb.resolve_weights(CIFAR))).eval()  # with its own linear layer
    x = _gray_pngs_as_rgb_tensors(sample.items, 32, CIFAR.mean, CIFAR.std)
    with torch.no_grad():
        logits = full(x).numpy()
        feats = full.forward_features(x).numpy()
    assert (out.source_probs.argmax(1) == logits.argmax(1)).all()
    np.testing.assert_allclose(out.source_probs, softmax(logits), atol=1e-5)
    np.testing.assert_allclose(out.features, feats, rtol=1e-4, atol=1e-4)
    assert len(set(out.source_probs.argmax(1).tolist())) >= 2  # not a constant answer

    # cached beside the features: the second call reads both, no pass
    again = zf.extract(CIFAR, sample, with_source_probs=True)
    assert again.cached and again.seconds == 0
    np.testing.assert_array_equal(again.source_probs, out.source_probs)
    assert again.source_labels == list(CIFAR10_LABELS)
    assert zf.extract_source_probs(CIFAR, sample).shape == (n, 10)
    (entry,) = zf.cache_info()
    assert entry["source_classes"] == 10 and entry["bytes"] > n * (64 + 10) * 4
    assert (zf.features_dir() / f"{out.key}.src.npy").is_file()
    # features-only calls ignore the probabilities and return the same features
    plain = zf.extract(CIFAR, sample)
    assert plain.cached and plain.source_probs is None
    np.testing.assert_array_equal(plain.features, out.features)
    assert zf.clear_cache() == 1 and not list(zf.features_dir().iterdir())


@_needs(CIFAR)
def test_cached_features_get_probs_without_a_forward_pass(tmp_path):
    sample = load_sample(write_digits(tmp_path / "digits", per_class=8))
    first = zf.extract(CIFAR, sample)
    assert first.source_probs is None and first.forward_seconds > 0
    later = zf.extract(CIFAR, sample, with_source_probs=True)
    # the linear head was applied to the cached features: features untouched, no forward pass
    assert later.cached and later.forward_seconds == 0 and later.source_probs.shape == (len(sample), 10)
    np.testing.assert_array_equal(later.features, first.features)
    fresh = zf.extract(CIFAR, sample, with_source_probs=True, cache=False)
    np.testing.assert_allclose(later.source_probs, fresh.source_probs, atol=1e-6)
    assert zf.extract(CIFAR, sample, with_source_probs=True).seconds == 0  # now stored


@_needs(CIFAR)
def test_damaged_probs_file_is_recomputed(tmp_path):
    sample = load_sample(write_digits(tmp_path / "digits", per_class=8))
    out = zf.extract(CIFAR, sample, with_source_probs=True)
    src = zf.features_dir() / f"{out.key}.src.npy"
    src.write_bytes(src.read_bytes()[:100])
    again = zf.extract(CIFAR, sample, with_source_probs=True)
    np.testing.assert_allclose(again.source_probs, out.source_probs, atol=1e-6)
    assert zf.extract(CIFAR, sample, with_source_probs=True).seconds == 0


# ------------------------------------------------------------------ Keras face models (FER2013 head)


@_needs(FER)
def test_mini_xception_fer2013_probs_equal_the_keras_output(tmp_path):
    from zoo.nets.mini_xception import load_keras_h5

    sample = load_sample(_faces(tmp_path / "faces"))
    out = zf.extract(FER, sample, with_source_probs=True)
    n = len(sample)
    assert out.source_probs.shape == (n, 7) and out.source_classes == 7
    assert out.source_labels == FER.extra["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    np.testing.assert_allclose(out.source_probs.sum(1), 1.0, atol=1e-5)

    keras = load_keras_h5(bb.resolve_weights(FER), include_top=True)  # the file's own graph, softmax output
    lb = bb.load_backbone(FER, device="cpu")
    x = torch.stack([lb.preprocess(Image.open(p)) for p in sample.items])
    with torch.no_grad():
        ref = keras(x).numpy()
    np.testing.assert_allclose(out.source_probs, ref, atol=1e-5)
    assert (out.source_probs.argmax(1) == ref.argmax(1)).all()
    # the class conv has "same" padding: a linear map of the pooled features would NOT give these logits
    assert not lb.source_head_on_features and lb.source_probs_from_features(out.features) is None

    # features cached first: the Keras head needs the feature map, so one pass computes both
    zf.clear_cache()
    plain = zf.extract(FER, sample)
    both = zf.extract(FER, sample, with_source_probs=True)
    assert not both.cached and both.forward_seconds > 0
    np.testing.assert_allclose(both.features, plain.features, atol=1e-6)
    np.testing.assert_allclose(both.source_probs, out.source_probs, atol=1e-6)


@_needs(FER)
def test_one_pass_gives_the_same_features_as_the_features_path():
    lb = bb.load_backbone(FER, device="cpu")
    x = torch.rand(5, 1, 64, 64) * 2 - 1
    feats, probs = lb.features_and_source_probs(x)
    np.testing.assert_allclose(feats, lb.features(x), atol=1e-6)
    assert probs.shape == (5, 7)


# ------------------------------------------------------------------ ImageNet heads


@pytest.mark.parametrize("rid", ["local:mobilenet_v2.tv_in1k", "local:efficientnet_lite0.in1k"])
def test_imagenet_probs_match_the_full_classifier(rid):
    rec = RECORDS[rid]
    if not is_available(rec.weights):
        pytest.skip(f"{rid} weights not on this machine")
    skdata = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")
    lb = bb.load_backbone(rec, device="cpu")
    assert lb.source_classes == 1000 and lb.has_source_head
    x = torch.stack([lb.preprocess(Image.fromarray(skdata.chelsea())), lb.preprocess(Image.fromarray(skdata.coffee()))])
    feats, probs = lb.features_and_source_probs(x)
    sd = _load_state_dict(bb.resolve_weights(rec))
    if rec.library == "torchvision":
        import torchvision

        full = torchvision.models.mobilenet_v2(weights=None)
        full.load_state_dict(sd)
    else:
        import timm

        full = timm.create_model(rec.extra["timm_model"])
        full.load_state_dict(bb.lukemelas_to_timm(sd, full.state_dict()))
    with torch.no_grad():
        logits = full.eval()(x).numpy()
    np.testing.assert_allclose(probs, softmax(logits), atol=1e-4)
    assert probs.argmax(1).tolist() == logits.argmax(1).tolist()
    assert probs[0].argmax() in range(281, 286)  # a cat
    np.testing.assert_allclose(lb.source_probs_from_features(feats), probs, atol=1e-5)


# ------------------------------------------------------------------ models without a head


@pytest.mark.skipif(not is_available(MINILM.weights), reason="all-MiniLM-L6-v2 not installed")
def test_text_model_says_no_source_head(tmp_path):
    import csv

    path = tmp_path / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([("good film", "pos"), ("great plot", "pos"), ("dull film", "neg"), ("awful plot", "neg")])
    sample = load_sample(path)
    out = zf.extract(MINILM, sample, with_source_probs=True)
    assert out.source_probs is None and out.source_classes is None
    assert "no source head" in out.source_note and MINILM.id in out.source_note
    assert out.features.shape == (4, MINILM.feature_dim)
    with pytest.raises(NoSourceHead, match="no source head"):
        zf.extract_source_probs(MINILM, sample)
    lb = bb.load_backbone(MINILM, device="cpu")
    assert not lb.has_source_head and lb.source_classes is None and "no source head" in lb.no_source_head
    with pytest.raises(NoSourceHead):
        lb.features_and_source_probs(["a text"])


def test_precomputed_arrays_have_no_source_probs(tmp_path):
    np.savez(tmp_path / "emb.npz", x=np.random.default_rng(0).normal(size=(6, 4)), y=np.repeat([0, 1], 3))
    out = zf.extract(CIFAR, load_sample(tmp_path / "emb.npz"), with_source_probs=True)
    assert out.source_probs is None and "precomputed embeddings" in out.source_note


def test_timm_checkpoint_with_and_without_a_classifier(tmp_path, monkeypatch):
    import timm
    from timm.models._hub import save_for_hf

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    kw = dict(library="timm", input_size=[3, 160, 160], mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
              interpolation="bicubic", crop_pct=0.95)
    torch.manual_seed(0)
    for name, num_classes in (("with_head", None), ("headless", 0)):
        args = {} if num_classes is None else {"num_classes": num_classes}
        src = timm.create_model("test_resnet.r160_in1k", pretrained=False, **args).eval()
        snap = tmp_path / "hub" / f"models--timm--{name}" / "snapshots" / "0123abc"
        snap.mkdir(parents=True)
        save_for_hf(src, str(snap), safe_serialization=True)
        rec = ModelRecord(id=f"timm:{name}", weights=f"hf:timm/{name}", **kw)
        lb = bb.load_backbone(rec, device="cpu")
        x = lb.preprocess(Image.new("RGB", (200, 180), (120, 40, 200)))[None]
        if num_classes is None:
            feats, probs = lb.features_and_source_probs(x)
            with torch.no_grad():
                ref = src(x).numpy()
            assert lb.source_classes == ref.shape[1] == 1000
            np.testing.assert_allclose(probs, softmax(ref), atol=1e-5)
        else:
            assert lb.source_classes is None and "holds no classifier" in lb.no_source_head
            with pytest.raises(NoSourceHead, match="holds no classifier"):
                lb.features_and_source_probs(x)


# ------------------------------------------------------------------ the inference copy


@_needs(CIFAR)
def test_inference_copy_follows_weight_changes():
    lb = bb.load_backbone(CIFAR, device="cpu")
    x = torch.rand(4, 3, 32, 32)
    assert lb.inference == ""  # built at the first pass, not at load time
    f1 = lb.features(x)
    assert "19 BatchNorm folded" in lb.inference and "channels_last" in lb.inference  # 1 + 2 per block x 9
    with torch.no_grad():
        lb.model.layer3[0].conv1.weight.mul_(0.5)  # an in-place change, as an optimizer step makes
        ref = lb.model.eval()(x).numpy()
    f2 = lb.features(x)
    assert not np.allclose(f1, f2, atol=1e-3)
    np.testing.assert_allclose(f2, ref, rtol=1e-4, atol=1e-4)
