"""Text embeddings stored in SQLite, and the vector index rebuilt from them.

SQLite is the source of truth: ``text_embeddings`` rows keyed by (key, embedding model) with the
hash of the embedded text, so only new or changed texts are embedded. The catalog ships the
vectors of its own cards for the default model; everything else goes into the user database.
The in-memory index (exact NumPy below ``ANN_MIN_ROWS``, a faiss IVF index above, where exact
search stops being cheap) is derived from those rows and rebuilt when they change.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.registry import Registry, in_chunks

ANN_MIN_ROWS = 200_000
_VECTOR_DTYPE = np.float16  # half the bytes; cosine error ~1e-3, far below ranking differences


def _to_blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype=_VECTOR_DTYPE).tobytes()


def _from_blob(b: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(b, dtype=_VECTOR_DTYPE, count=dim).astype(np.float32)


class EmbeddingStore:
    """Read and write text embeddings across the user database and the catalog."""

    def __init__(self, registry: Registry):
        self.registry = registry
        conn = registry.conn
        # A schema without the table (a catalog built before embeddings shipped) is simply skipped.
        self.schemas = [
            s for s in registry._schemas()
            if conn.execute(f"SELECT 1 FROM {s}.sqlite_master WHERE name = 'text_embeddings'").fetchone()
        ]

    def lookup(self, keys: Sequence[str], embed_model: str) -> dict[str, tuple[str, np.ndarray]]:
        """key -> (content hash, vector); the user database shadows the catalog."""
        out: dict[str, tuple[str, np.ndarray]] = {}
        conn = self.registry.conn
        wanted = list(dict.fromkeys(keys))
        for schema in reversed(self.schemas):  # catalog first, then main overrides
            for chunk, marks in in_chunks(wanted):
                q = (f"SELECT key, content_hash, dim, vector FROM {schema}.text_embeddings "
                     f"WHERE embed_model = ? AND key IN ({marks})")
                for key, h, dim, blob in conn.execute(q, [embed_model, *chunk]):
                    out[key] = (h, _from_blob(blob, dim))
        return out

    def all_with_prefix(self, prefix: str, embed_model: str) -> tuple[list[str], list[str], np.ndarray]:
        keys: dict[str, tuple[str, np.ndarray]] = {}
        for schema in reversed(self.schemas):
            q = (f"SELECT key, content_hash, dim, vector FROM {schema}.text_embeddings "
                 "WHERE embed_model = ? AND key >= ? AND key < ?")
            for key, h, dim, blob in self.registry.conn.execute(q, [embed_model, prefix, prefix + "\uffff"]):
                keys[key] = (h, _from_blob(blob, dim))
        names = sorted(keys)
        mat = np.stack([keys[k][1] for k in names]) if names else np.zeros((0, 0), np.float32)
        return names, [keys[k][0] for k in names], mat

    def ensure(self, items: Sequence[tuple[str, str]], embedder: Any, *, progress: bool = False) -> np.ndarray:
        """Vectors for (key, text) pairs, embedding and storing only the new or changed ones."""
        from zoo.cards import text_hash

        hashes = [text_hash(t) for _, t in items]
        have = self.lookup([k for k, _ in items], embedder.model_id)
        missing = [i for i, (k, _) in enumerate(items) if k not in have or have[k][0] != hashes[i]]
        vectors: dict[int, np.ndarray] = {}
        if missing:
            new = embedder.encode([items[i][1] for i in missing], progress=progress)
            rows = []
            for j, i in enumerate(missing):
                vectors[i] = new[j]
                rows.append((items[i][0], embedder.model_id, hashes[i], int(new.shape[1]), _to_blob(new[j])))
            self._store(rows)
        out = [vectors[i] if i in vectors else have[k][1] for i, (k, _) in enumerate(items)]
        return np.stack(out).astype(np.float32) if out else np.zeros((0, getattr(embedder, "dim", 0)), np.float32)

    def _store(self, rows: list[tuple]) -> None:
        """Cache new vectors in the user database, best effort: a read-only, locked or full database costs the
        cache (they are embedded again next time), never the answer, and says so."""
        from zoo.errors import DatabaseError, warn
        from zoo.registry import BEST_EFFORT_WAIT_S

        try:
            with self.registry.transaction(wait_s=BEST_EFFORT_WAIT_S) as conn:
                conn.executemany(
                    "INSERT INTO main.text_embeddings (key, embed_model, content_hash, dim, vector) VALUES (?,?,?,?,?)"
                    " ON CONFLICT(key, embed_model) DO UPDATE SET content_hash=excluded.content_hash,"
                    " dim=excluded.dim, vector=excluded.vector",
                    rows,
                )
        except DatabaseError as e:
            warn(f"{len(rows)} new text vector(s) were not cached, so they are computed again next time: {e}")


@dataclass
class VectorIndex:
    """Rows of unit vectors with their ids; exact search, or faiss IVF above ``ANN_MIN_ROWS``."""

    ids: list[str]
    matrix: np.ndarray
    _ann: Any = None
    nprobe: int = 64

    def __post_init__(self) -> None:
        self._pos = {k: i for i, k in enumerate(self.ids)}

    @property
    def approximate(self) -> bool:
        return self._ann is not None

    def position(self, key: str) -> int | None:
        return self._pos.get(key)

    def cosines(self, q: np.ndarray, keys: Sequence[str]) -> np.ndarray:
        """Exact cosine of ``q`` against the rows of ``keys`` (0 for a key without a vector)."""
        pos = [self._pos.get(k) for k in keys]
        out = np.zeros(len(keys), np.float32)
        have = [i for i, p in enumerate(pos) if p is not None]
        if have:
            out[have] = self.matrix[[pos[i] for i in have]] @ np.asarray(q, np.float32).ravel()
        return out

    def scores(self, q: np.ndarray) -> np.ndarray:
        """Exact cosine of ``q`` against every row."""
        return self.matrix @ np.asarray(q, np.float32).ravel()

    def search(self, q: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        k = min(k, len(self.ids))
        if k <= 0:
            return [], np.zeros(0, np.float32)
        q = np.asarray(q, np.float32).reshape(1, -1)
        if self._ann is not None:
            self._ann.nprobe = self.nprobe
            sims, idx = self._ann.search(q, k)
            keep = idx[0] >= 0
            return [self.ids[i] for i in idx[0][keep]], sims[0][keep]
        s = self.scores(q)
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return [self.ids[i] for i in top], s[top]

    @classmethod
    def build(cls, ids: list[str], matrix: np.ndarray, *, approximate: bool | None = None,
              cache_dir: Path | None = None) -> VectorIndex:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        use_ann = len(ids) >= ANN_MIN_ROWS if approximate is None else approximate
        index = cls(ids=ids, matrix=matrix)
        if use_ann:
            index._ann = _build_ivf(matrix, cache_dir)
        return index


def _build_ivf(matrix: np.ndarray, cache_dir: Path | None) -> Any:
    import faiss

    n, d = matrix.shape
    fingerprint = hashlib.sha256(matrix[:: max(1, n // 1000)].tobytes() + str(matrix.shape).encode()).hexdigest()[:16]
    path = (cache_dir / f"ivf-{fingerprint}.faiss") if cache_dir else None
    if path is not None and path.exists():
        return faiss.read_index(str(path))
    nlist = int(4 * np.sqrt(n))
    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    train = matrix[rng.choice(n, size=min(n, nlist * 40), replace=False)]
    ivf.train(train)
    ivf.add(matrix)
    if path is not None:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            faiss.write_index(ivf, str(tmp))
            os.replace(tmp, path)
        except (OSError, RuntimeError) as e:  # faiss reports a failed write as RuntimeError
            from zoo.errors import warn

            tmp.unlink(missing_ok=True)
            warn(f"The vector index was not cached in {path.parent} ({str(e).splitlines()[0][:200]}): it is built "
                 "again next time (seconds to minutes). Free space there or set ZOO_CACHE_DIR to a writable folder.")
    return ivf
