"""zoo: a model-zoo registry and recommender for transfer learning.

Imports stay light: heavy modules (torch, timm, transformers) load only inside the code that
needs them, so ``import zoo`` and registry queries are fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "search": "zoo.api",
    "show": "zoo.api",
    "stats": "zoo.api",
    "index": "zoo.api",
    "open_registry": "zoo.api",
    "recommend": "zoo.ranking",
    "explain": "zoo.recommender",
    "Recommendation": "zoo.recommender",
    "fetch": "zoo.fetching",
    "FetchReport": "zoo.fetching",
    "Registry": "zoo.registry",
    "ModelRecord": "zoo.record",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
