"""One tower of a transformers CLIP-style dual encoder (CLIP, MetaCLIP, SigLIP, Chinese-CLIP, AltCLIP, ALIGN,
``VisionTextDualEncoderModel``): the image tower for image data, the text tower for text data.

This module registers the ``transformers`` library on top of :mod:`zoo.backbones.from_transformers` (it is
imported after it): a folder whose ``config.json`` has a ``model_type`` in
:data:`zoo.loadable.DUAL_ENCODER_TYPES`, and every ``multimodal`` record, are loaded here; every other
record goes to the plain ``AutoModel`` adapter unchanged. The tower is the data modality
:func:`zoo.backbones.load_backbone` resolved (a ``multimodal`` record: ``"image"`` unless
``modality="text"``; an ``image`` or ``text`` record whose weights are a dual encoder: its own modality).
A multimodal record whose config is not a dual encoder (CLAP, X-CLIP, LayoutLMv3, Donut, ...) is refused with
the reason (:func:`zoo.loadable.not_encoder_reason`), as ``loadable_reason`` refuses it before any download.

Features are the projected embeddings, ``get_image_features`` / ``get_text_features``: the space the
contrastive loss aligned, so image and text features of one model are comparable, and the size catalogs
and model cards give as the model's embedding size (CLIP ViT-B/32: 512, the vision width being 768;
SigLIP has no projection, its pooled head output is the embedding). The CLIP paper's linear probes read the
pooled vision output before the projection instead; the projection is linear, so a linear probe on the
embedding sees a linear image of it (at most ``projection_dim`` wide).

The other tower is dropped after loading (``text_model``/``text_projection`` for the image tower,
``vision_model``/``visual_projection`` for the text tower), so ``LoadedBackbone.model`` holds, trains and
plans only the tower in use. Preprocessing is the model's own: ``AutoImageProcessor`` for images (a PIL
image or an array in, a ``(3, H, W)`` tensor out), ``AutoTokenizer`` for texts (SigLIP pads to its fixed
text length, as it was trained; the others pad to the longest text), passing the inputs
``get_text_features`` takes.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.backbones import from_transformers  # noqa: F401 - registers the plain adapter this one dispatches to
from zoo.backbones.core import _ADAPTERS, LoadedBackbone, register_adapter
from zoo.backbones.preprocess import processor_pipeline
from zoo.errors import ZooError
from zoo.record import ModelRecord
from zoo.weights import _text_folder

# The attributes of each tower in transformers' dual encoders (the same names in every DUAL_ENCODER_TYPES model).
_TOWER_PARTS = {"image": ("vision_model", "visual_projection"), "text": ("text_model", "text_projection")}
# Text towers trained on texts padded to a fixed length (and pooled at a fixed position): pad to it.
_PAD_TO_MAX = ("siglip",)


def _embedding(out: Any):
    """``get_*_features`` returns the embedding tensor (transformers 4) or an output whose ``pooler_output`` is
    the projected embedding (transformers 5)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    emb = getattr(out, "pooler_output", None)
    if emb is None:
        raise ZooError(f"get_*_features returned {type(out).__name__} without a pooler_output")
    return emb


def _make_tower(model: Any, tower: str):
    import torch

    class DualEncoderTower(torch.nn.Module):
        """One tower of a dual encoder: ``forward(**inputs)`` returns ``(N, embed_dim)`` projected embeddings."""

        def __init__(self, model: Any, tower: str):
            super().__init__()
            self.model = model
            self.tower = tower

        def forward(self, **inputs: Any) -> torch.Tensor:
            if self.tower == "image":
                return _embedding(self.model.get_image_features(**inputs))
            return _embedding(self.model.get_text_features(**inputs))

    for name in _TOWER_PARTS["text" if tower == "image" else "image"]:
        if isinstance(getattr(model, name, None), torch.nn.Module):
            setattr(model, name, None)  # the other tower: never run, never trained
    return DualEncoderTower(model, tower)


def load_transformers_tower(record: ModelRecord, folder: Path, config: Any, tower: str, device: str) -> LoadedBackbone:
    """The ``tower`` ("image" or "text") of the dual encoder in ``folder`` as a :class:`LoadedBackbone`."""
    import torch
    from transformers import AutoModel

    if tower not in _TOWER_PARTS:
        raise ZooError(f"{record.id} is a vision-language model with image and text towers; it cannot read {tower} data.")
    kw = {"trust_remote_code": False, "local_files_only": True}
    auto = AutoModel.from_pretrained(str(folder), **kw)
    mtype = str(getattr(config, "model_type", ""))
    for name in ("get_image_features", "get_text_features"):
        if not hasattr(auto, name):
            raise ZooError(f"{record.id}: transformers built {type(auto).__name__} for model_type {mtype!r}, which has "
                           f"no {name}; zoo cannot split it into towers.")
    model = _make_tower(auto, tower).to(device).eval()

    if tower == "text":
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder), **kw)
        text_cfg = getattr(config, "text_config", None) or config
        limit = int(getattr(text_cfg, "max_position_embeddings", None) or 512)
        tok_max = getattr(tok, "model_max_length", None)
        tok_max = int(tok_max) if isinstance(tok_max, int) and 0 < tok_max < 100_000 else limit
        max_len = int(record.max_length or min(tok_max, limit))
        padding = "max_length" if mtype in _PAD_TO_MAX else True
        # what get_text_features takes (a BERT tokenizer's token_type_ids reach Chinese-CLIP, not CLIP)
        names = {n for n, p in inspect.signature(auto.get_text_features).parameters.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

        def preprocess(texts: Sequence[str]) -> dict:
            enc = tok(list(texts), padding=padding, truncation=True, max_length=max_len, return_tensors="pt")
            return {k: v for k, v in enc.items() if k in names}

        def run(texts: Sequence[str]) -> np.ndarray:
            inputs = {k: v.to(device) for k, v in preprocess(texts).items()}
            return model(**inputs).float().cpu().numpy()

        note = (f"text tower of a {mtype} dual encoder: get_text_features (the projected text embedding); "
                f"max_length {max_len}{', padded to it' if padding == 'max_length' else ''}")
        probe_input: Any = ["a"]
    else:
        preprocess, run = processor_pipeline(record, str(folder), model, device, kw)
        note = (f"image tower of a {mtype} dual encoder: get_image_features (the projected image embedding); "
                "preprocessing from the model's image processor")
        probe_input = torch.stack([preprocess(np.zeros((8, 8, 3), np.uint8))])
    with torch.inference_mode():
        dim = int(run(probe_input).shape[1])
    return LoadedBackbone(record=record, model=model, head=None, preprocess=preprocess, feature_dim=dim,
                          trainable=True, note=note, _features_fn=run)


def _model_type(folder: Path) -> str:
    try:
        return str(json.loads((folder / "config.json").read_text()).get("model_type") or "")
    except (OSError, ValueError, AttributeError):
        return ""  # the plain adapter reads it again and reports what is wrong


_load_plain = _ADAPTERS["transformers"]  # the AutoModel adapter (zoo.backbones.from_transformers)


@register_adapter("transformers")
def _load_transformers(record: ModelRecord, *, device: str, modality: str | None = None,
                       layers: Any = None) -> LoadedBackbone:
    """A dual encoder's tower (multimodal records, and any folder whose config is a dual encoder), else the plain
    ``AutoModel`` encoder of :mod:`zoo.backbones.from_transformers` (which reads ``layers``; a tower keeps its
    projected embedding: ``layers="all"`` leaves it, a list of layers is refused)."""
    from zoo.backbones.layers import ALL
    from zoo.loadable import DUAL_ENCODER_TYPES, not_encoder_reason

    folder = _text_folder(record)
    mtype = _model_type(folder)
    if mtype not in DUAL_ENCODER_TYPES:
        if record.modality != "multimodal":
            return _load_plain(record, device=device, **({"layers": layers} if layers is not None else {}))
        why = not_encoder_reason(mtype, "multimodal") or "not a CLIP-style dual encoder"
        raise ZooError(f"{record.id} is {why} (config.json model_type {mtype or 'missing'!r}); zoo loads the image or "
                       f"text tower of transformers {', '.join(DUAL_ENCODER_TYPES)} models. Load it with transformers "
                       "directly.")
    if layers not in (None, ALL):
        raise ZooError(f"{record.id} is a vision-language dual encoder: its tower's features are the projected "
                       "embedding, not an average of layers; load it without layers.")
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    tower = modality or ("image" if record.modality == "multimodal" else record.modality)
    return load_transformers_tower(record, folder, config, tower, device)
