"""A model size comparable across families, for the fusion's size prior (no torch; reads small JSON files).

The catalog's ``params`` counts every parameter, so a word-vector encoder's lookup table (GloVe 6B-50d:
400,000 x 50 = 20M "parameters", and nothing else) and a BERT's token-embedding matrix (vocab x hidden:
~23M of BERT-base's 110M) weigh like network layers. The *non-embedding* parameter count (Kaplan et al.
2020, Scaling Laws for Neural Language Models, count model size this way) leaves those tables out:

- ``glove_avg``: 0 (the model is its lookup table);
- a transformer text encoder whose ``config.json`` is on this machine: ``params - vocab_size x hidden_size``
  (the token-embedding matrix; positions and the rest stay in);
- image, audio and video backbones: the catalog count (they have no token-embedding table; a ViT's patch
  embedding is a convolution and counts);
- anything else (a text encoder whose config is not here, an ONNX graph, a vision-language model): the
  catalog count, and the basis says that its embedding share is unknown.

:func:`comparable_size` returns the count and its basis in words; :data:`zoo.fusion.SIZE_BASIS` says which
count the size prior uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_NO_TOKEN_TABLE = ("image", "audio", "video")


def _config(record: Any) -> dict[str, Any] | None:
    """The model's ``config.json`` (transformers), found beside its weights on this machine; None if absent."""
    from zoo.weights import resolve

    try:
        path = resolve(record.weights)
    except (OSError, ValueError):
        return None
    if path is None:
        return None
    folder = path if path.is_dir() else path.parent
    for cand in (folder / "config.json", folder / "0_Transformer" / "config.json"):
        try:
            return json.loads(Path(cand).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def non_embedding_params(record: Any) -> tuple[int | None, str]:
    """``(count, basis)``: the parameters outside token-embedding tables, and how the count was obtained."""
    params = record.params
    if record.library == "glove_avg":
        return 0, "word vectors: the whole model is a lookup table, 0 parameters outside it"
    if record.modality in _NO_TOKEN_TABLE:
        return params, "catalog count (no token-embedding table in an image/audio/video backbone)"
    if record.modality == "text" and params:
        cfg = _config(record)
        vocab = (cfg or {}).get("vocab_size")
        hidden = (cfg or {}).get("hidden_size") or (cfg or {}).get("d_model") or (cfg or {}).get("dim")
        if isinstance(vocab, int) and isinstance(hidden, int) and vocab * hidden < params:
            return params - vocab * hidden, (f"catalog count minus the token-embedding table ({vocab:,} x {hidden} "
                                             "from the model's config.json)")
    if params is None:
        return None, "unknown (no parameter count in the catalog)"
    return params, "catalog count (its token-embedding share is unknown here)"


def comparable_size(record: Any, basis: str) -> tuple[int | None, str]:
    """The size the prior uses under ``basis`` (``"params"`` or ``"non_embedding_params"``), with its basis."""
    if basis == "params":
        return record.params, "catalog parameter count" if record.params else "unknown (no parameter count)"
    if basis == "non_embedding_params":
        return non_embedding_params(record)
    raise ValueError(f"unknown size basis {basis!r}; use 'params' or 'non_embedding_params'")
