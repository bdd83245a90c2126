"""Curated manifests (YAML or JSON): records written by hand, validated strictly.

Nothing in a manifest is executed: it is parsed with libyaml's safe loader (``yaml.CSafeLoader``, the
pure-Python ``SafeLoader`` where libyaml is missing) or ``json.loads``, and every value is checked against the
record's fields, types, bounds (``zoo.record.MAX_*``) and the vocabularies. Errors name the file, the entry
and the field. Validation at the door:

- numbers are finite: a NaN or an infinity anywhere is refused (SQLite would store it as null);
- free-form fields are bounded (description 20,000 characters, other text 1,000, ``extra`` 64 kB as JSON);
- YAML anchors may not be used as aliases (``*name``): an alias repeats a value without limit (a 524-byte
  "billion laughs" file made a 142 MB row) or makes it contain itself;
- a ``file:`` weights location (or ``extra.tokenizer_file``) is absolute, or relative to the manifest's own
  folder, where it is resolved; one that leaves that folder (``../``, a link out of it) is refused, and so is
  a ``shared:`` location that leaves the shared folder;
- a license zoo does not recognise is kept with license class ``unknown``, with a warning that names it.

Format::

    manifest: my-team            # a name, for provenance
    version: "2026-11-01"        # optional source version
    models:
      - id: hf:microsoft/rad-dino
        modality: image
        domains: [medical-radiology]
        ...                      # any ModelRecord field
"""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from zoo import vocab
from zoo.errors import ManifestError, ZooError, warn
from zoo.record import FieldError, ModelRecord

_SETTABLE = {f.name for f in fields(ModelRecord)}
_FORBIDDEN = {"license_class", "imagenet_top1", "source", "indexed_at"}  # derived, never hand-written


def _expected_type(hint: Any) -> tuple[type, ...]:
    """``list[str] | None`` -> ``(list,)``; floats also accept ints."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    base = typing.get_origin(hint) or hint
    return (float, int) if base is float else (base,)


_TYPES = {name: _expected_type(hint) for name, hint in typing.get_type_hints(ModelRecord).items()}


def _yaml_loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~6x faster on a 50,000-entry manifest


def _parse_yaml(text: str, path: str) -> Any:
    import yaml

    loader = _yaml_loader()
    if "&" in text:  # an alias needs an anchor: without "&" there is none, and no second pass is needed
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                where = f" (line {mark.line + 1})" if mark is not None else ""
                raise ManifestError(
                    path, f"YAML aliases (*{event.anchor}){where} are not allowed in a manifest: an alias repeats a "
                          "value without limit or makes it contain itself. Write the value out in full.")
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader (CSafeLoader / SafeLoader)


def load_manifest(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(str(p), f"cannot read it ({e}). Check the path.") from None
    try:
        doc = json.loads(text) if p.suffix.lower() == ".json" else _parse_yaml(text, str(p))
    except ManifestError:
        raise
    except Exception as e:  # parse errors of either format (and RecursionError of a deeply nested one)
        raise ManifestError(str(p), f"not valid {p.suffix.lstrip('.').upper() or 'YAML'}: "
                                    f"{type(e).__name__}: {str(e)[:300]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise ManifestError(str(p), "expected a mapping with a 'models' list at the top level.")
    return doc, doc["models"]


def check_location(location: str, folder: Path, path: str, label: str | int, field_name: str) -> str:
    """A manifest's weights location made safe to store: ``file:`` relative to the manifest's folder becomes
    absolute, and one that leaves the folder is refused (as is a ``shared:`` location leaving the shared
    folder). Absolute ``file:`` paths are kept: a team's manifest may name its own storage."""
    try:
        return _check_location(location, folder, path, label, field_name)
    except (OSError, ValueError) as e:  # a NUL byte, a name too long for the file system
        raise ManifestError(path, f"not a usable location ({type(e).__name__}: {e}).", label, field_name) from None


def _check_location(location: str, folder: Path, path: str, label: str | int, field_name: str) -> str:
    scheme, sep, rest = location.partition(":")
    if not sep:
        return location
    if "\0" in rest:
        raise ValueError("the path holds a NUL character")
    if scheme == "file":
        if not rest:
            raise ManifestError(path, "a file: location needs a path.", label, field_name)
        target = Path(os.path.expanduser(rest))
        if target.is_absolute():
            return f"file:{os.path.normpath(target)}"
        base = folder.resolve()
        resolved = (base / target).resolve()  # follows links: a link inside the folder may not lead out of it
        if not resolved.is_relative_to(base):
            raise ManifestError(
                path, f"{location!r} leaves the manifest's folder ({base}): a relative weights path is read from that "
                      "folder only. Move the weights beside the manifest, or give an absolute path.", label, field_name)
        return f"file:{resolved}"
    if scheme == "shared":
        from zoo.config import shared_dir

        base = shared_dir().resolve()
        if Path(rest).is_absolute() or not (base / rest).resolve().is_relative_to(base):
            raise ManifestError(path, f"{location!r} leaves the shared asset folder; give a path inside it.",
                                label, field_name)
    if scheme == "pypi" and (Path(rest).is_absolute() or ".." in Path(rest).parts):
        raise ManifestError(path, f"{location!r} leaves its package; give a path inside it.", label, field_name)
    return location


def _check_entry(path: str, idx: int, entry: Any) -> ModelRecord:
    if not isinstance(entry, dict):
        raise ManifestError(path, "each entry must be a mapping of record fields.", idx)
    label: str | int = entry["id"] if isinstance(entry.get("id"), str) and len(entry["id"]) <= 200 else idx
    if "id" not in entry:
        raise ManifestError(path, "missing required field.", idx, "id")
    for key, value in entry.items():
        if not isinstance(key, str):
            raise ManifestError(path, f"field names are text; got {type(key).__name__} {str(key)[:40]!r}.", label)
        if key in _FORBIDDEN:
            raise ManifestError(path, "is derived by zoo; remove it from the manifest.", label, key)
        if key not in _SETTABLE:
            raise ManifestError(path, f"unknown field (known: {', '.join(sorted(_SETTABLE))}).", label, key[:100])
        if value is None:
            continue
        want = _TYPES[key]
        if isinstance(value, bool) and bool not in want:
            raise ManifestError(path, f"expected {want[0].__name__}, got a boolean.", label, key)
        if not isinstance(value, want):
            raise ManifestError(path, f"expected {want[0].__name__}, got {type(value).__name__}.", label, key)
    entry = {k: v for k, v in entry.items() if v is not None}
    folder = Path(path).parent
    if isinstance(entry.get("weights"), str):
        entry["weights"] = check_location(entry["weights"], folder, path, label, "weights")
    extra = entry.get("extra")
    if isinstance(extra, dict):
        if isinstance(extra.get("tokenizer_file"), str):
            extra = {**extra, "tokenizer_file": check_location(extra["tokenizer_file"], folder, path, label, "extra")}
            entry["extra"] = extra
        root = extra.get("archive_root")
        if root is not None and (not isinstance(root, str) or Path(root).is_absolute() or ".." in Path(root).parts):
            raise ManifestError(path, "archive_root is a folder name inside zoo's asset cache (no '..', not absolute).",
                                label, "extra")
    try:
        rec = ModelRecord(**entry)
        rec.validate()
    except FieldError as e:
        raise ManifestError(path, str(e), label, e.field) from None
    except ZooError as e:
        raise ManifestError(path, str(e), label, "id") from None
    except (TypeError, ValueError) as e:
        field_name = next((k for k in entry if k in str(e)), None)
        raise ManifestError(path, str(e), label, field_name) from None
    if rec.license is not None and rec.license_class == "unknown" and not vocab.is_unknown_license(rec.license):
        warn(f"{path}, entry {label!r}: license {rec.license!r} is not one zoo recognises; the model is indexed with "
             "license class 'unknown' (so --license-class filters exclude it unless --allow-unknown). If it is an "
             "SPDX license, write its id (e.g. apache-2.0, mit, cc-by-nc-4.0).")
    return rec


def iter_records(path: str | Path, **_: Any) -> Iterator[ModelRecord]:
    """Validate the whole manifest first, so a bad entry late in the file writes nothing."""
    doc, entries = load_manifest(path)
    version = doc.get("version")
    if version is not None and (not isinstance(version, (str, int, float)) or isinstance(version, bool)
                                or len(str(version)) > 100):
        raise ManifestError(str(path), "the top-level 'version' must be a short text, e.g. \"2026-11-01\".")
    records, seen = [], set()
    for idx, entry in enumerate(entries):
        rec = _check_entry(str(path), idx, entry)
        if rec.id in seen:
            raise ManifestError(str(path), "duplicate id.", rec.id, "id")
        seen.add(rec.id)
        if version is not None and rec.source_version is None:
            rec.source_version = str(version)
        records.append(rec)
    yield from records
