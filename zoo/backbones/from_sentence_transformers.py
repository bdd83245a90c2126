"""The ``sentence-transformers`` adapter: ``SentenceTransformer`` from a local folder (or the folder that
scripts/assemble_mpnet.py builds from archive packages)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.backbones.core import LoadedBackbone, register_adapter
from zoo.record import ModelRecord
from zoo.weights import _text_folder


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

