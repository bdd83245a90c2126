"""The Python API for the registry. The CLI calls these and only renders their dataclasses.
Keyword names match the CLI options (``--license-class`` -> ``license_classes``, ``--max-params``
-> ``max_params``, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from zoo.record import ModelRecord
from zoo.registry import IndexSummary, Registry, SearchResult, Stats


def open_registry(db: str | Path | None = None, catalog: str | Path | None = None) -> Registry:
    return Registry(db=db, catalog=catalog)


def search(
    query: str | None = None,
    *,
    modality: str | None = None,
    domains: Iterable[str] | None = None,
    license_classes: Iterable[str] | None = None,
    max_params: int | None = None,
    min_params: int | None = None,
    min_top1: float | None = None,
    source: str | None = None,
    available: bool = False,
    sort: str | None = None,
    limit: int | None = 20,
    db: str | Path | None = None,
) -> SearchResult:
    with open_registry(db) as reg:
        return reg.search(
            query, modality=modality, domains=domains, license_classes=license_classes, max_params=max_params,
            min_params=min_params, min_top1=min_top1, source=source, available=available, sort=sort, limit=limit,
        )


def show(model_id: str, *, db: str | Path | None = None) -> ModelRecord:
    with open_registry(db) as reg:
        return reg.get(model_id)


def stats(*, db: str | Path | None = None) -> Stats:
    with open_registry(db) as reg:
        return reg.stats()


def index(
    source: str,
    *,
    db: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> IndexSummary:
    """Index one source into the user database in one transaction (see ``zoo.sources``)."""
    from zoo.sources import iter_source

    with open_registry(db) as reg:
        if source == "hf":
            options.setdefault("known_revisions", reg.known_revisions("hf"))
        items = iter_source(source, progress=progress, **options)
        shown = {k: v for k, v in options.items() if k != "known_revisions"}
        return reg.index(source, items, options=shown, allow_shadow=source != "local")
