"""Sources yield ``ModelRecord``s and never touch SQLite. Registered by name like timm models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from zoo.record import ModelRecord


@dataclass(frozen=True)
class Unchanged:
    """The upstream model has the revision already stored; it was not re-fetched."""

    id: str


@dataclass(frozen=True)
class Failed:
    """This model could not be read (e.g. 404); the run goes on without it."""

    id: str
    reason: str


SourceItem = ModelRecord | Unchanged | Failed
SourceFn = Callable[..., Iterator[SourceItem]]
_SOURCES: dict[str, str] = {
    # name -> "module:function", imported lazily so `zoo --help` stays light.
    "timm": "zoo.sources.timm_source:iter_records",
    "hf": "zoo.sources.hf:iter_records",
    "local": "zoo.sources.local:iter_records",
    "manifest": "zoo.sources.manifest:iter_records",
}


def source_names() -> list[str]:
    return list(_SOURCES)


def get_source(name: str) -> SourceFn:
    import importlib

    from zoo.errors import UsageError

    if name not in _SOURCES:
        raise UsageError(f"Unknown source {name!r}; choose one of: {', '.join(_SOURCES)}.")
    module, _, fn = _SOURCES[name].partition(":")
    return getattr(importlib.import_module(module), fn)


def iter_source(name: str, **options: Any) -> Iterator[SourceItem]:
    return get_source(name)(**options)
