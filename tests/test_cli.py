from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from helpers import make_catalog

from zoo.cli import cli


def all_commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, (*prefix, name))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CATALOG", str(make_catalog(tmp_path / "catalog.db")))
    monkeypatch.setenv("ZOO_DB", str(tmp_path / "user.db"))
    return tmp_path


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("path", [p for p, _ in all_commands(cli)], ids=lambda p: " ".join(p))
def test_every_command_has_help(path):
    res = run(*path, "--help")
    assert res.exit_code == 0
    cmd = cli
    for p in path:
        cmd = cmd.commands[p]
    assert cmd.help and len(cmd.help.strip()) > 20
    assert "Usage:" in res.output


def test_shared_option_vocabulary():
    names = {}
    for _path, cmd in all_commands(cli):
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                names.setdefault(opt, set()).add(p.name)
    # one option name, one meaning (and one API keyword) everywhere
    for opt in ("--json", "--modality", "--license-class", "--max-params", "--db"):
        assert len(names.get(opt, {None})) == 1, (opt, names.get(opt))


def test_search_table_and_json(env):
    res = run("search", "--modality", "image", "--max-params", "30M", "--sort", "top1")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].split()[:3] == ["id", "modality", "domains"]
    assert lines[2].startswith("timm:resnet50.a1_in1k")
    data = json.loads(run("search", "resnet", "--json").output)
    assert {r["id"] for r in data["records"]} == {"timm:resnet50.a1_in1k", "timm:resnet50.tv_in1k"}
    assert data["total"] == 2


def test_search_by_source(env):
    from zoo import api

    every = json.loads(run("search", "--json", "--limit", "100").output)["records"]
    hf = json.loads(run("search", "--source", "hf", "--json", "--limit", "100").output)["records"]
    assert hf and {r["source"] for r in hf} == {"hf"}
    assert {r["id"] for r in hf} == {r["id"] for r in every if r["source"] == "hf"} != {r["id"] for r in every}
    assert {r.id for r in api.search(source="hf", limit=100).records} == {r["id"] for r in hf}
    bad = CliRunner().invoke(cli, ["search", "--source", "github"])
    assert bad.exit_code == 2 and "timm" in bad.output


def test_show_and_unknown_id(env):
    res = run("show", "hf:microsoft/rad-dino", "--json")
    d = json.loads(res.output)
    assert d["params"] == 86_600_000 and d["available"] is False
    res = CliRunner().invoke(cli, ["show", "timm:resnet50.a1_in1"])
    assert res.exit_code == 1
    assert "Did you mean" in res.output and "timm:resnet50.a1_in1k" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["show", "resnet50"])
    assert res.exit_code == 2 and "source:name" in res.output


def test_bad_param_count(env):
    res = CliRunner().invoke(cli, ["search", "--max-params", "lots"])
    assert res.exit_code == 2 and "25M" in res.output


def test_stats(env):
    d = json.loads(run("stats", "--json").output)
    assert d["total"] == 6 and d["by_modality"] == {"image": 4, "text": 2}


def test_index_manifest_and_errors(env):
    m = env / "m.yaml"
    m.write_text("models:\n  - id: local:mine\n    modality: text\n    params: 10\n")
    res = run("index", "manifest", str(m), "--json")
    assert json.loads(res.output)["added"] == 1
    assert json.loads(run("show", "local:mine", "--json").output)["params"] == 10
    m.write_text("models:\n  - id: local:mine\n    modality: smell\n")
    res = CliRunner().invoke(cli, ["index", "manifest", str(m)])
    assert res.exit_code == 1 and "'modality'" in res.output and "Traceback" not in res.output
    assert json.loads(run("show", "local:mine", "--json").output)["modality"] == "text"  # nothing lost


def test_corrupt_db_one_line_error(env):
    (env / "user.db").write_bytes(b"garbage" * 200)
    res = CliRunner().invoke(cli, ["search"])
    assert res.exit_code == 1 and "corrupt" in res.output and len(res.output.strip().splitlines()) == 1


def test_help_and_search_import_no_heavy_modules(env):
    code = (
        "import sys; from zoo.cli import main; sys.argv=['zoo'] + sys.argv[1:];\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'timm', 'transformers', 'sentence_transformers', 'huggingface_hub') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    for args in (["--help"], ["search", "resnet", "--modality", "image"], ["show", "timm:resnet50.a1_in1k"]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
        assert out.strip().splitlines()[-1] == "HEAVY []", out


def test_api_names_are_not_shadowed_by_submodules():
    import importlib.util

    import zoo

    for name in zoo._LAZY:
        assert importlib.util.find_spec(f"zoo.{name}") is None, f"zoo/{name}.py would shadow zoo.{name}()"
