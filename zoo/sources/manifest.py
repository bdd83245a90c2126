"""Curated manifests (YAML or JSON): records written by hand, validated strictly.

Nothing in a manifest is executed: it is parsed with ``yaml.safe_load`` / ``json.loads`` and every
value is checked against the record's fields and the vocabularies. Errors name the file, the entry
and the field.

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
import types
import typing
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from zoo.errors import ManifestError, ZooError
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


def load_manifest(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(str(p), f"cannot read it ({e}). Check the path.") from None
    try:
        if p.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as e:  # parse errors of either format
        raise ManifestError(str(p), f"not valid {p.suffix.lstrip('.').upper() or 'YAML'}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise ManifestError(str(p), "expected a mapping with a 'models' list at the top level.")
    return doc, doc["models"]


def _check_entry(path: str, idx: int, entry: Any) -> ModelRecord:
    if not isinstance(entry, dict):
        raise ManifestError(path, "each entry must be a mapping of record fields.", idx)
    label: str | int = entry.get("id") if isinstance(entry.get("id"), str) else idx
    if "id" not in entry:
        raise ManifestError(path, "missing required field.", idx, "id")
    for key, value in entry.items():
        if key in _FORBIDDEN:
            raise ManifestError(path, "is derived by zoo; remove it from the manifest.", label, key)
        if key not in _SETTABLE:
            raise ManifestError(path, f"unknown field (known: {', '.join(sorted(_SETTABLE))}).", label, key)
        if value is None:
            continue
        want = _TYPES[key]
        if isinstance(value, bool) and bool not in want:
            raise ManifestError(path, f"expected {want[0].__name__}, got a boolean.", label, key)
        if not isinstance(value, want):
            raise ManifestError(path, f"expected {want[0].__name__}, got {type(value).__name__}.", label, key)
    try:
        rec = ModelRecord(**entry)
        rec.validate()
    except ZooError as e:
        raise ManifestError(path, str(e), label, "id") from None
    except FieldError as e:
        raise ManifestError(path, str(e), label, e.field) from None
    except (TypeError, ValueError) as e:
        field_name = next((k for k in entry if k in str(e)), None)
        raise ManifestError(path, str(e), label, field_name) from None
    return rec


def iter_records(path: str | Path, **_: Any) -> Iterator[ModelRecord]:
    """Validate the whole manifest first, so a bad entry late in the file writes nothing."""
    doc, entries = load_manifest(path)
    version = doc.get("version")
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
