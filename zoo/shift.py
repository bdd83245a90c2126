"""Label-free domain shift: how far a sample looks from the data a model was pretrained on.

:func:`domain_shift` needs no labels (an unlabelled image folder or text file works) and returns a
:class:`ShiftResult` whose ``value`` is a normalised gap in ``[0, 1]``: **0 = the sample looks like the
model's pretraining data, 1 = as far from it as random input** (uniform pixel noise for images, random
letter strings for text). ``raw`` is the unnormalised measure, ``method`` says which one applied.

Methods
-------
``bn-hellinger`` (image models with BatchNorm: CNNs such as MobileNetV2, EfficientNet, ResNets,
mini-Xception)
    Every BatchNorm layer stores the per-channel mean and variance of its input over the pretraining
    data (``running_mean``/``running_var``). Forward hooks collect the same per-channel statistics of
    the user's sample (up to ``max_items`` items, the model's own preprocessing). Treating each channel
    as a Gaussian, the gap per channel is the squared Hellinger distance
    ``H^2 = 1 - sqrt(2 s1 s2 / (s1^2 + s2^2)) * exp(-(m1 - m2)^2 / (4 (s1^2 + s2^2)))``;
    ``raw`` is its mean over channels, then over layers. Hellinger rather than KL because it is bounded
    (``[0, 1]`` per channel): a few dead or saturated channels, whose KL is huge, cannot dominate the
    mean. This is the statistic AdaBN (Li et al. 2016) and DeepInversion (Yin et al. 2020) rely on:
    BN statistics summarise the pretraining distribution layer by layer.

    Normalisation: ``value = min(1, raw / raw_noise)`` where ``raw_noise`` is the same measure for
    16 images of seeded uniform noise at the model's input size, computed once per model (cached). The
    map is monotone, 0 is an exact match of the pretraining statistics, 1 is "as far as noise", and it
    adapts to each architecture (depth and eps change the raw scale). Nothing is fitted: the reference
    points below only check the map. Measured by ``benchmarks/bench_shift.py`` (32 items per set) on data
    that is not in the ranking benchmark (scikit-image photos, LFW faces, an IHC slide, a retina photo)
    plus MNIST digits, the classic far domain:

    ======================= ========= ========= ========= ========= ========= =========
    model family            photos    gray      histology LFW faces MNIST     noise
    ======================= ========= ========= ========= ========= ========= =========
    ImageNet CNNs (4)       0.06-0.13 0.17-0.29 0.25-0.32 0.56-0.84 0.60-0.86 0.88-0.97
    CIFAR ResNets (4)       0.10-0.15 0.21-0.36 0.29-0.41 0.28-0.44 0.26-0.44 0.65-1.00
    face mini-Xceptions (5) 0.03-0.07 0.04-0.12 0.16-0.38 0.04-0.25 0.21-0.33 0.40-0.67
    ======================= ========= ========= ========= ========= ========= =========

    (noise here is 96 px, not the anchor's size or seed.) BN statistics see low-level image statistics
    (colour, contrast, blur, texture) more than semantics: for the grayscale face models, grayscale
    photos of anything look as close as faces; a colour retina photo is far (0.4-1.0) for every model.

``vocab-oov`` (text encoders: GloVe, WordPiece/BPE sentence encoders)
    The share of the sample's words (runs of letters, counted with repetition) that the model's
    vocabulary does not hold whole: out of GloVe's vocabulary, or split by a subword tokenizer into
    several pieces or ``[UNK]``. A vocabulary is built from the pretraining corpus, so words it lacks
    are words that corpus rarely had; this "fertility" signal is what SciBERT and PubMedBERT used to
    argue for in-domain vocabularies. Cheap (the tokenizer only; no forward pass). Normalisation as for
    images, against 300 seeded random lowercase strings of 3-10 letters: ``value = min(1, raw / raw_random)``.
    Reference points (``benchmarks/bench_shift.py``; the four WordPiece encoders share one vocabulary):
    English dialogue 0.00 (GloVe) / 0.04 (WordPiece), English Subj sentences 0.005 / 0.09, German
    dialogue 0.22 / 0.53, Russian 0.90 / 0.91, Chinese 1.00 / 0.95, random strings 0.83 / 0.92 on another
    seed than the anchor's. It measures lexical distance: English legal text written with common words
    scores near 0 even though its topic is specialised.

``unavailable``
    No method applies (image models without BatchNorm such as ViTs, audio models, ``.npz`` samples of
    precomputed features, texts without words): ``value`` and ``raw`` are ``None`` and ``reason`` says why.
    zoo never reports a number it did not measure.

Cache: ``cache_dir()/shift/<key>.json``, the key a sha256 over :func:`zoo.features.feature_key` (model,
weights fingerprint, sample content and order, preprocessing), ``max_items`` and :data:`SHIFT_VERSION`.
The per-model random-input anchor is cached beside it (``anchor-<key>.json``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import DataError, Sample
from zoo.embed import cache_dir
from zoo.errors import UsageError
from zoo.record import ModelRecord

__all__ = ["FAR", "NEAR", "SHIFT_VERSION", "ShiftResult", "domain_shift", "shift_dir"]

# Bump when a measure, its anchor or its normalisation changes: every cached result becomes a miss.
SHIFT_VERSION = 1

# Bands for ShiftResult.level, from the reference points in the module docstring: natural photos into
# ImageNet/CIFAR CNNs and English text into English encoders stay below NEAR; MNIST digits into ImageNet
# CNNs and Cyrillic/CJK text into English encoders are at or above FAR.
NEAR = 0.2
FAR = 0.5

_BATCH = 32
_ANCHOR_ITEMS = 16  # noise is homogeneous: 8, 16 and 32 images give anchors within 1.5% of each other
_ANCHOR_WORDS = 300
_SEED = 0
# Words are runs of letters: digits and punctuation say nothing about a vocabulary. Subword tokenizers split
# at apostrophes ("it's" -> it ' s), so words end there; GloVe's own tokens keep clitics ("doesn't" -> does n't).
_LETTER_WORD = re.compile(r"[^\W\d_]+")
_GLOVE_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@dataclass
class ShiftResult:
    model_id: str
    value: float | None  # normalised gap in [0, 1]: 0 = looks like the pretraining data, 1 = as far as random input
    raw: float | None  # the unnormalised measure (mean Hellinger^2 over BN layers, or the share of words not held whole)
    method: str  # "bn-hellinger" | "vocab-oov" | "unavailable"
    detail: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of this call (a cache hit costs milliseconds)
    cached: bool = False
    reason: str = ""  # why the value is None (method "unavailable"); empty otherwise
    n_items: int = 0  # items actually measured

    @property
    def level(self) -> str | None:
        """``"near"`` (value < NEAR), ``"moderate"``, ``"far"`` (value >= FAR), or None when unavailable."""
        if self.value is None:
            return None
        return "near" if self.value < NEAR else "far" if self.value >= FAR else "moderate"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level}


_FIELDS = frozenset(ShiftResult.__dataclass_fields__)


def shift_dir() -> Path:
    return cache_dir() / "shift"


# ---------------------------------------------------------------------------------------- public API


def domain_shift(record: ModelRecord, sample: Sample, *, device: str = "auto", max_items: int = 256,
                 cache: bool = True) -> ShiftResult:
    """How far ``sample`` looks from ``record``'s pretraining data, without labels (see the module docstring).

    At most ``max_items`` items are measured: a seeded subset, so the same sample always gives the same
    items and value. Raises :class:`~zoo.errors.UsageError` when the sample's modality does not fit the
    model and :class:`~zoo.errors.WeightsUnavailable` when the weights are not on this machine.
    """
    t0 = time.perf_counter()
    if not isinstance(max_items, int) or isinstance(max_items, bool) or max_items < 1:
        raise UsageError(f"max_items must be a positive integer, got {max_items!r}")
    if sample.modality == "array":
        return _unavailable(record, t0, "the sample holds precomputed features (.npz): they carry no statistics "
                                        "of any model's pretraining data to compare with")
    from zoo.loadable import served_modalities

    if sample.modality not in served_modalities(record):  # its own, or a vision-language model's tower
        raise UsageError(f"{record.id} is a {record.modality} model, but the sample {sample.source} is "
                         f"{sample.modality} data: measure the shift with a {sample.modality} model.")
    if record.modality not in ("image", "text"):
        return _unavailable(record, t0, f"no label-free shift measure for {record.modality} models yet")

    key = _result_key(record, sample, max_items)
    if cache:
        res = _cached_result(key)
        if res is not None:
            res.cached, res.seconds = True, time.perf_counter() - t0
            return res
    items = _subset(sample.items or [], max_items)
    if record.modality == "image":
        res = _image_shift(record, items, device, cache)
    else:
        res = _text_shift(record, [str(t) for t in items], device)
    res.seconds = time.perf_counter() - t0
    res.detail["computed_seconds"] = round(res.seconds, 4)
    if cache:
        _write_json(shift_dir() / f"{key}.json", {"key": key, "version": SHIFT_VERSION, "model_id": record.id,
                                                  "data_hash": sample.content_hash, "result": asdict(res)})
    return res


def _cached_result(key: str) -> ShiftResult | None:
    hit = _read_json(shift_dir() / f"{key}.json")
    if hit is None or hit.get("key") != key or not isinstance(hit.get("result"), dict):
        return None
    try:
        return ShiftResult(**{k: v for k, v in hit["result"].items() if k in _FIELDS})
    except TypeError:  # an entry written by a different layout: recompute
        return None


def _unavailable(record: ModelRecord, t0: float, reason: str, **detail: Any) -> ShiftResult:
    return ShiftResult(record.id, None, None, "unavailable", dict(detail), time.perf_counter() - t0, reason=reason)


def _subset(items: Sequence, max_items: int) -> list:
    """A seeded subset in sample order: load_sample groups items by class, so the first N would be biased."""
    if len(items) <= max_items:
        return list(items)
    keep = np.sort(np.random.default_rng(_SEED).permutation(len(items))[:max_items])
    return [items[i] for i in keep]


def _result_key(record: ModelRecord, sample: Sample, max_items: int) -> str:
    from zoo.features import feature_key

    doc = {"features": feature_key(record, sample), "max_items": max_items, "version": SHIFT_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------- images: BN statistics


def _bn_layers(model: Any) -> list[tuple[str, Any]]:
    """Modules holding per-channel running statistics (BatchNorm and its subclasses, e.g. timm's BatchNormAct2d)."""
    import torch

    out = []
    for name, m in model.named_modules():
        rm, rv = getattr(m, "running_mean", None), getattr(m, "running_var", None)
        if isinstance(rm, torch.Tensor) and isinstance(rv, torch.Tensor) and rm.dim() == 1 and rm.shape == rv.shape:
            out.append((name, m))
    return out


def _bn_gap(lb: Any, layers: list[tuple[str, Any]], batches: Iterator[Any]) -> tuple[float, list[float], int]:
    """Mean squared Hellinger distance between the batches' per-channel statistics and the running ones.

    Returns ``(raw, per_layer, n_items)``. Each batch's per-channel mean and variance come from
    ``torch.var_mean`` in the activations' own dtype (a float64 copy of every activation doubled the
    forward time); batches are merged in float64 with Chan et al.'s pairwise update, which stays exact
    where summing x and x^2 would cancel.
    """
    import torch

    stats: list[tuple[float, Any, Any] | None] = [None] * len(layers)  # (count, mean, M2) per layer
    hooks = []

    def make_hook(i: int, channels: int):
        def hook(_module: Any, inputs: tuple) -> None:
            x = inputs[0]
            if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[1] != channels:
                return  # a layer fed something unexpected is left out rather than guessed
            dims = [0, *range(2, x.dim())]
            var, mean = torch.var_mean(x.detach().float(), dim=dims, correction=0)
            n_b, mean, m2 = x.numel() / channels, mean.double(), var.double() * (x.numel() / channels)
            prev = stats[i]
            if prev is None:
                stats[i] = (n_b, mean, m2)
            else:
                n_a, mean_a, m2_a = prev
                n = n_a + n_b
                delta = mean - mean_a
                stats[i] = (n, mean_a + delta * (n_b / n), m2_a + m2 + delta * delta * (n_a * n_b / n))
        return hook

    for i, (_, m) in enumerate(layers):
        hooks.append(m.register_forward_pre_hook(make_hook(i, int(m.running_mean.shape[0]))))
    lb.model.eval()  # in train mode BatchNorm would normalise with batch statistics and overwrite the running ones
    n = 0
    from zoo.features import inference_settings

    try:
        with torch.inference_mode(), inference_settings(lb.device):
            for x in batches:
                lb.model(x.to(lb.device, dtype=torch.float32))
                n += int(x.shape[0])
    finally:
        for h in hooks:
            h.remove()
    per_layer = []
    for (_, m), st in zip(layers, stats, strict=True):
        if st is None or st[0] < 2:
            continue
        count, mu, m2 = st
        eps = float(getattr(m, "eps", 1e-5))
        v1 = m2 / count + eps
        v2 = m.running_var.detach().to(mu.device, torch.float64) + eps
        d2 = (mu - m.running_mean.detach().to(mu.device, torch.float64)) ** 2
        h2 = 1 - torch.sqrt(2 * torch.sqrt(v1 * v2) / (v1 + v2)) * torch.exp(-d2 / (4 * (v1 + v2)))
        per_layer.append(float(h2.clamp(0, 1).mean()))
    raw = float(np.mean(per_layer)) if per_layer else float("nan")
    return raw, per_layer, n


def _image_batches(lb: Any, items: list, skipped: list[str]) -> Iterator[Any]:
    """Decoded, preprocessed batches of the sample's images (unreadable files skipped and counted)."""
    import torch

    from zoo.backbones.preprocess import decode_image

    for start in range(0, len(items), _BATCH):
        tensors = []
        for p in items[start:start + _BATCH]:
            try:
                tensors.append(lb.preprocess(decode_image(str(p))))
            except Exception:  # noqa: BLE001 - decode_image's DataError or a preprocessing error; the file changed since load_sample verified it
                skipped.append(str(p))
        if tensors:
            yield torch.stack(tensors)


def _noise_batches(lb: Any, n: int) -> Iterator[Any]:
    """Seeded uniform noise at the model's own input size and colour mode, through its preprocessing."""
    import torch
    from PIL import Image

    c, h, w = (int(v) for v in lb.preprocess(Image.new("RGB", (64, 64))).shape)
    rng = np.random.default_rng(_SEED)
    shape = (h, w) if c == 1 else (h, w, 3)
    for start in range(0, n, _BATCH):
        k = min(_BATCH, n - start)
        yield torch.stack([lb.preprocess(Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))) for _ in range(k)])


def _noise_anchor(record: ModelRecord, lb: Any, layers: list[tuple[str, Any]], cache: bool) -> float:
    """``raw`` for uniform noise under this model: the point the normalised value calls 1 (cached per model)."""
    from zoo.features import feature_key

    # feature_key over a stand-in sample gives a key that follows the weights and the preprocessing.
    stand_in = Sample(modality="image", items=[], arrays=None, labels=None, classes=[], task="unlabelled",
                      skipped=[], content_hash=f"uniform-noise-{_ANCHOR_ITEMS}-seed{_SEED}", source="<noise>")
    key = hashlib.sha256(f"{feature_key(record, stand_in)}:bn-hellinger:{SHIFT_VERSION}".encode()).hexdigest()
    path = shift_dir() / f"anchor-{key}.json"
    if cache:
        hit = _read_json(path)
        if hit is not None and isinstance(hit.get("raw"), float):
            return hit["raw"]
    raw, _, _ = _bn_gap(lb, layers, _noise_batches(lb, _ANCHOR_ITEMS))
    if cache:
        _write_json(path, {"model_id": record.id, "raw": raw, "items": _ANCHOR_ITEMS, "version": SHIFT_VERSION})
    return raw


def _image_shift(record: ModelRecord, items: list, device: str, cache: bool) -> ShiftResult:
    from zoo.backbones import load_backbone

    t0 = time.perf_counter()
    lb = load_backbone(record, device=device)
    if lb.model is None or not hasattr(lb.model, "named_modules"):
        return _unavailable(record, t0, f"{record.id} is not a torch network ({record.library}): there are no "
                                        "BatchNorm statistics to compare with")
    layers = _bn_layers(lb.model)
    if not layers:
        return _unavailable(record, t0, f"{record.id} has no BatchNorm layers with running statistics (e.g. a "
                                        "vision transformer, which normalises per token): zoo has no reference "
                                        "statistics of its pretraining data")
    skipped: list[str] = []
    raw, per_layer, n = _bn_gap(lb, layers, _image_batches(lb, items, skipped))
    if n == 0:
        raise DataError(f"None of the {len(items)} images could be decoded (e.g. {skipped[0] if skipped else '?'}). "
                        "The files changed since the sample was loaded: fix them and load the sample again.")
    anchor = _noise_anchor(record, lb, layers, cache)
    if not (np.isfinite(raw) and np.isfinite(anchor) and anchor > 0):
        return _unavailable(record, t0, "the BatchNorm statistics gave no finite gap (degenerate running statistics)")
    names = [name for name, _ in layers]
    top = sorted(zip(names, per_layer, strict=True), key=lambda p: -p[1])[:3]
    detail = {
        "layers": len(layers), "skipped": len(skipped), "anchor": "uniform noise", "anchor_raw": anchor,
        "first_layer": round(per_layer[0], 6), "last_layer": round(per_layer[-1], 6),
        "most_shifted_layers": [[name, round(v, 6)] for name, v in top],
        "device": lb.device,
    }
    return ShiftResult(record.id, min(1.0, raw / anchor), raw, "bn-hellinger", detail, n_items=n)


# ---------------------------------------------------------------------------------------- text: vocabulary coverage


def _tokenizer_file(record: ModelRecord) -> Path | None:
    """The model's tokenizer.json when it can be read without loading the model (fast path)."""
    from zoo.errors import ZooError
    from zoo.weights import _assembled_dir, resolve_weights

    loc = record.extra.get("tokenizer_file")
    with contextlib.suppress(ZooError, OSError):
        if loc:
            return resolve_weights(record, str(loc))
        if record.extra.get("archive_root"):  # a model assembled from archive packages (all-mpnet-base-v2)
            folder = _assembled_dir(record)
            return folder / "tokenizer.json" if folder is not None and (folder / "tokenizer.json").is_file() else None
        folder = resolve_weights(record)
        if folder.is_dir() and (folder / "tokenizer.json").is_file():
            return folder / "tokenizer.json"
    return None


WholeWordTest = Callable[[list[str]], list[bool]]


def _whole_word_test(record: ModelRecord, device: str) -> tuple[WholeWordTest | None, str, re.Pattern]:
    """A function telling, per word, whether the model's vocabulary holds it whole; what it uses; what a word is."""
    if record.library == "glove_avg":
        from zoo.backbones import load_backbone

        lb = load_backbone(record, device="cpu")
        # preprocess maps each text to the ids of its known words (clitics split as GloVe does): none = OOV.
        return (lambda words: [bool(ids) for ids in lb.preprocess(words)]), "GloVe vocabulary", _GLOVE_WORD
    path = _tokenizer_file(record)
    if path is not None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        tok.no_truncation()
        tok.no_padding()
        unk_token = getattr(tok.model, "unk_token", None)
        unk = tok.token_to_id(unk_token) if unk_token else None

        def whole(words: list[str]) -> list[bool]:
            return [len(e.ids) == 1 and e.ids[0] != unk for e in tok.encode_batch(words, add_special_tokens=False)]

        return whole, f"{type(tok.model).__name__} tokenizer ({path.name})", _LETTER_WORD
    from zoo.backbones import load_backbone

    lb = load_backbone(record, device=device)
    hf = getattr(lb.model, "tokenizer", None)  # sentence-transformers keeps its Hugging Face tokenizer here
    if hf is not None and callable(hf):
        def whole_hf(words: list[str]) -> list[bool]:
            ids = hf(words, add_special_tokens=False)["input_ids"]
            return [len(i) == 1 and i[0] != hf.unk_token_id for i in ids]

        return whole_hf, type(hf).__name__, _LETTER_WORD
    # Any other text backbone: count the pieces its own preprocessing makes of each word ([UNK] not told apart).
    try:
        base = int(np.asarray(lb.preprocess([""])["attention_mask"]).sum())
    except (KeyError, TypeError, IndexError):
        return None, "", _LETTER_WORD

    def whole_generic(words: list[str]) -> list[bool]:
        mask = np.asarray(lb.preprocess(words)["attention_mask"])
        return [bool(k) for k in (mask.sum(axis=1) - base) == 1]

    return whole_generic, "the model's preprocessing (attention mask)", _LETTER_WORD


def _random_words(n: int) -> list[str]:
    rng = np.random.default_rng(_SEED)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, int(rng.integers(3, 11)))) for _ in range(n)]


def _not_whole_share(test: Callable[[list[str]], list[bool]], counts: Counter) -> tuple[float, list[str]]:
    words = list(counts)
    flags: list[bool] = []
    for start in range(0, len(words), 1024):  # bounded batches: a long sample has tens of thousands of words
        flags += test(words[start:start + 1024])
    missing = Counter({w: counts[w] for w, ok in zip(words, flags, strict=True) if not ok})
    return sum(missing.values()) / sum(counts.values()), [w for w, _ in missing.most_common(10)]


def _text_shift(record: ModelRecord, texts: list[str], device: str) -> ShiftResult:
    t0 = time.perf_counter()
    if not any(_LETTER_WORD.search(t) for t in texts):
        return _unavailable(record, t0, "the texts contain no words (runs of letters) to compare with the model's "
                                        "vocabulary")
    test, vocabulary, word = _whole_word_test(record, device)
    counts = Counter(w for t in texts for w in word.findall(t))
    if test is None:
        return _unavailable(record, t0, f"zoo cannot read {record.id}'s vocabulary (no tokenizer it knows)")
    raw, examples = _not_whole_share(test, counts)
    anchor, _ = _not_whole_share(test, Counter(_random_words(_ANCHOR_WORDS)))
    if anchor <= 0:
        return _unavailable(record, t0, f"{record.id}'s vocabulary holds even random letter strings whole "
                                        "(a character-level model?): word coverage says nothing here")
    detail = {"words": sum(counts.values()), "unique_words": len(counts), "vocabulary": vocabulary,
              "anchor": "random letter strings", "anchor_raw": anchor, "frequent_not_whole": examples}
    return ShiftResult(record.id, min(1.0, raw / anchor), raw, "vocab-oov", detail, n_items=len(texts))


# ---------------------------------------------------------------------------------------- cache files


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == SHIFT_VERSION else None


def _write_json(path: Path, doc: dict) -> None:
    """Write to a temporary file and move it into place, so a reader never sees half an entry."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1, default=str)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only or full cache is not fatal: the result is still returned
