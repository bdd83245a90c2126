"""Penultimate features of a sample under a model, cached on disk.

:func:`extract` runs a :class:`~zoo.data.Sample` through a record's backbone
(:func:`zoo.backbones.load_backbone`, the model's own preprocessing, ``torch.inference_mode``, the GPU
when there is one) and returns a :class:`Features`: an ``(n, d)`` float32 matrix whose rows follow the
sample's item order.

- **Images** are decoded with PIL one by one (:func:`zoo.backbones.preprocess.decode_image`: EXIF
  orientation applied; the colour mode and resizing are the backbone's ``preprocess``), timed separately
  as ``decode_seconds``, then batched through the backbone; ``forward_seconds`` is the time in the
  forward passes.
- **Texts** go to the backbone in batches of raw strings. A transformer text encoder (sentence-transformers or
  transformers, :func:`zoo.backbones.layers.scoring_layers`) gives the mean over all its transformer layers of the
  attention-mask mean-pooled hidden states, not its own pooled output (issue 20 item 1: adopted by the rule
  pre-registered in bench_ranking.py); ``extract(..., layers=None)`` gives the pooled output instead. The layers
  are part of the cache key and are recorded in the entry's metadata and in ``Features.layers``.
- **Arrays** (an ``.npz`` sample, ``modality == "array"``) are taken as precomputed features: the
  result is the arrays themselves, flattened to ``(n, -1)`` float32, for any model. This lets users
  score embeddings they computed elsewhere. Nothing is loaded and nothing is cached.

A vision-language (``multimodal``) record reads image and text samples through the tower that fits
(``load_backbone(..., modality=sample.modality)``; :func:`zoo.loadable.served_modalities` says which records
split into towers). A sample whose modality does not fit the model (texts into an image model, audio into
CLIP, ...) raises :class:`~zoo.errors.UsageError` naming models that fit; weights missing on this machine
raise the backbone's :class:`~zoo.errors.WeightsUnavailable`.

Source probabilities (for LEEP and NCE): ``extract(..., with_source_probs=True)`` also returns the
source model's softmax over its pre-training classes, ``Features.source_probs`` ``(n, C_source)``,
computed in the same forward pass as the features; when the features are already cached and the
model's classifier reads the pooled features (every head except the Keras face models'), the head is
applied to the cached features and no pass runs at all. A model without a source head (text encoders,
headless checkpoints, precomputed embeddings) gives ``source_probs=None`` and the reason in
``Features.source_note``; nothing is raised. :func:`extract_source_probs` is the strict variant.

Speed (measured in ``benchmarks/bench_features.py``): images are decoded and preprocessed in a
background thread, one batch ahead of the forward passes (PIL and torch release the GIL); conv nets run
through an inference copy with BatchNorm folded, the channels_last layout and CPU passes of at most
~16 ImageNet-size images (:mod:`zoo.backbones.fast`); large tensors come from the heap instead of fresh
mmaps while extracting (no page faults per batch, see ``_heap_for_tensors``). On the CPU the number of
torch threads is chosen for the extraction (:func:`extraction_threads`): the cores this process may run
on, whatever other processes' load (issue 21 item 5: a rule that dropped to one thread on a busy machine
made a cold run slower than a peer tool's). ``ZOO_NUM_THREADS`` sets the number.

Cache: ``cache_dir()/features/<key>.npy`` plus a ``<key>.json`` metadata sidecar (and
``<key>.src.npy`` for source probabilities), each written to a temporary file and moved into place
with ``os.replace``, the sidecar last, so an interrupted run never leaves a half entry. An entry whose
array cannot be read or whose shape disagrees with its metadata (a truncated file) is recomputed;
damaged source probabilities alone are recomputed from the features (or with one pass). :func:`feature_key` hashes the model id, a cheap fingerprint of the weight files
(size, mtime and a hash of the first and last MiB; a Hugging Face snapshot's folder name), the
sample's content hash and item order, and everything in the record that changes the features
(input size, mean, std, interpolation, crop_pct, max_length, pooling, ...), a vision-language
model's tower, the transformer layers averaged (only when there are: the key of every other model is as
before, and an entry of a text encoder's pooled output is never read as its layer mean), plus
:data:`FEATURES_VERSION`. Changing any of them gives a new key; stale entries stay until
:func:`clear_cache` (``zoo cache clear``) removes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import Sample
from zoo.embed import cache_dir
from zoo.errors import UsageError, ZooError
from zoo.record import ModelRecord

__all__ = ["FEATURES_VERSION", "Features", "cache_info", "clear_cache", "decode_workers", "extract",
           "extract_source_probs", "extraction_threads", "feature_key", "features_dir", "inference_settings"]

# Bump when the extraction itself changes (decoding, pooling, dtype): every old entry becomes a miss.
FEATURES_VERSION = 1

_CHUNK = 1 << 20  # bytes hashed at each end of a weight file
_MAX_DIR_FILES = 256  # files of a weight folder fingerprinted by content; the rest by size + mtime
# Record extras that change the features a backbone produces.
_FEATURE_EXTRAS = ("pooling", "sentence_output", "timm_model", "tokenizer_file", "archive_root")


@dataclass
class Features:
    model_id: str
    data_hash: str
    key: str
    features: np.ndarray  # (n, d) float32, row order = sample order
    seconds: float  # wall seconds spent: model load + decoding + forward passes (0 when all came from cache)
    cached: bool  # the features came from the cache
    device: str
    # image decoding/resizing seconds, summed in the decoding thread; it overlaps the forward passes,
    # so decode_seconds + forward_seconds can exceed ``seconds``
    decode_seconds: float
    load_seconds: float = field(default=0.0)  # model loading time (part of ``seconds``)
    forward_seconds: float = field(default=0.0)  # time in the backbone's forward passes (part of ``seconds``)
    # with_source_probs=True: the source model's softmax (n, source_classes) float32, same row order;
    # None when the model has no source head, and source_note then says why (LEEP/NCE cannot apply)
    source_probs: np.ndarray | None = field(default=None, repr=False)
    source_classes: int | None = None
    source_labels: list[str] | None = None
    source_note: str = ""
    threads: int | None = None  # torch threads used for the forward passes (None: not torch, or untouched)
    # the transformer layers whose mask-mean-pooled hidden states were averaged (zoo.backbones.layers; 1-based);
    # None: the model's own output
    layers: list[int] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.features.shape)


def features_dir() -> Path:
    return cache_dir() / "features"


# ---------------------------------------------------------------------------------------- key


def _file_fingerprint(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_CHUNK))
        if st.st_size > _CHUNK:
            f.seek(max(_CHUNK, st.st_size - _CHUNK))
            h.update(f.read(_CHUNK))
    return f"{st.st_size}:{st.st_mtime_ns}:{h.hexdigest()[:16]}"


def _path_fingerprint(path: Path) -> str:
    if path.is_file():
        return _file_fingerprint(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    parts = []
    for i, p in enumerate(files):
        rel = p.relative_to(path).as_posix()
        if i < _MAX_DIR_FILES:
            parts.append(f"{rel}={_file_fingerprint(p)}")
        else:
            st = p.stat()
            parts.append(f"{rel}={st.st_size}:{st.st_mtime_ns}")
    return "dir[" + ";".join(parts) + "]"


def _location_fingerprint(location: str) -> str:
    from zoo import weights as _weights

    try:
        path = _weights.resolve(location)
    except OSError:
        path = None
    if path is None:
        return f"{location}=missing"
    if location.startswith("hf:"):  # the snapshot folder is named after the commit
        return f"{location}=snapshot:{path.name}"
    try:
        return f"{location}={_path_fingerprint(path)}"
    except OSError as e:
        return f"{location}=unreadable:{type(e).__name__}"


def _weights_fingerprint(record: ModelRecord) -> str:
    locations = [record.weights] if record.weights else []
    tok = record.extra.get("tokenizer_file")
    if tok:
        locations.append(str(tok))
    parts = [_location_fingerprint(loc) for loc in locations]
    if record.extra.get("archive_root"):  # a model assembled from archive packages (scripts/assemble_mpnet.py)
        try:
            from zoo.weights import _assembled_dir

            folder = _assembled_dir(record)
        except Exception:  # noqa: BLE001 - a fingerprint must never fail; a miss just recomputes
            folder = None
        parts.append(f"assembled={_path_fingerprint(folder) if folder is not None else 'missing'}")
    return "|".join(parts)


def _preprocessing(record: ModelRecord) -> dict[str, Any]:
    return {
        "features_version": FEATURES_VERSION,
        "library": record.library,
        "modality": record.modality,
        "input_size": record.input_size,
        "mean": record.mean,
        "std": record.std,
        "interpolation": record.interpolation,
        "crop_pct": record.crop_pct,
        "max_length": record.max_length,
        "extra": {k: record.extra.get(k) for k in _FEATURE_EXTRAS if record.extra.get(k) is not None},
    }


def _order_digest(sample: Sample) -> str:
    """The item order (``content_hash`` ignores it, but rows of the features follow it)."""
    h = hashlib.sha256()
    if sample.modality == "array":
        arr = np.ascontiguousarray(sample.arrays)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
        return h.hexdigest()[:16]
    root = sample.source
    for item in sample.items or []:
        s = str(item)
        if sample.modality == "image":
            with contextlib.suppress(ValueError):
                s = os.path.relpath(s, root)
        h.update(len(s.encode()).to_bytes(8, "little") + s.encode())
    return h.hexdigest()[:16]


def feature_key(record: ModelRecord, sample: Sample, layers: Any = "auto") -> str:
    """The cache key: sha256 over the model id, its weights' fingerprint, the sample and the preprocessing (and,
    for a vision-language model, the tower: the sample's modality; for layer-mean features, the layers asked
    for, as in :func:`extract`)."""
    from zoo.backbones.layers import requested

    spec = requested(record, sample.modality, layers)
    doc = {
        "model": record.id,
        "weights": _weights_fingerprint(record) if sample.modality != "array" else None,
        "data": sample.content_hash,
        "modality": sample.modality,
        "order": _order_digest(sample),
        "preprocessing": _preprocessing(record),
    }
    if record.modality == "multimodal" and sample.modality != "array":
        doc["tower"] = sample.modality  # a vision-language model: the image and the text tower give other features
    if spec is not None:  # only then: the keys of the model's own output stay what they were
        doc["layers"] = spec if isinstance(spec, str) else list(spec)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------- extract


def _fitting_models(modality: str, limit: int = 6) -> list[str]:
    """Models of the offline zoo for ``modality`` whose weights are on this machine (for error messages)."""
    try:
        from zoo import weights as _weights
        from zoo.sources.manifest import iter_records

        manifest = Path(__file__).parent / "manifests" / "offline.yaml"
        out = [r.id for r in iter_records(manifest) if r.modality == modality and _weights.is_available(r.weights)]
    except Exception:  # noqa: BLE001 - only a hint in an error message
        return []
    return out[:limit]


def _tower(record: ModelRecord, sample: Sample) -> str | None:
    """The ``modality`` to load ``record`` for: the sample's, which picks a vision-language model's tower."""
    return sample.modality if sample.modality in ("image", "text") else None


def _check_modality(record: ModelRecord, sample: Sample) -> None:
    """The sample's data fits the model: its own modality, or a tower of a vision-language model
    (:func:`zoo.loadable.served_modalities`); precomputed arrays fit every model."""
    from zoo.loadable import loadable_reason, served_modalities

    if sample.modality == "array" or sample.modality in served_modalities(record):
        return
    fits = _fitting_models(sample.modality)
    examples = f" Models that fit {sample.modality} data here: {', '.join(fits)}." if fits else ""
    why = ""
    if record.modality == "multimodal":
        reason = loadable_reason(record)
        why = f" ({reason.rstrip('.')})" if reason else ""
    raise UsageError(
        f"{record.id} is a {record.modality} model{why}, but the sample {sample.source} is {sample.modality} data. "
        f"Pick a {sample.modality} model (`zoo search --modality {sample.modality}`).{examples} "
        "Precomputed embeddings (.npz with arrays x, y) fit every model.")


def _bar(total: int, progress: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", file=sys.stderr, disable=not progress, leave=False)


def extraction_threads() -> int | None:
    """Torch threads for CPU extraction: :func:`zoo.scores._base.cpu_threads` (``ZOO_NUM_THREADS``, else the
    cores this process may run on), at most torch's default; None leaves torch alone."""
    import torch

    from zoo.scores._base import cpu_threads

    n = cpu_threads()
    return None if n is None else min(n, torch.get_num_threads())


# Measured on an H100 with 16 cores (benchmarks/bench_decode_workers.py, 3000 PNGs): with one decoding
# thread MobileNetV2 (224 px) ran at 509 images/s while the GPU idled; 2, 3, 4 threads gave 766, 857, 907.
# At 64 and 32 px one thread was fastest (two lost a third): preprocessing that cheap does not outweigh the
# threads' contention for the GIL. On the CPU the forward passes need every core.
_PARALLEL_DECODE_MIN_PX = 128
_MAX_DECODE_WORKERS = 4


def decode_workers(device: str, input_px: int | None = None) -> int:
    """Threads that decode and preprocess images during an extraction: ``ZOO_DECODE_WORKERS``, else, on a
    GPU for models whose input side is at least 128 px, the cores but one up to 4; otherwise 1."""
    env = os.environ.get("ZOO_DECODE_WORKERS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise UsageError(f"ZOO_DECODE_WORKERS must be a positive whole number, got {env!r}.")
        return int(env)
    if device.startswith("cuda") and (input_px or 0) >= _PARALLEL_DECODE_MIN_PX:
        return max(1, min(_MAX_DECODE_WORKERS, (os.cpu_count() or 1) - 1))
    return 1


@contextlib.contextmanager
def _torch_threads(device: str):
    """Run the block with :func:`extraction_threads` torch threads on the CPU; restore the setting after."""
    if not device.startswith("cpu"):
        yield None
        return
    import torch

    want = extraction_threads()
    before = torch.get_num_threads()
    if want is None or want == before:
        yield before
        return
    torch.set_num_threads(want)
    try:
        yield want
    finally:
        torch.set_num_threads(before)


# glibc malloc serves each large tensor (a batch's activations: 10-50 MB) with a fresh mmap and unmaps it
# when freed, so every forward pass page-faults all its activations in again: at 1 thread MobileNetV2 spent
# 0.4 s of kernel time per 1.1 s of compute on that. Serving them from the heap and keeping freed memory
# for the next batch removes it (sys 0.4 -> 0.0 s, wall 2.7 -> 1.6 s per 64 images, bench_features.py).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


@contextlib.contextmanager
def _heap_for_tensors():
    """While extracting on glibc Linux: no mmap for large blocks, freed memory kept (up to 512 MiB) for
    reuse; afterwards glibc's defaults come back and the kept memory is returned (``malloc_trim``).
    ``ZOO_MALLOC_TUNING=0`` turns it off."""
    import platform

    libc = None
    if os.environ.get("ZOO_MALLOC_TUNING", "1") != "0" and sys.platform.startswith("linux") \
            and platform.libc_ver()[0] == "glibc":
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 512 * 1024 * 1024)
        except (OSError, AttributeError):
            libc = None
    try:
        yield
    finally:
        if libc is not None:
            for param, value in _GLIBC_DEFAULTS.items():
                libc.mallopt(param, value)
            libc.malloc_trim(0)


# On Ampere and later GPUs cuDNN runs float32 convolutions in TF32 by default (10-bit mantissa): features
# then differ from the CPU's by up to 0.4 % (seen on an H100: CIFAR ResNet-20, 1e-3 absolute), so a cached
# feature file, a score and the probe would depend on where they were computed. zoo's backbones are small
# enough that full float32 costs little, and CPU and GPU results agree to 1e-5.
@contextlib.contextmanager
def _ieee_float32(device: str):
    """On CUDA: IEEE float32 (no TF32) for convolutions and matrix products in the block; restored after."""
    if not device.startswith("cuda"):
        yield
        return
    import torch

    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):  # torch >= 2.9
        knobs = [(cudnn_conv, "fp32_precision", "ieee"), (torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    else:
        knobs = [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]
    before = [getattr(obj, name) for obj, name, _ in knobs]
    for obj, name, value in knobs:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for (obj, name, _), value in zip(knobs, before, strict=True):
            setattr(obj, name, value)


@contextlib.contextmanager
def inference_settings(device: str = "cpu"):
    """The settings zoo extracts features under, for other code that runs a backbone over many images
    (e.g. a BatchNorm-statistics pass). On the CPU: :func:`extraction_threads` torch threads and large
    tensors served from the heap (no page faults per batch); on CUDA: IEEE float32, no TF32. All
    restored afterwards. Yields the number of torch threads (None when left alone, or off the CPU)."""
    with _torch_threads(device) as threads, _heap_for_tensors(), _ieee_float32(device):
        yield threads


@dataclass
class _Pass:
    features: np.ndarray
    probs: np.ndarray | None
    device: str
    decode: float
    load: float
    forward: float
    threads: int | None
    source_classes: int | None
    source_labels: list[str] | None
    no_source_head: str
    imports: dict[str, float] = field(default_factory=dict)  # module -> seconds, imported by this pass's load
    layers: list[int] | None = None  # what the backbone's features averaged (LoadedBackbone.layers)


def _compute(record: ModelRecord, sample: Sample, batch_size: int, device: str, progress: bool,
             with_source: bool, lb: Any = None, layers: Any = None) -> _Pass:
    """One pass over the sample: features, and the source probabilities when asked and the model has a head."""
    from zoo.backbones import load_backbone
    from zoo.backbones.preprocess import decode_image
    from zoo.estimates import import_modules

    t0 = time.perf_counter()
    imports: dict[str, float] = {}
    if lb is None:
        imports = import_modules(record.library)  # timed apart: a process pays them once (zoo.estimates)
        lb = load_backbone(record, device=device, modality=_tower(record, sample), layers=layers)
    load_seconds = time.perf_counter() - t0
    want = with_source and lb.has_source_head
    items = list(sample.items or [])
    chunks = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    feats: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    decode = forward = 0.0

    def run(batch: Any) -> None:
        nonlocal forward
        t = time.perf_counter()
        if want:
            f, p = lb.features_and_source_probs(batch, batch_size=batch_size)
            probs.append(p)
        else:
            f = lb.features(batch, batch_size=batch_size)
        forward += time.perf_counter() - t
        feats.append(f)

    with inference_settings(lb.device if lb.model is not None else "none") as threads, \
            _bar(len(items), progress, f"features {record.id}") as bar:
        if sample.modality == "image":
            from concurrent.futures import ThreadPoolExecutor

            def load_images(paths: list) -> tuple[Any, float]:
                import torch

                t = time.perf_counter()
                x = torch.stack([lb.preprocess(decode_image(p)) for p in paths])
                return x, time.perf_counter() - t

            # Decode the next batches while one runs through the network (PIL and torch release the GIL).
            workers = decode_workers(lb.device, record.input_size[-1] if record.input_size else None)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoo-decode") as pool:
                pending = deque(pool.submit(load_images, c) for c in chunks[:workers])
                for i, chunk in enumerate(chunks):
                    x, dt = pending.popleft().result()
                    decode += dt / workers  # the workers decode side by side: their seconds overlap
                    if i + workers < len(chunks):
                        pending.append(pool.submit(load_images, chunks[i + workers]))
                    run(x)
                    bar.update(len(chunk))
        else:
            for chunk in chunks:
                run([str(s) for s in chunk])
                bar.update(len(chunk))
    f = np.concatenate(feats, axis=0) if feats else np.zeros((0, lb.feature_dim), dtype=np.float32)
    p = None
    if want:
        p = np.concatenate(probs, axis=0) if probs else np.zeros((0, lb.source_classes), dtype=np.float32)
        p = np.ascontiguousarray(p, dtype=np.float32)
    return _Pass(np.ascontiguousarray(f, dtype=np.float32), p, lb.device, decode, load_seconds, forward,
                 threads if lb.model is not None else None, lb.source_classes, lb.source_labels, lb.no_source_head,
                 imports, list(lb.layers) if lb.layers else None)


def _meta(key: str, record: ModelRecord, sample: Sample, feats: np.ndarray, device: str, seconds: float,
          probs: np.ndarray | None, labels: list[str] | None, no_head: str, layers: list[int] | None = None) -> dict:
    meta: dict[str, Any] = {
        "key": key, "model_id": record.id, "data_hash": sample.content_hash, "source": sample.source,
        "modality": sample.modality, "n": int(feats.shape[0]), "d": int(feats.shape[1]),
        "dtype": "float32", "device": device, "seconds": round(seconds, 4),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "features_version": FEATURES_VERSION,
    }
    if layers:  # what the features are: e.g. "mean of layers 1-6" (zoo.backbones.layers)
        from zoo.backbones.layers import describe

        meta["layers"], meta["features"] = list(layers), describe(layers)
    if probs is not None:
        meta["source_classes"] = int(probs.shape[1])
        if labels:
            meta["source_labels"] = list(labels)
    elif no_head:
        meta["no_source_head"] = no_head  # known: later calls skip LEEP/NCE without loading the model
    return meta


def extract(record: ModelRecord, sample: Sample, *, batch_size: int = 64, device: str = "auto",
            cache: bool | str = True, progress: bool = False, with_source_probs: bool = False,
            layers: Any = "auto") -> Features:
    """Penultimate features ``(len(sample), d)`` of ``sample`` under ``record``, from the cache when possible.

    ``layers`` (:mod:`zoo.backbones.layers`): ``"auto"``, the features zoo scores (a transformer text encoder's
    mean over all its layers, every other model's own output); None, the model's own output; ``"all"`` or a
    list of layer numbers. ``Features.layers`` says which layers were averaged.

    ``cache="read"`` reads the cache but never writes it: a Ray worker's features go back to the driver,
    the one writer (:func:`store`).

    ``with_source_probs=True`` also fills ``source_probs`` (the source head's softmax, one pass with the
    features, cached beside them) or, for a model without a source head, ``source_note`` (the reason).
    """
    from zoo.source_heads import source_head_status

    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_modality(record, sample)
    if sample.modality != "array" and (record.weights or "").startswith("hf:"):
        from zoo.fetching import ensure

        ensure(record)  # fetched first: the cache key names the snapshot's commit, not "missing"
    from zoo.backbones.layers import requested

    spec = requested(record, sample.modality, layers)
    key = feature_key(record, sample, spec)
    status = source_head_status(record)
    want = with_source_probs and status.has_head is not False
    note = status.reason if with_source_probs and not want else ""
    if sample.modality == "array":
        t = time.perf_counter()
        feats = _array_features(sample)
        note = ("precomputed embeddings (.npz) carry no source-model predictions, so LEEP and NCE do not apply"
                if with_source_probs else "")
        return Features(record.id, sample.content_hash, key, feats, time.perf_counter() - t, False, "cpu", 0.0,
                        source_note=note)
    lb = None
    preload = 0.0  # seconds spent loading the model on a cache hit that still needs a pass (Keras heads)
    write = bool(cache) and cache != "read"
    if cache:
        hit = _read(key, len(sample))
        if hit is not None:
            arr, meta, probs = hit
            out = Features(record.id, sample.content_hash, key, arr, 0.0, True, str(meta.get("device", "cpu")), 0.0,
                           source_note=note, layers=meta.get("layers"))
            if not want:
                return out
            if probs is not None:
                out.source_probs, out.source_classes = probs, probs.shape[1]
                out.source_labels = meta.get("source_labels")
                return out
            if meta.get("no_source_head"):
                out.source_note = str(meta["no_source_head"])
                return out
            # Cached features without probabilities: a head on the pooled features needs no forward pass.
            from zoo.backbones import load_backbone

            t0 = time.perf_counter()
            lb = load_backbone(record, device=device, modality=_tower(record, sample))
            probs = lb.source_probs_from_features(arr) if lb.has_source_head else None
            if probs is not None or not lb.has_source_head:
                meta = _meta(key, record, sample, arr, lb.device, float(meta.get("seconds") or 0.0), probs,
                             lb.source_labels, lb.no_source_head, meta.get("layers"))
                if write:
                    _write(key, arr, meta, probs, features_too=False)
                out.seconds = out.load_seconds = time.perf_counter() - t0
                out.source_probs, out.source_classes, out.source_labels = probs, lb.source_classes, lb.source_labels
                out.source_note = lb.no_source_head if probs is None else ""
                return out
            # the Keras heads read the feature map: one full pass for both below
            preload = time.perf_counter() - t0
    t0 = time.perf_counter()
    # A backbone loaded above for a source head reads the model's own output; it serves layers=None only.
    res = _compute(record, sample, batch_size, device, progress, want, lb if spec is None else None, spec)
    seconds = time.perf_counter() - t0 + preload
    res.load += preload
    _calibrate(record, sample, res, seconds, batch_size)
    if write:
        _write(key, res.features, _meta(key, record, sample, res.features, res.device, seconds, res.probs,
                                        res.source_labels, res.no_source_head, res.layers), res.probs)
    out = Features(record.id, sample.content_hash, key, res.features, seconds, False, res.device, res.decode,
                   res.load, res.forward, threads=res.threads, layers=res.layers)
    if with_source_probs:
        out.source_probs, out.source_classes = res.probs, (res.source_classes if res.probs is not None else None)
        out.source_labels = res.source_labels if res.probs is not None else None
        out.source_note = note or ("" if res.probs is not None else res.no_source_head)
    return out


def _calibrate(record: ModelRecord, sample: Sample, res: _Pass, seconds: float, batch_size: int) -> None:
    """Keep this extraction's timings for later estimates (zoo.estimates)."""
    from zoo import estimates

    imported = sum(res.imports.values())
    estimates.record(estimates.Measurement(
        model_id=record.id, device="cuda" if res.device.startswith("cuda") else res.device, library=record.library or "",
        modality=sample.modality, params=record.params, n=len(sample),
        work=estimates.work_per_item(record, sample, batch_size=batch_size),
        source_mpx=estimates.source_megapixels(sample), seconds=seconds, import_seconds=imported,
        load_seconds=max(res.load - imported, 0.0), decode_seconds=res.decode, forward_seconds=res.forward,
        threads=res.threads, imports=dict(res.imports)))


def store(record: ModelRecord, sample: Sample, feats: Features, layers: Any = "auto") -> bool:
    """Put features computed elsewhere (a Ray worker, from the same record and sample, extracted with the same
    ``layers``) into this machine's cache under this machine's key, unless an entry is there already; True when
    written."""
    if sample.modality == "array":
        return False  # an .npz holds the features themselves: nothing is cached for it
    try:
        key = feature_key(record, sample, layers)
    except ZooError:
        key = feats.key
    if _read(key, len(sample)) is not None:
        return False
    probs = feats.source_probs
    _write(key, feats.features, _meta(key, record, sample, feats.features, feats.device, feats.seconds, probs,
                                      feats.source_labels, feats.source_note if probs is None else "", feats.layers),
           probs)
    return True


def _array_features(sample: Sample) -> np.ndarray:
    """An .npz sample's precomputed features as zoo scores them: one float32 row per item."""
    arr = np.asarray(sample.arrays)
    return np.ascontiguousarray(arr.reshape(len(arr), -1), dtype=np.float32)


def cached(record: ModelRecord, sample: Sample, layers: Any = "auto") -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(features, source probabilities or None)`` of ``record`` on ``sample`` as this machine already has them
    (an .npz's own arrays, or the feature cache's entry for ``layers`` as in :func:`extract`), without loading
    the model; None when not cached."""
    if sample.modality == "array":
        return _array_features(sample), None
    try:
        key = feature_key(record, sample, layers)
    except ZooError:
        return None
    got = _read(key, len(sample))
    return None if got is None else (got[0], got[2])


def extract_source_probs(record: ModelRecord, sample: Sample, **kwargs: Any) -> np.ndarray:
    """The source head's softmax ``(len(sample), C_source)`` float32 (cached like the features, and
    computed in the same pass). Raises :class:`~zoo.source_heads.NoSourceHead` with the reason when the
    model has none. Keyword arguments as for :func:`extract`."""
    from zoo.source_heads import NoSourceHead

    out = extract(record, sample, with_source_probs=True, **kwargs)
    if out.source_probs is None:
        raise NoSourceHead(out.source_note or f"{record.id} has no source classification head")
    return out.source_probs


# ---------------------------------------------------------------------------------------- cache files


def _read(key: str, n: int) -> tuple[np.ndarray, dict, np.ndarray | None] | None:
    """A cached entry ``(features, meta, source_probs | None)``, or None when absent or damaged (shape/dtype
    disagreeing with its metadata). Damaged source probabilities alone read as absent (recomputed)."""
    folder = features_dir()
    try:
        meta = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        arr = np.load(folder / f"{key}.npy", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None
    if arr.dtype != np.float32 or arr.ndim != 2 or arr.shape != (meta.get("n"), meta.get("d")) or arr.shape[0] != n:
        return None
    probs = None
    if meta.get("source_classes"):
        try:
            probs = np.load(folder / f"{key}{_SRC}", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            probs = None
        if probs is not None and (probs.dtype != np.float32 or probs.shape != (n, meta["source_classes"])):
            probs = None
    return arr, meta, probs


_SRC = ".src.npy"  # suffix of the source-probabilities file beside <key>.npy


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write(key: str, feats: np.ndarray, meta: dict, probs: np.ndarray | None = None, *,
           features_too: bool = True) -> None:
    folder = features_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # The arrays first, then the sidecar: an entry (and its probabilities) counts only once the sidecar
        # naming them is in place.
        if features_too:
            _atomic_write(folder / f"{key}.npy", lambda f: np.save(f, feats, allow_pickle=False))
        if probs is not None:
            _atomic_write(folder / f"{key}{_SRC}", lambda f: np.save(f, probs, allow_pickle=False))
        _atomic_write(folder / f"{key}.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
        if probs is None:  # a rewritten entry without probabilities must not keep stale ones
            with contextlib.suppress(FileNotFoundError):
                (folder / f"{key}{_SRC}").unlink()
    except OSError as e:  # a read-only or full cache is not fatal: the features are still returned, and it is said
        from zoo.errors import warn

        warn(f"Features were not cached in {folder} ({e.strerror or e}): they are computed again next time. Free "
             "space there (zoo cache clear drops old features) or set ZOO_CACHE_DIR to a writable folder with room.")


def cache_info() -> list[dict]:
    """Cached feature sets, oldest first: key, model_id, data_hash, n, d, bytes, created, seconds, layers."""
    folder = features_dir()
    if not folder.is_dir():
        return []
    entries = []
    for side in folder.glob("*.json"):
        npy, src = side.with_suffix(".npy"), side.with_name(side.stem + _SRC)
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
            size = sum(f.stat().st_size for f in (side, npy, src) if f.exists())
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict):
            continue
        entries.append({
            "key": side.stem, "model_id": meta.get("model_id"), "data_hash": meta.get("data_hash"),
            "n": meta.get("n"), "d": meta.get("d"), "bytes": size, "created": meta.get("created"),
            "seconds": meta.get("seconds"),  # how long the extraction took: a measured speed for estimates
            "source_classes": meta.get("source_classes"),  # source probabilities cached beside (LEEP/NCE)
            "layers": meta.get("layers"),  # the transformer layers averaged; None: the model's own output
        })
    entries.sort(key=lambda e: (str(e["created"] or ""), e["key"]))
    return entries


def _normalise_id(model_id: str) -> str:
    from zoo.ids import ModelId

    try:
        return str(ModelId.parse(model_id))
    except Exception:  # noqa: BLE001 - match the raw text when it is not a valid id
        return model_id


def clear_cache(model_id: str | None = None) -> int:
    """Remove cached feature sets (only ``model_id``'s when given); the number of entries removed."""
    folder = features_dir()
    if not folder.is_dir():
        return 0
    if model_id is not None:
        want = _normalise_id(model_id)
        keys = {e["key"] for e in cache_info() if e["model_id"] in (want, model_id)}
    else:
        # keys are hex digests: everything before the first dot (<key>.npy, <key>.src.npy, <key>.json)
        keys = {p.name.split(".", 1)[0] for p in folder.glob("*.json")} | \
            {p.name.split(".", 1)[0] for p in folder.glob("*.npy") if not p.name.startswith(".")}
        for tmp in folder.glob(".*.tmp"):  # leftovers of interrupted writes
            with contextlib.suppress(OSError):
                tmp.unlink()
    removed = 0
    for key in keys:
        gone = False
        for suffix in (".json", ".npy", _SRC):  # the sidecar first: a lone .npy is never served
            with contextlib.suppress(FileNotFoundError):
                (folder / f"{key}{suffix}").unlink()
                gone = True
        removed += gone
    return removed
