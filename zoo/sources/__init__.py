"""Sources yield ``ModelRecord``s and never touch SQLite. Registered by name like timm models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from zoo.record import ModelRecord

SourceFn = Callable[..., Iterator[ModelRecord]]
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


def iter_source(name: str, **options: Any) -> Iterator[ModelRecord]:
    return get_source(name)(**options)
