"""Numbered schema migrations (``sqlite_utils.Migrations``). The catalog and the user database
share one schema; a database that has a migration this zoo does not know is from a newer zoo.

The migration functions are plain; ``migration_set()`` registers them with sqlite-utils on demand,
so read-only commands can check a database's schema without importing sqlite-utils.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.record import RECORD_FIELDS

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations

MIGRATION_SET = "zoo"
_INT_FIELDS = {"params", "feature_dim", "max_length", "downloads", "likes", "gated"}
_FLOAT_FIELDS = {"crop_pct", "imagenet_top1", "cpu_latency_ms"}
FTS_COLUMNS = ["id", "architecture", "description", "domains", "pretraining_data", "tasks"]


def m001_models(db: Database) -> None:
    columns: dict[str, type] = {}
    for name in RECORD_FIELDS:
        columns[name] = int if name in _INT_FIELDS else float if name in _FLOAT_FIELDS else str
    columns["content_hash"] = str
    db["models"].create(columns, pk="id", not_null={"modality", "license_class", "source"})
    db["models"].create_index(["modality", "license_class", "imagenet_top1"], index_name="idx_models_filter_top1")
    db["models"].create_index(["modality", "license_class", "params"], index_name="idx_models_filter_params")
    db["models"].create_index(["params"], index_name="idx_models_params")
    db["models"].create_index(["imagenet_top1"], index_name="idx_models_top1")
    db["models"].create_index(["source"], index_name="idx_models_source")
    db["models"].create_index(["architecture"], index_name="idx_models_architecture")
    # No triggers: Registry.write_records keeps the index in sync in bulk, inside the same
    # transaction (per-row triggers made indexing ~4x slower).
    db["models"].enable_fts(FTS_COLUMNS, fts_version="FTS5", tokenize="porter", create_triggers=False)
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["index_runs"].create(
        {"id": int, "source": str, "options": str, "started_at": str, "finished_at": str,
         "added": int, "updated": int, "unchanged": int, "failed": int, "status": str},
        pk="id",
    )


MIGRATIONS = [m001_models]
MIGRATION_NAMES = [m.__name__ for m in MIGRATIONS]


def migration_set() -> Migrations:
    from sqlite_utils import Migrations

    migrations = Migrations(MIGRATION_SET)
    for fn in MIGRATIONS:
        migrations()(fn)
    return migrations
