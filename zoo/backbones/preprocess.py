"""Inputs to tensors: image decoding (:func:`decode_image`), the colour-mode conversion, timm-style eval
transforms built from a record's input size, mean, std, interpolation and crop_pct, batching of
preprocessed images, and the input size a transformers image processor expects."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.data import DataError
from zoo.errors import ZooError
from zoo.record import ModelRecord

if TYPE_CHECKING:
    import PIL.Image


def decode_image(path: str) -> PIL.Image.Image:
    """The image at ``path`` as a fully loaded ``PIL.Image`` with its EXIF orientation applied; a file PIL
    cannot read raises :class:`~zoo.data.DataError`."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im) or im
    except Exception as e:  # noqa: BLE001 - PIL raises many types
        raise DataError(f"Could not decode image {path} ({type(e).__name__}: {e}). The sample was read "
                        "earlier and this file changed or is damaged: fix or remove it and load the sample again.") from None


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


def _record_transform(record: ModelRecord, defaults: dict[str, Any] | None = None, *, squash: bool = False) -> Callable:
    """:func:`image_transform` with the record's input size, mean, std, interpolation and crop_pct, each
    taken from the model's ``defaults`` where the record leaves it empty."""
    d = defaults or {}
    size = record.input_size or d.get("input_size")
    mean = record.mean or d.get("mean")
    std = record.std or d.get("std")
    if not size or not mean or not std:
        raise ZooError(f"{record.id}: the record lacks input_size/mean/std and the model gives no defaults")
    return image_transform(size, mean, std, record.interpolation or d.get("interpolation") or "bilinear",
                           record.crop_pct or d.get("crop_pct") or 1.0, squash=squash)


def _processor_size(proc: Any) -> tuple[int, int]:
    """``(height, width)`` of the images a transformers image processor produces (its crop, else its resize)."""
    size = getattr(proc, "crop_size", None) or getattr(proc, "size", None) or 224
    if isinstance(size, (int, float)):
        return int(size), int(size)

    def get(key: str) -> Any:  # a dict or transformers' SizeDict
        return size.get(key) if hasattr(size, "get") else getattr(size, key, None)

    h = get("height") or get("shortest_edge") or 224
    w = get("width") or get("shortest_edge") or h
    return int(h), int(w)


def processor_pipeline(record: Any, folder: str, model: Any, device: str, kw: dict[str, Any]) -> tuple[Callable, Callable]:
    """``(preprocess, run)`` for a transformers image encoder: the folder's ``AutoImageProcessor`` turns one
    image into a tensor; ``run`` batches them through ``model(pixel_values=...)`` and returns NumPy features."""
    from transformers import AutoImageProcessor

    proc = AutoImageProcessor.from_pretrained(folder, **kw)
    channels = int((record.input_size or [3, *_processor_size(proc)])[0])

    def preprocess(img: Any):
        return proc(images=_to_pil(img, channels), return_tensors="pt")["pixel_values"][0]

    def run(batch: Any) -> np.ndarray:
        x = _as_batch(batch, preprocess)
        return model(pixel_values=x.to(device)).float().cpu().numpy()

    return preprocess, run

