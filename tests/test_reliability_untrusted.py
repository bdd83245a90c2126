"""Untrusted model files, through `zoo score` and the Python API: a pickled checkpoint whose ``__reduce__`` runs
code, a transformers folder whose config asks for its own code (``auto_map``), a sentence-transformers
``modules.json`` naming an arbitrary class, a garbage ONNX file and weights paths that leave their folder. Each
is refused or reported with its reason as that candidate's error, the others are scored, no traceback is
printed, and nothing runs: every payload would write a marker file (tests/reliability.py builds them)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from reliability import UNTRUSTED_IMAGE, UNTRUSTED_TEXT, index_untrusted

import zoo
from zoo.cli import cli
from zoo.config import user_db_path
from zoo.errors import ManifestError
from zoo.scoring import score

GOOD = "local:cifar_resnet20.c10"


@pytest.fixture
def untrusted(tmp_path):
    marker = tmp_path / "EXECUTED"
    files = index_untrusted(tmp_path / "untrusted", marker, user_db_path())
    return marker, files


WHY = {
    "local:mobilenet_v2.evil-pickle": "pickle that asks to build objects other than tensors",
    "local:mobilenet_v2.evil-raw": "pickle that asks to build objects other than tensors",
    "local:garbage-onnx": "INVALID_PROTOBUF",
    "local:mobilenet_v2.old-relative": "is relative, and zoo never resolves weights against the current folder",
    "local:evil-custom-code": "has auto_map",
    "local:evil-st-class": "names the class 'evil_module.Evil'",
}


def test_untrusted_files_are_refused_through_the_cli_and_nothing_runs(untrusted, digits_folder, tmp_path,
                                                                        one_torch_thread):
    marker, _ = untrusted
    texts = tmp_path / "texts.csv"
    texts.write_text("text,label\n" + "".join(f"great fun {i},pos\ndull mess {i},neg\n" for i in range(6)))
    runner = CliRunner()
    for data, bad, good in ((digits_folder, UNTRUSTED_IMAGE, [GOOD]), (texts, UNTRUSTED_TEXT, [])):
        plain = runner.invoke(cli, ["score", "--data", str(data), "--models", ",".join(bad + good), "--scores", "knn"])
        assert "Traceback" not in plain.output and plain.exception is None or isinstance(plain.exception, SystemExit)
        res = runner.invoke(cli, ["score", "--data", str(data), "--models", ",".join(bad + good), "--scores", "knn",
                                  "--json"])
        assert res.exit_code == 0, res.output
        models = {m["id"]: m for m in json.loads(res.stdout)["models"]}
        for mid in bad:
            assert WHY[mid] in (models[mid]["error"] or ""), (mid, models[mid]["error"])
        for mid in good:
            assert models[mid]["error"] is None and 0 <= models[mid]["scores"]["knn"] <= 1
    assert not marker.exists(), marker.read_text()


def test_untrusted_files_are_refused_through_the_api(untrusted, digits_folder, one_torch_thread):
    marker, _ = untrusted
    rep = score(digits_folder, UNTRUSTED_IMAGE, scores=["knn"])
    assert {m.id: WHY[m.id] in (m.error or "") for m in rep.models} == dict.fromkeys(UNTRUSTED_IMAGE, True)
    from zoo.backbones import load_backbone
    from zoo.errors import UntrustedModel

    with zoo.open_registry() as reg:
        for mid in ("local:evil-custom-code", "local:evil-st-class", "local:mobilenet_v2.evil-pickle"):
            with pytest.raises(UntrustedModel):
                load_backbone(reg.get(mid), fetch=False)
    assert not marker.exists(), marker.read_text()


def test_a_weights_path_out_of_the_manifest_folder_is_refused_at_the_door(tmp_path):
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "sub" / "m.yaml"
    manifest.write_text("models:\n  - id: local:passwd\n    weights: file:../../etc/passwd\n")
    with pytest.raises(ManifestError, match=r"entry 'local:passwd', field 'weights'.*leaves the manifest's folder"):
        zoo.index("manifest", path=str(manifest))
    res = CliRunner().invoke(cli, ["index", "manifest", str(manifest)])
    assert res.exit_code == 1 and "leaves the manifest's folder" in res.output and "Traceback" not in res.output
    (tmp_path / "sub" / "w.pth").write_bytes(b"x")
    manifest.write_text("models:\n  - id: local:beside\n    weights: file:w.pth\n")
    zoo.index("manifest", path=str(manifest))
    assert zoo.show("local:beside").weights == f"file:{(tmp_path / 'sub' / 'w.pth').resolve()}"
