from __future__ import annotations

import json

import pytest

from zoo.config import MANIFEST_DIR
from zoo.errors import ManifestError
from zoo.sources.manifest import iter_records


def write(tmp_path, text, name="m.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_valid_yaml_and_json(tmp_path):
    y = write(tmp_path, "manifest: t\nversion: '1'\nmodels:\n  - id: local:a\n    modality: text\n    params: 5\n")
    (r,) = list(iter_records(y))
    assert r.id == "local:a" and r.params == 5 and r.source == "local" and r.source_version == "1"
    j = write(tmp_path, json.dumps({"models": [{"id": "hf:x/y", "license": "mit"}]}), "m.json")
    (r,) = list(iter_records(j))
    assert r.license_class == "permissive"


@pytest.mark.parametrize(
    "body,entry,field",
    [
        ("models:\n  - id: local:a\n    domains: [space]\n", "local:a", "domains"),
        ("models:\n  - id: local:a\n    params: lots\n", "local:a", "params"),
        ("models:\n  - id: local:a\n    colour: red\n", "local:a", "colour"),
        ("models:\n  - id: local:a\n    license_class: permissive\n", "local:a", "license_class"),
        ("models:\n  - modality: image\n", "#0", "id"),
        ("models:\n  - id: nosource\n", "#0", None),
    ],
)
def test_malformed_entries_name_file_entry_field(tmp_path, body, entry, field):
    p = write(tmp_path, body)
    with pytest.raises(ManifestError) as e:
        list(iter_records(p))
    msg = str(e.value)
    assert str(p) in msg and entry.strip("#") in msg
    if field:
        assert repr(field) in msg


def test_not_a_manifest(tmp_path):
    with pytest.raises(ManifestError, match="models"):
        list(iter_records(write(tmp_path, "- just a list\n")))
    with pytest.raises(ManifestError, match="not valid"):
        list(iter_records(write(tmp_path, "models: [\n")))
    with pytest.raises(ManifestError, match="cannot read"):
        list(iter_records(tmp_path / "missing.yaml"))


def test_yaml_is_never_executed(tmp_path):
    p = write(tmp_path, "models:\n  - id: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ManifestError):
        list(iter_records(p))


def test_duplicate_ids(tmp_path):
    with pytest.raises(ManifestError, match="duplicate"):
        list(iter_records(write(tmp_path, "models:\n  - id: local:a\n  - id: local:a\n")))


@pytest.mark.parametrize("name", ["curated.yaml", "offline.yaml"])
def test_shipped_manifests_validate(name):
    records = list(iter_records(MANIFEST_DIR / name))
    assert records
    for r in records:
        r.validate()
        if r.license is None:
            assert r.license_class == "unknown"
