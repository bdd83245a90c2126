"""Penultimate features of a sample under a model, cached on disk.

:func:`extract` runs a :class:`~zoo.data.Sample` through a record's backbone
(:func:`zoo.backbones.load_backbone`, the model's own preprocessing, ``torch.inference_mode``, the GPU
when there is one) and returns a :class:`Features`: an ``(n, d)`` float32 matrix whose rows follow the
sample's item order.

- **Images** are decoded with PIL one by one (EXIF orientation applied; the colour mode and resizing
  are the backbone's ``preprocess``), timed separately as ``decode_seconds``, then batched through the
  backbone.
- **Texts** go to the backbone in batches of raw strings.
- **Arrays** (an ``.npz`` sample, ``modality == "array"``) are taken as precomputed features: the
  result is the arrays themselves, flattened to ``(n, -1)`` float32, for any model. This lets users
  score embeddings they computed elsewhere. Nothing is loaded and nothing is cached.

A sample whose modality does not fit the model (texts into an image model, ...) raises
:class:`~zoo.errors.UsageError` naming models that fit; weights missing on this machine raise the
backbone's :class:`~zoo.errors.WeightsUnavailable`.

Cache: ``cache_dir()/features/<key>.npy`` plus a ``<key>.json`` metadata sidecar, both written to a
temporary file and moved into place with ``os.replace``, so an interrupted run never leaves a half
entry. An entry whose array cannot be read or whose shape disagrees with its metadata (a truncated
file) is recomputed. :func:`feature_key` hashes the model id, a cheap fingerprint of the weight files
(size, mtime and a hash of the first and last MiB; a Hugging Face snapshot's folder name), the
sample's content hash and item order, and everything in the record that changes the features
(input size, mean, std, interpolation, crop_pct, max_length, pooling, ...) plus
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import DataError, Sample
from zoo.embed import cache_dir
from zoo.errors import UsageError
from zoo.record import ModelRecord

__all__ = ["FEATURES_VERSION", "Features", "cache_info", "clear_cache", "extract", "feature_key", "features_dir"]

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
    seconds: float  # extraction seconds: model load + decoding + forward passes (0 when served from cache)
    cached: bool
    device: str
    decode_seconds: float  # image decoding/resizing time (part of ``seconds``)
    load_seconds: float = field(default=0.0)  # model loading time (part of ``seconds``)

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
            from zoo.backbones import _assembled_dir

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


def feature_key(record: ModelRecord, sample: Sample) -> str:
    """The cache key: sha256 over the model id, its weights' fingerprint, the sample and the preprocessing."""
    doc = {
        "model": record.id,
        "weights": _weights_fingerprint(record) if sample.modality != "array" else None,
        "data": sample.content_hash,
        "modality": sample.modality,
        "order": _order_digest(sample),
        "preprocessing": _preprocessing(record),
    }
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


def _check_modality(record: ModelRecord, sample: Sample) -> None:
    if sample.modality == "array" or sample.modality == record.modality:
        return
    fits = _fitting_models(sample.modality)
    examples = f" Models that fit {sample.modality} data here: {', '.join(fits)}." if fits else ""
    raise UsageError(
        f"{record.id} is a {record.modality} model, but the sample {sample.source} is {sample.modality} data. "
        f"Pick a {sample.modality} model (`zoo search --modality {sample.modality}`).{examples} "
        "Precomputed embeddings (.npz with arrays x, y) fit every model.")


def _bar(total: int, progress: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", file=sys.stderr, disable=not progress, leave=False)


def _decode(path: str):
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im) or im
    except Exception as e:  # noqa: BLE001 - PIL raises many types
        raise DataError(f"Could not decode image {path} ({type(e).__name__}: {e}). The sample was read "
                        "earlier and this file changed or is damaged: fix or remove it and load the sample again.") from None


def _compute(record: ModelRecord, sample: Sample, batch_size: int, device: str,
             progress: bool) -> tuple[np.ndarray, str, float, float]:
    from zoo.backbones import load_backbone

    t0 = time.perf_counter()
    lb = load_backbone(record, device=device)
    load_seconds = time.perf_counter() - t0
    items = list(sample.items or [])
    n = len(items)
    out: list[np.ndarray] = []
    decode = 0.0
    with _bar(n, progress, f"features {record.id}") as bar:
        for start in range(0, n, batch_size):
            chunk = items[start:start + batch_size]
            if sample.modality == "image":
                import torch

                t = time.perf_counter()
                batch = torch.stack([lb.preprocess(_decode(p)) for p in chunk])
                decode += time.perf_counter() - t
                out.append(lb.features(batch, batch_size=batch_size))
            else:
                out.append(lb.features([str(s) for s in chunk], batch_size=batch_size))
            bar.update(len(chunk))
    feats = np.concatenate(out, axis=0) if out else np.zeros((0, lb.feature_dim), dtype=np.float32)
    return np.ascontiguousarray(feats, dtype=np.float32), lb.device, decode, load_seconds


def extract(record: ModelRecord, sample: Sample, *, batch_size: int = 64, device: str = "auto",
            cache: bool = True, progress: bool = False) -> Features:
    """Penultimate features ``(len(sample), d)`` of ``sample`` under ``record``, from the cache when possible."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_modality(record, sample)
    key = feature_key(record, sample)
    if sample.modality == "array":
        t = time.perf_counter()
        arr = np.asarray(sample.arrays)
        feats = np.ascontiguousarray(arr.reshape(len(arr), -1), dtype=np.float32)
        return Features(record.id, sample.content_hash, key, feats, time.perf_counter() - t, False, "cpu", 0.0)
    if cache:
        hit = _read(key, len(sample))
        if hit is not None:
            arr, meta = hit
            return Features(record.id, sample.content_hash, key, arr, 0.0, True, str(meta.get("device", "cpu")), 0.0)
    t0 = time.perf_counter()
    feats, dev, decode, load_seconds = _compute(record, sample, batch_size, device, progress)
    seconds = time.perf_counter() - t0
    if cache:
        _write(key, feats, {
            "key": key, "model_id": record.id, "data_hash": sample.content_hash, "source": sample.source,
            "modality": sample.modality, "n": int(feats.shape[0]), "d": int(feats.shape[1]),
            "dtype": "float32", "device": dev, "seconds": round(seconds, 4),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "features_version": FEATURES_VERSION,
        })
    return Features(record.id, sample.content_hash, key, feats, seconds, False, dev, decode, load_seconds)


# ---------------------------------------------------------------------------------------- cache files


def _read(key: str, n: int) -> tuple[np.ndarray, dict] | None:
    """A cached entry, or None when absent or damaged (shape/dtype disagreeing with its metadata)."""
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
    return arr, meta


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


def _write(key: str, feats: np.ndarray, meta: dict) -> None:
    folder = features_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # The array first, then the sidecar: an entry counts only once both are in place.
        _atomic_write(folder / f"{key}.npy", lambda f: np.save(f, feats, allow_pickle=False))
        _atomic_write(folder / f"{key}.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
    except OSError:
        pass  # a read-only or full cache is not fatal: the features are still returned


def cache_info() -> list[dict]:
    """Cached feature sets, oldest first: key, model_id, data_hash, n, d, bytes, created, seconds."""
    folder = features_dir()
    if not folder.is_dir():
        return []
    entries = []
    for side in folder.glob("*.json"):
        npy = side.with_suffix(".npy")
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
            size = side.stat().st_size + (npy.stat().st_size if npy.exists() else 0)
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict):
            continue
        entries.append({
            "key": side.stem, "model_id": meta.get("model_id"), "data_hash": meta.get("data_hash"),
            "n": meta.get("n"), "d": meta.get("d"), "bytes": size, "created": meta.get("created"),
            "seconds": meta.get("seconds"),  # how long the extraction took: a measured speed for estimates
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
        keys = {p.stem for p in folder.glob("*.json")} | {p.stem for p in folder.glob("*.npy")}
        for tmp in folder.glob(".*.tmp"):  # leftovers of interrupted writes
            with contextlib.suppress(OSError):
                tmp.unlink()
    removed = 0
    for key in keys:
        gone = False
        for suffix in (".json", ".npy"):  # the sidecar first: a lone .npy is never served
            with contextlib.suppress(FileNotFoundError):
                (folder / f"{key}{suffix}").unlink()
                gone = True
        removed += gone
    return removed
