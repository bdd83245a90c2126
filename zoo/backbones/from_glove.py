"""The ``glove_avg`` adapter: a frozen text encoder that averages GloVe word vectors, with its word
tokenizer and the cached Parquet vocabulary."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.backbones.core import LoadedBackbone, cache_dir, register_adapter
from zoo.errors import WeightsUnavailable, ZooError
from zoo.record import ModelRecord
from zoo.weights import _fix_hint, resolve_weights

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
