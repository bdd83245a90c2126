#!/usr/bin/env python
"""Build the shipped catalog ``registry.db`` reproducibly.

Inputs: the pinned timm (every pretrained tag), timm's results CSVs in the shared assets, and the
manifests in ``zoo/manifests/`` (the curated Hub models and the offline zoo). A fixed build
timestamp makes two builds byte-for-byte equal in ``sqlite3 registry.db .dump``.

    python scripts/build_registry.py            # writes ./registry.db
    python scripts/build_registry.py --out /tmp/r.db --check   # build elsewhere, compare dumps

The vectors of card and phrase texts that did not change are carried over from the previous catalog
(``./registry.db``, or ``--vectors-from``): the ONNX export of the embedding model is made on each machine,
and two machines' exports can round a vector differently in its last float16 bit, which would rewrite
thousands of unchanged rows. Only new or changed texts are embedded; ``--fresh-vectors`` embeds them all.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUILD_TIMESTAMP = "2026-11-22T00:00:00Z"
CATALOG_VERSION = "2026.11.22"
PINNED_TIMM = "1.0.31"
MANIFESTS = ["curated.yaml", "offline.yaml"]


def build(out: Path, timm_names: list[str] | None = None, vectors_from: Path | None = None) -> None:
    from zoo._compat import ensure_torchvision

    ensure_torchvision()
    import timm
    from tqdm import tqdm

    from zoo.config import MANIFEST_DIR
    from zoo.registry import Registry
    from zoo.sources import iter_source

    if timm.__version__ != PINNED_TIMM:
        sys.exit(f"timm {timm.__version__} installed; the catalog is built from timm {PINNED_TIMM}. "
                 f"pip install timm=={PINNED_TIMM}")
    fd, tmp = tempfile.mkstemp(suffix=".db", dir=out.parent)
    os.close(fd)
    os.unlink(tmp)
    reg = Registry(db=tmp, catalog=Path(tmp).with_suffix(".none"), create=True)
    total = len(timm_names) if timm_names is not None else len(timm.list_pretrained())
    with tqdm(total=total, desc="timm", unit="tag", disable=None) as bar:
        items = iter_source("timm", names=timm_names, progress=bar.update)
        s = reg.index("timm", items, indexed_at=BUILD_TIMESTAMP)
    print(f"timm: {s.added} records", file=sys.stderr)
    for name in MANIFESTS:
        path = MANIFEST_DIR / name
        if not path.exists():
            print(f"warning: {path} missing, skipped", file=sys.stderr)
            continue
        s = reg.index("manifest", iter_source("manifest", path=path), indexed_at=BUILD_TIMESTAMP)
        print(f"{name}: {s.added} records", file=sys.stderr)
    embed_catalog(reg, vectors_from)
    with reg.transaction() as conn:
        reg.set_meta(conn, {"catalog_version": CATALOG_VERSION, "build_timestamp": BUILD_TIMESTAMP,
                            "timm_version": timm.__version__})
        conn.execute("UPDATE _sqlite_migrations SET applied_at = ?", [BUILD_TIMESTAMP])
        conn.execute("DELETE FROM index_runs")  # history belongs to users' databases, not the catalog
        conn.execute("INSERT INTO models_fts(models_fts) VALUES ('optimize')")
    reg.close()
    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("VACUUM")
    conn.close()
    os.replace(tmp, out)


def embed_catalog(reg, vectors_from: Path | None = None) -> None:
    """Ship the default model's vectors of every card and vocabulary phrase, so the first
    ``zoo recommend`` embeds only the query. Vectors of ``vectors_from`` (a previous catalog) whose key,
    embedding model and text hash are unchanged are kept as they are; the rest are embedded."""
    from zoo.cards import card_text, text_hash
    from zoo.embed import get_embedder
    from zoo.understand import phrase_items
    from zoo.vectors import EmbeddingStore

    embedder = get_embedder()
    items = [(f"card:{r.id}", card_text(r)) for r in reg.iter_records()] + phrase_items()
    kept = 0
    if vectors_from is not None and vectors_from.is_file():
        conn = reg.conn  # autocommit: ATTACH cannot run inside a transaction
        conn.execute("ATTACH DATABASE ? AS previous", [str(vectors_from)])
        try:
            kept = conn.execute("INSERT INTO main.text_embeddings SELECT * FROM previous.text_embeddings "
                                "WHERE embed_model = ?", [embedder.model_id]).rowcount
        finally:
            conn.execute("DETACH DATABASE previous")
    store = EmbeddingStore(reg)
    have = store.lookup([k for k, _ in items], embedder.model_id) if kept else {}
    reused = sum(1 for k, t in items if k in have and have[k][0] == text_hash(t))
    store.ensure(items, embedder, progress=True)
    # vectors of texts that are gone (a removed model) are not shipped
    keys = {k for k, _ in items}
    with reg.transaction() as conn:
        stale = [k for (k,) in conn.execute("SELECT key FROM main.text_embeddings") if k not in keys]
        conn.executemany("DELETE FROM main.text_embeddings WHERE key = ?", [(k,) for k in stale])
    print(f"{len(items)} texts with {embedder.model_id}: {reused} vectors kept from {vectors_from}, "
          f"{len(items) - reused} embedded" if reused else f"{len(items)} texts embedded with {embedder.model_id}",
          file=sys.stderr)


def dump(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "registry.db")
    ap.add_argument("--check", action="store_true", help="also compare the new dump with ./registry.db")
    ap.add_argument("--vectors-from", type=Path, default=ROOT / "registry.db",
                    help="keep this catalog's vectors of unchanged texts (default ./registry.db)")
    ap.add_argument("--fresh-vectors", action="store_true", help="embed every text again")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    build(args.out, vectors_from=None if args.fresh_vectors else args.vectors_from)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)", file=sys.stderr)
    if args.check:
        same = dump(args.out) == dump(ROOT / "registry.db")
        print("dump identical to ./registry.db" if same else "dump DIFFERS from ./registry.db", file=sys.stderr)
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
