"""Locations: the shipped catalog, the user database, shared assets. Environment overrides first."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
MANIFEST_DIR = PACKAGE_DIR / "manifests"


def catalog_path() -> Path:
    """The shipped, read-only catalog (``registry.db``); ``ZOO_CATALOG`` overrides."""
    env = os.environ.get("ZOO_CATALOG")
    if env:
        return Path(env)
    for candidate in (REPO_DIR / "registry.db", PACKAGE_DIR / "registry.db"):
        if candidate.exists():
            return candidate
    return REPO_DIR / "registry.db"


def user_db_path() -> Path:
    """Where a user's own work goes (indexed models, embeddings, runs): ``ZOO_DB`` or the user data dir."""
    env = os.environ.get("ZOO_DB")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "zoo" / "user.db"


def shared_dir() -> Path:
    """Real offline assets (weights, datasets): ``ZOO_SHARED_DIR`` or ``../shared`` beside the checkout."""
    env = os.environ.get("ZOO_SHARED_DIR")
    return Path(env) if env else (REPO_DIR.parent / "shared")


def timm_results_dir() -> Path:
    env = os.environ.get("ZOO_TIMM_RESULTS")
    return Path(env) if env else shared_dir() / "data" / "timm-results"
