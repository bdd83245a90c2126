"""How long a feature extraction will take on this machine, from this machine's own measurements.

Every extraction that runs (``zoo.features.extract``, not a cache hit) is recorded here: the model, the
device, the torch threads, how many items, and its seconds split into library imports, model loading,
image decoding and forward passes, with the work per item (the model's input pixels for images; for texts
the padded tokens per item) and, for images, the source images' megapixels. The newest
:data:`KEEP` measurements are kept in ``cache_dir()/throughput.json`` (apart from the feature cache, so
``zoo cache clear`` keeps them).

:func:`estimate` then gives the seconds an extraction will take, with its basis:

- **measured**: the model ran on this device before. Its own per-item time is scaled by the work per item
  (input pixels or tokens: the forward part; source megapixels: the decoding part), plus its own load time.
- **cost model**: the model never ran here. The forward time per item is fitted on the measured models of
  the same modality and device, ``log t = a + b log(params) + c log(work)`` (least squares when at least three
  models with different sizes were measured, else ``b = c = 1``: cost proportional to parameters x work),
  with ``a`` per runtime (torch, ONNX, word vectors) when that runtime was measured; decoding per source
  megapixel and the load time (by parameters) are fitted on every measurement of the device.
- **default**: nothing was measured on this machine yet: fixed rates (:data:`DEFAULT_ITEM_SECONDS_PER_PARAM`,
  :data:`DEFAULT_LOAD_SECONDS`), rough by nature, and said so.

Library imports (torch, timm, transformers, sentence-transformers, onnxruntime, ...) are counted once per
process, for the first model that needs them, at their measured cost on this machine (else a default).
``benchmarks/bench_estimates.py`` measures how close the estimates come (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

KEEP = 500  # measurements kept, newest first
# The Python modules each loader imports (in this order), so their import time is counted once per process.
LIBRARY_MODULES: dict[str, tuple[str, ...]] = {
    "timm": ("torch", "torchvision", "timm"),
    "torchvision": ("torch", "torchvision"),
    "cifar_resnet": ("torch", "torchvision"),  # the image transforms are torchvision's
    "mini_xception": ("torch", "torchvision"),
    "transformers": ("torch", "torchvision", "transformers"),
    "sentence-transformers": ("torch", "torchvision", "transformers", "sentence_transformers"),
    "open_clip": ("torch", "torchvision", "open_clip"),
    # load_backbone imports torch to pick the device even for the encoders that do not run in it
    "onnx": ("torch", "onnxruntime", "tokenizers"),
    "glove_avg": ("torch", "pyarrow"),
}
# How fast a runtime is per parameter differs: the cost model's scale ``a`` is fitted per runtime.
RUNTIME = {"onnx": "onnx", "glove_avg": "word-vectors"}  # every other library runs in torch
# Used only before anything was measured here (the "default" basis): seconds per item per parameter for an
# image at 224 px or a text of 64 tokens (ResNet-50: ~0.05 s per image on 2 CPU cores), a load time, and
# import times (measured once on a 2-core machine; the first measurement here replaces each).
DEFAULT_ITEM_SECONDS_PER_PARAM = 2e-9
DEFAULT_LOAD_SECONDS = (0.5, 2e-8)  # fixed + per parameter
DEFAULT_IMPORT_SECONDS = {"torch": 2.5, "torchvision": 3.0, "timm": 1.0, "transformers": 2.0,
                          "sentence_transformers": 6.0, "open_clip": 2.0, "onnxruntime": 0.3, "tokenizers": 0.05,
                          "pyarrow": 0.5}
_REF_WORK = {"image": 224 * 224, "text": 64.0}
_FILE = "throughput.json"


@dataclass
class Measurement:
    """One extraction as it ran: what it was, how much work, and where the seconds went."""

    model_id: str
    device: str
    library: str
    modality: str  # the data read: image or text
    params: int | None
    n: int
    work: float  # per item: the model's input pixels (images) or padded tokens (texts)
    source_mpx: float  # images: mean source megapixels (decoding cost); 0 for texts
    seconds: float  # the whole extraction: imports + load + the pass
    import_seconds: float
    load_seconds: float  # loading the model, imports excluded
    decode_seconds: float
    forward_seconds: float
    threads: int | None
    created: str = ""
    imports: dict[str, float] = field(default_factory=dict)  # module -> seconds, for modules this run imported

    @property
    def item_seconds(self) -> float:
        """The pass's seconds per item (decoding and forward passes, as they overlapped)."""
        return max(self.seconds - self.import_seconds - self.load_seconds, 0.0) / max(self.n, 1)


@dataclass
class Estimate:
    seconds: float
    basis: str  # "measured", "cost model" or "default"
    detail: str  # the basis in words
    import_seconds: float = 0.0  # of ``seconds``: library imports this model is the first to need
    imports: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- storage


def _path() -> Path:
    from zoo.embed import cache_dir

    return cache_dir() / _FILE


def measurements() -> list[Measurement]:
    """Every stored measurement, newest first (an unreadable file reads as none)."""
    try:
        raw = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = set(Measurement.__dataclass_fields__)
    out = []
    for item in raw.get("measurements", []) if isinstance(raw, dict) else []:
        if isinstance(item, dict):
            with contextlib.suppress(TypeError, ValueError):
                out.append(Measurement(**{k: v for k, v in item.items() if k in names}))
    return out


def record(m: Measurement) -> None:
    """Store ``m`` (best effort: a read-only cache costs the calibration, never the extraction)."""
    m.created = m.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    items = [asdict(m)] + [asdict(x) for x in measurements()][: KEEP - 1]
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"format": 1, "measurements": items}, f, indent=0)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)


def clear() -> None:
    """Forget every measurement (the benchmark starts from none)."""
    with contextlib.suppress(FileNotFoundError):
        _path().unlink()


# ----------------------------------------------------------------------------------------- measuring


def import_modules(library: str | None) -> dict[str, float]:
    """Import the modules ``library``'s loader needs; the seconds of each one that was not imported yet."""
    out: dict[str, float] = {}
    for mod in LIBRARY_MODULES.get(library or "", ()):
        if mod in sys.modules:
            continue
        t = time.perf_counter()
        try:
            if mod in ("torchvision", "timm", "transformers", "sentence_transformers", "open_clip"):
                from zoo._compat import ensure_torchvision

                ensure_torchvision()
            __import__(mod)
        except Exception:  # noqa: BLE001 - the loader reports a missing library with its own message
            return out
        out[mod] = time.perf_counter() - t
    return out


def work_per_item(record: Any, sample: Any, *, batch_size: int = 64) -> float:
    """The work an item costs the model: input pixels for an image model; for texts, tokens per item as the
    batches are padded (each batch to its longest text, at most the model's max_length)."""
    if sample.modality == "image":
        size = record.input_size or [3, 224, 224]
        return float(size[-1] * size[-2])
    if sample.modality == "text":
        limit = int(record.max_length or 512)
        lengths = [min(int(len(str(t).split()) * 1.3) + 2, limit) for t in (sample.items or [])]
        if not lengths:
            return 1.0
        padded = sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size])
                     for i in range(0, len(lengths), batch_size))
        return padded / len(lengths)
    return 1.0


def source_megapixels(sample: Any, probe: int = 32) -> float:
    """Mean megapixels of the sample's images (file headers of the first ``probe``); 0 for other data."""
    if sample.modality != "image" or not sample.items:
        return 0.0
    from PIL import Image

    sizes = []
    for path in list(sample.items)[:probe]:
        try:
            with Image.open(path) as im:
                sizes.append(im.size[0] * im.size[1] / 1e6)
        except OSError:
            continue
    return sum(sizes) / len(sizes) if sizes else 0.0


# ---------------------------------------------------------------------------------------- estimating


def _runtime(library: str | None) -> str:
    return RUNTIME.get(library or "", "torch")


def _latest_per_model(ms: Iterable[Measurement]) -> dict[str, Measurement]:
    out: dict[str, Measurement] = {}
    for m in ms:  # newest first
        out.setdefault(m.model_id, m)
    return out


@dataclass
class _Fit:
    """The cost model of one device, fitted on its measurements."""

    a: dict[tuple[str, str], float]  # (modality, runtime) -> log scale
    a_modality: dict[str, float]  # modality -> log scale over every runtime
    slopes: dict[str, tuple[float, float]]  # modality -> (b on log params, c on log work)
    models: dict[str, int]  # modality -> number of models it was fitted on
    decode: tuple[float, float]  # seconds per image: fixed + per source megapixel
    hidden: float  # share of the decoding time that adds to the pass (the rest overlaps the forward passes)
    load: tuple[float, float]  # seconds: fixed + per parameter
    n_measurements: int


def _fit(ms: Sequence[Measurement]) -> _Fit | None:
    import numpy as np

    latest = list(_latest_per_model(ms).values())
    if not latest:
        return None
    a: dict[tuple[str, str], float] = {}
    a_mod: dict[str, float] = {}
    slopes: dict[str, tuple[float, float]] = {}
    counts: dict[str, int] = {}
    for modality in sorted({m.modality for m in latest}):
        pts = [m for m in latest if m.modality == modality and m.params and m.work > 0 and m.forward_seconds > 0]
        if not pts:
            continue
        counts[modality] = len(pts)
        lp = np.log([float(m.params) for m in pts])
        lw = np.log([m.work for m in pts])
        ly = np.log([m.forward_seconds / m.n for m in pts])
        b, c = 1.0, 1.0
        torch_pts = [i for i, m in enumerate(pts) if _runtime(m.library) == "torch"]
        if len(torch_pts) >= 3 and np.ptp(lp[torch_pts]) > 0.5:
            idx = np.array(torch_pts)
            cols = [np.ones(len(idx)), lp[idx]] + ([lw[idx]] if np.ptp(lw[idx]) > 0.5 else [])
            coef, *_ = np.linalg.lstsq(np.stack(cols, axis=1), ly[idx], rcond=None)
            b = float(np.clip(coef[1], 0.2, 1.5))
            c = float(np.clip(coef[2], -0.5, 1.5)) if len(cols) == 3 else 1.0
        slopes[modality] = (b, c)
        resid = ly - b * lp - c * lw
        a_mod[modality] = float(np.median(resid))
        for rt in {_runtime(m.library) for m in pts}:
            a[(modality, rt)] = float(np.median([r for r, m in zip(resid, pts, strict=True) if _runtime(m.library) == rt]))
    imgs = [m for m in latest if m.modality == "image" and m.decode_seconds > 0]
    if imgs:
        per = np.array([m.decode_seconds / m.n for m in imgs])
        mpx = np.array([m.source_mpx for m in imgs])
        if len(imgs) >= 2 and np.ptp(mpx) > 0.05:
            coef, *_ = np.linalg.lstsq(np.stack([np.ones(len(imgs)), mpx], axis=1), per, rcond=None)
            decode = (max(float(coef[0]), 0.0), max(float(coef[1]), 0.0))
        else:
            decode = (float(np.median(per)), 0.0)
        shares = [(m.item_seconds - m.forward_seconds / m.n) / (m.decode_seconds / m.n) for m in imgs]
        hidden = float(np.clip(np.median(shares), 0.0, 1.0))
    else:
        decode, hidden = (0.0, 0.0), 1.0
    loads = [m for m in latest if m.params]
    if len(loads) >= 2 and np.ptp([float(m.params) for m in loads]) > 0:
        x = np.array([float(m.params) for m in loads])
        coef, *_ = np.linalg.lstsq(np.stack([np.ones(len(x)), x], axis=1),
                                   np.array([m.load_seconds for m in loads]), rcond=None)
        load = (max(float(coef[0]), 0.0), max(float(coef[1]), 0.0))
    elif loads:
        load = (float(np.median([m.load_seconds for m in loads])), 0.0)
    else:
        load = DEFAULT_LOAD_SECONDS
    return _Fit(a, a_mod, slopes, counts, decode, hidden, load, len(ms))


class Estimator:
    """Estimates for the models of one command: the device's measurements are read and fitted once, and
    library imports are counted once (``imported``: modules already loaded or needed by an earlier model)."""

    def __init__(self, device: str = "auto", threads: int | None = None):
        self.device = resolve_device(device)
        self.threads = threads
        every = measurements()
        self.mine = [m for m in every if m.device == self.device]
        self.fit = _fit(self.mine)
        self.import_costs: dict[str, float] = {}
        for m in reversed(every):  # newest wins
            self.import_costs.update(m.imports)
        self.imported = {m for mods in LIBRARY_MODULES.values() for m in mods if m in sys.modules}

    def _imports(self, library: str | None) -> tuple[float, list[str]]:
        new = [m for m in LIBRARY_MODULES.get(library or "", ()) if m not in self.imported]
        self.imported.update(new)
        return sum(self.import_costs.get(m, DEFAULT_IMPORT_SECONDS.get(m, 1.0)) for m in new), new

    def _own(self, model_id: str) -> Measurement | None:
        same = [m for m in self.mine if m.model_id == model_id]
        if not same:
            return None
        if self.threads is not None:
            exact = [m for m in same if m.threads == self.threads]
            if exact:
                return exact[0]
        return same[0]

    def estimate(self, record: Any, sample: Any) -> Estimate:
        n = len(sample)
        modality = sample.modality if sample.modality in ("image", "text") else record.modality
        work = work_per_item(record, sample)
        mpx = source_megapixels(sample) if modality == "image" else 0.0
        imp, new = self._imports(record.library)
        own = self._own(record.id)
        fit = self.fit
        decode_item = 0.0
        if modality == "image" and fit is not None:
            decode_item = fit.decode[0] + fit.decode[1] * mpx
        if own is not None:
            fwd = own.forward_seconds / max(own.n, 1)
            dec = own.decode_seconds / max(own.n, 1)
            rest = max(own.item_seconds - fwd, 0.0)  # the decoding that did not overlap, and overheads
            fwd_new = fwd * (work / own.work if own.work > 0 else 1.0)
            if modality == "image" and dec > 0 and fit is not None:
                dec_then = fit.decode[0] + fit.decode[1] * own.source_mpx
                rest *= (decode_item / dec_then) if dec_then > 0 else 1.0
            if self.threads and own.threads and own.threads != self.threads and self.device == "cpu":
                fwd_new *= (own.threads / self.threads) ** 0.7
            seconds = imp + own.load_seconds + n * (fwd_new + rest)
            detail = (f"measured: {record.id} ran on {self.device} before ({own.n} items in {own.seconds:.1f} s, "
                      f"{own.created[:10] or 'date unknown'}), scaled to this data")
            return Estimate(seconds, "measured", detail, imp, new)
        params = record.params
        if fit is not None and params and modality in fit.slopes:
            b, c = fit.slopes[modality]
            rt = _runtime(record.library)
            a = fit.a.get((modality, rt), fit.a_modality[modality])
            fwd = math.exp(a + b * math.log(params) + c * math.log(max(work, 1.0)))
            load = fit.load[0] + fit.load[1] * params
            seconds = imp + load + n * (fwd + fit.hidden * decode_item)
            runtime_note = "" if (modality, rt) in fit.a else f"; no {rt} model measured yet, so scaled like the others"
            detail = (f"cost model: fitted on {fit.models[modality]} {modality} model(s) measured on {self.device} "
                      f"(time ~ params^{b:.2f} x {'pixels' if modality == 'image' else 'tokens'}^{c:.2f}"
                      f"{runtime_note})")
            return Estimate(seconds, "cost model", detail, imp, new)
        p = params or 25_000_000
        fwd = DEFAULT_ITEM_SECONDS_PER_PARAM * p * work / _REF_WORK.get(modality, work or 1.0)
        load = DEFAULT_LOAD_SECONDS[0] + DEFAULT_LOAD_SECONDS[1] * p
        why = "no measurement on this machine yet" if fit is None else \
            (f"no {modality} model measured on {self.device} yet" if params else "its parameter count is unknown")
        return Estimate(imp + load + n * fwd, "default", f"default rate: {why}", imp, new)


def resolve_device(device: str) -> str:
    """The device an extraction with ``device`` runs on ("auto": CUDA when there is one), without importing
    torch when it is not loaded yet."""
    if device != "auto":
        return "cuda" if device.startswith("cuda") else device
    if "torch" in sys.modules:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists() else "cpu"


def summary(estimates: Sequence[Estimate]) -> str:
    """The bases of several estimates in a few words: "2 from their own measured speed, 1 from the cost model"."""
    counts: dict[str, int] = {}
    for e in estimates:
        counts[e.basis] = counts.get(e.basis, 0) + 1
    words = {"measured": "from its own measured speed here", "cost model": "from a cost model fitted on this machine",
             "default": "from a default rate (nothing measured here yet)"}
    parts = [f"{k} {words[b]}" if k == 1 else f"{k} {words[b].replace('its own', 'their own')}"
             for b, k in counts.items()]
    imp = sum(e.import_seconds for e in estimates)
    mods = sorted({m for e in estimates for m in e.imports})
    return "; ".join(parts) + (f"; includes ~{imp:.0f} s importing {', '.join(mods)}" if mods else "")


# A linear probe on cached features (zoo.probe: 5 folds, the standard grid, batched L-BFGS): measured on the shared
# 2-core machine at load 12 (2026-12-05), probe_features took 3.4 s for 300 x 256 features of 5 classes (first call,
# imports included) and 1.0 s for 500 x 768 of 10; the command adds reading the data and the cached features. A
# deliberately generous cost model: a fixed part plus a part that grows with rows x dimensions x classes.
PROBE_FIXED_SECONDS = 3.0
PROBE_SECONDS_PER_UNIT = 5e-7  # per row x dimension x class


def probe_seconds(n: int, feature_dim: int, classes: int) -> float:
    """Estimated seconds of a linear probe of one candidate whose features are cached (``zoo.probe``)."""
    return PROBE_FIXED_SECONDS + PROBE_SECONDS_PER_UNIT * n * max(1, feature_dim) * max(2, classes)
