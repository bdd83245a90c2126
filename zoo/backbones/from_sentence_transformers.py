"""The ``sentence-transformers`` adapter: ``SentenceTransformer`` from a local folder (or the folder that
scripts/assemble_mpnet.py builds from archive packages). Features: the pipeline's ``sentence_embedding``, or
with ``layers`` (:mod:`zoo.backbones.layers`) the mean over those transformer layers of the mask-mean-pooled
hidden states of the pipeline's first module (its Pooling, Dense and Normalize modules are not applied)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.backbones.core import LoadedBackbone, register_adapter
from zoo.backbones.layers import LayerSpec, describe, encode_layer_mean, resolve
from zoo.errors import ZooError
from zoo.record import ModelRecord
from zoo.weights import _text_folder


@register_adapter("sentence-transformers")
def _load_sentence_transformers(record: ModelRecord, *, device: str, layers: LayerSpec = None) -> LoadedBackbone:
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

    note = f"SentenceTransformer from {folder}; fine-tune with model(preprocess(texts))['sentence_embedding']."
    chosen = None
    if layers is not None:
        auto = getattr(model[0], "auto_model", None)  # the pipeline's Transformer module holds the HF model
        n = getattr(getattr(auto, "config", None), "num_hidden_layers", None)
        if auto is None or not n:
            raise ZooError(f"{record.id}: its first sentence-transformers module has no transformer with layers.")
        chosen = resolve(layers, int(n), record.id)
        run = _layer_mean_fn(model, auto, chosen, device)
        dim = int(auto.config.hidden_size)
        note += f" features(): {describe(chosen)} (mask-mean-pooled hidden states), not the sentence embedding."
    return LoadedBackbone(record=record, model=model, head=None, preprocess=preprocess, feature_dim=dim,
                          trainable=True, _features_fn=run, layers=chosen, note=note)


def _layer_mean_fn(model: Any, auto: Any, layers: tuple[int, ...], device: str):
    """texts -> (n, hidden) layer-mean features: the pipeline's own tokenisation (max_seq_length, its casing),
    then the HF model with ``output_hidden_states``."""
    tokenize = getattr(model, "preprocess", None) or model.tokenize

    def run(texts: Sequence[str]) -> np.ndarray:
        enc = tokenize(list(texts))
        names = ("input_ids", "attention_mask", "token_type_ids")
        return encode_layer_mean(auto, {k: enc[k].to(device) for k in names if k in enc}, layers)

    return run

