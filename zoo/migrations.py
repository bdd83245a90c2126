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
    # Only the indexes the searches use: every extra one slows indexing (benchmarks/bench_registry.py).
    db["models"].create_index(["imagenet_top1"], index_name="idx_models_top1")
    # No triggers: Registry.write_records keeps the index in sync in bulk, inside the same
    # transaction (per-row triggers made indexing ~4x slower).
    # detail=column: no token positions (zoo never runs phrase queries), about twice as fast to fill.
    db.execute(
        f"CREATE VIRTUAL TABLE models_fts USING FTS5({', '.join(FTS_COLUMNS)}, tokenize='porter', "
        "content='models', detail='column')"
    )
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["index_runs"].create(
        {"id": int, "source": str, "options": str, "started_at": str, "finished_at": str,
         "added": int, "updated": int, "unchanged": int, "failed": int, "status": str},
        pk="id",
    )


def m002_text_embeddings(db: Database) -> None:
    """Embeddings of model cards and vocabulary phrases, per embedding model. ``key`` is
    ``card:<model id>`` or ``phrase:<kind>:<name>:<i>``; ``content_hash`` is the hash of the embedded
    text, so only new or changed texts are embedded again."""
    db["text_embeddings"].create(
        {"key": str, "embed_model": str, "content_hash": str, "dim": int, "vector": bytes},
        pk=("key", "embed_model"),
    )


def m003_probe_results(db: Database) -> None:
    """Linear-probe results (``zoo probe``), reused when the same model, data and settings come again.
    ``settings_hash`` covers everything that changes the numbers (folds, seed, grid, method, metric)."""
    db["probe_results"].create(
        {"id": int, "model_id": str, "data_hash": str, "settings_hash": str, "settings": str,
         "accuracy": float, "accuracy_lo": float, "accuracy_hi": float,
         "macro_f1": float, "macro_f1_lo": float, "macro_f1_hi": float,
         "folds": int, "seed": int, "seconds": float, "device": str, "versions": str,
         "result": str, "created_at": str},
        pk="id", not_null={"model_id", "data_hash", "settings_hash"},
    )
    db["probe_results"].create_index(["model_id", "data_hash", "settings_hash"], unique=True,
                                     index_name="idx_probe_results_key")


def m004_runs(db: Database) -> None:
    """Every recommendation is a stored run (``zoo runs``): its inputs, versions and full result JSON."""
    db["runs"].create(
        {"id": str, "created_at": str, "task": str, "data": str, "data_hash": str, "options": str,
         "zoo_version": str, "registry_version": str, "top_id": str, "seconds": float, "result": str},
        pk="id",
    )
    db["runs"].create_index(["created_at"], index_name="idx_runs_created")


MIGRATIONS = [m001_models, m002_text_embeddings, m003_probe_results, m004_runs]
MIGRATION_NAMES = [m.__name__ for m in MIGRATIONS]


def migration_set() -> Migrations:
    from sqlite_utils import Migrations

    migrations = Migrations(MIGRATION_SET)
    for fn in MIGRATIONS:
        migrations()(fn)
    return migrations
