"""The ``transformers`` adapter: ``AutoModel`` text and image encoders from a local folder or the HF cache,
pooled by the record's rule, the folder's sentence-transformers config, or the modality's default; a
CLIP-style dual encoder (``config.model_type`` in :data:`zoo.loadable.DUAL_ENCODER_TYPES`) loads the tower
that fits the data instead (:mod:`zoo.backbones.from_vision_language`). A text encoder loaded with ``layers``
(:mod:`zoo.backbones.layers`) gives ``features()`` = the mean over those layers of the mask-mean-pooled hidden
states; ``model`` keeps returning the record's pooling of the last hidden states."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.backbones.core import LoadedBackbone, register_adapter
from zoo.backbones.layers import ALL, LayerSpec, describe, encode_layer_mean, resolve
from zoo.backbones.preprocess import processor_pipeline
from zoo.errors import ZooError
from zoo.record import ModelRecord
from zoo.weights import _text_folder

if TYPE_CHECKING:
    import torch


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


def _auto_model(folder: Path, config: Any, kw: dict) -> tuple[Any, str]:
    """The module whose outputs zoo pools, and how it was found: ``"model"`` (``AutoModel``) or ``"encoder"``
    (the encoder of an encoder-decoder model: TrOCR's ViT/BEiT, T5's encoder; the decoder needs target
    tokens and is not a feature extractor)."""
    from transformers import AutoModel

    if getattr(config, "model_type", "") == "vision-encoder-decoder":  # AutoModel does not map it
        from transformers import VisionEncoderDecoderModel

        return VisionEncoderDecoderModel.from_pretrained(str(folder), **kw).get_encoder(), "encoder"
    auto = AutoModel.from_pretrained(str(folder), **kw)
    if getattr(config, "is_encoder_decoder", False) and hasattr(auto, "get_encoder"):
        return auto.get_encoder(), "encoder"
    return auto, "model"


def _ensure_pad_token(record: ModelRecord, tok: Any) -> None:
    """Batches of texts are padded; decoder tokenizers (GPT-2) have no pad token: pad with the end-of-text
    token, which the attention mask hides from the pooling (right padding)."""
    if getattr(tok, "pad_token", None) is not None:
        return
    for name in ("eos_token", "unk_token", "sep_token", "bos_token"):
        token = getattr(tok, name, None)
        if token is not None:
            tok.pad_token = token
            tok.padding_side = "right"
            return
    raise ZooError(f"{record.id}: its tokenizer has no padding token and no end-of-text token to pad with, so "
                   "zoo cannot batch texts for it.")


@register_adapter("transformers")
def _load_transformers(record: ModelRecord, *, device: str, layers: LayerSpec = None) -> LoadedBackbone:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import torch
    from transformers import AutoConfig

    if record.modality not in ("text", "image"):
        raise ZooError(f"{record.id}: the transformers adapter handles text and image encoders, not {record.modality!r} "
                       "models; load it with transformers directly.")
    folder = _text_folder(record)
    kw = {"trust_remote_code": False, "local_files_only": True}
    config = AutoConfig.from_pretrained(str(folder), **kw)
    mode = _transformers_pooling(record, folder, record.modality)
    auto, how = _auto_model(folder, config, kw)
    model = _make_pooled_encoder(auto, mode).to(device).eval()
    chosen: tuple[int, ...] | None = None

    if record.modality == "text":
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder), **kw)
        _ensure_pad_token(record, tok)
        limit = getattr(config, "max_position_embeddings", None) or 512
        max_len = int(record.max_length or min(getattr(tok, "model_max_length", 512) or 512, limit, 512))

        def preprocess(texts: Sequence[str]) -> dict:
            return dict(tok(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt"))

        def run(texts: Sequence[str]) -> np.ndarray:
            inputs = {k: v.to(device) for k, v in preprocess(texts).items()}
            return model(**inputs).float().cpu().numpy()

        note = f"{mode} pooling over the last hidden states{' of the encoder' if how == 'encoder' else ''}; max_length {max_len}"
        if layers is not None:
            n = getattr(config, "num_hidden_layers", None)  # transformers maps n_layer / num_layers onto it
            if not n:
                raise ZooError(f"{record.id}: its config names no number of layers, so zoo cannot average them.")
            chosen = resolve(layers, int(n), record.id)
            run = _layer_mean_fn(auto, preprocess, chosen, device)
            note += f"; features(): {describe(chosen)} (mask-mean-pooled hidden states)"
    else:
        if layers not in (None, ALL):
            raise ZooError(f"{record.id}: layer-mean features are for text encoders; this is an image model.")
        preprocess, run = processor_pipeline(record, str(folder), model, device, kw)
        note = (f"{mode} pooling (token outputs) / pooled output (conv nets)"
                f"{'; the encoder of an encoder-decoder model' if how == 'encoder' else ''}; "
                "preprocessing from the model's image processor")
    with torch.inference_mode():
        probe = run(["a"] if record.modality == "text" else torch.stack([preprocess(np.zeros((8, 8, 3), np.uint8))]))
    return LoadedBackbone(record=record, model=model, head=None, preprocess=preprocess, feature_dim=int(probe.shape[1]),
                          trainable=True, note=note, _features_fn=run, layers=chosen)


def _layer_mean_fn(auto: Any, preprocess: Any, layers: tuple[int, ...], device: str):
    """texts -> (n, hidden) layer-mean features of the ``AutoModel`` (or encoder) ``auto``."""

    def run(texts: Sequence[str]) -> np.ndarray:
        return encode_layer_mean(auto, {k: v.to(device) for k, v in preprocess(texts).items()}, layers)

    return run

