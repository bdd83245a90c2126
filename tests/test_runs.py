"""Stored runs (``zoo runs``): real recommendations on the shipped catalog, stored in a real SQLite
user database in tmp_path, listed, shown and compared through the CLI."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from helpers import rec as make_record

import zoo
from zoo.cli import cli
from zoo.errors import UsageError
from zoo.recommender import _STATE
from zoo.registry import Registry
from zoo.runs import StoredRun, compare_runs, get_run, list_runs, registry_version, save_run

TASK = "detect pneumonia in chest X-rays"
ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")


pytestmark = pytest.mark.usefixtures("fresh_state")  # conftest: no warm recommender state


@pytest.fixture(scope="module")
def recs(onnx_cache, tmp_path_factory):
    """Two real recommendations for the same task: all licenses, then permissive only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(onnx_cache))
        mp.setenv("ZOO_DB", str(tmp_path_factory.mktemp("recs") / "user.db"))
        _STATE.clear()
        a = zoo.recommend(TASK, top_k=5)
        b = zoo.recommend(TASK, top_k=5, license_classes=["permissive"])
        _STATE.clear()
    return a, b


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_save_list_show_compare_through_the_cli(recs, tmp_path):
    db = str(tmp_path / "runs.db")
    a, b = recs
    id_a = save_run(a, options={"top_k": 5}, db=db)
    id_b = save_run(b, options={"top_k": 5, "license_classes": ["permissive"]}, db=db)
    assert ID_RE.match(id_a) and ID_RE.match(id_b) and id_a < id_b
    assert a.run_id == id_a and b.run_id == id_b

    res = run("runs", "list", "--db", db)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:2] == ["id", "created"]
    assert lines[2].startswith(id_b) and lines[3].startswith(id_a)  # newest first
    listed = json.loads(run("runs", "list", "--db", db, "--json").output)
    assert [r["id"] for r in listed] == [id_b, id_a]
    assert listed[1]["top_id"] == a.best.id and listed[1]["task"] == TASK
    assert listed[0]["options"] == {"top_k": 5, "license_classes": ["permissive"]}
    assert listed[1]["registry_version"] == registry_version(db)
    assert len(json.loads(run("runs", "list", "--db", db, "--limit", "1", "--json").output)) == 1

    res = run("runs", "show", id_a, "--db", db)
    assert res.exit_code == 0, res.output
    assert TASK in res.output and "medical-radiology" in res.output and a.best.id in res.output
    assert f"zoo report {id_a} --out DIR" in res.output
    shown = json.loads(run("runs", "show", id_b, "--db", db, "--json").output)
    assert shown["id"] == id_b and [c["id"] for c in shown["candidates"]] == [c.id for c in b.candidates]
    assert shown["candidates"][0]["components"] == b.best.components

    res = run("runs", "compare", id_a, id_b, "--db", db)
    assert res.exit_code == 0, res.output
    assert "option license_classes" in res.output and "excluded by license_class" in res.output
    cmp = json.loads(run("runs", "compare", id_a, id_b, "--db", db, "--json").output)
    assert cmp["a"] == id_a and cmp["b"] == id_b
    assert [i["what"] for i in cmp["inputs"]] == ["option license_classes"]
    left = {r["id"]: r for r in cmp["ranking"] if r["change"] == "left"}
    gone = [c for c in a.candidates if c.record.license_class != "permissive"]
    assert gone and set(left) == {c.id for c in gone}
    assert all(r["why"].startswith("excluded by license_class") for r in left.values())
    moved = [r for r in cmp["ranking"] if r["change"] == "moved"]
    assert moved, cmp["ranking"]  # the permissive models of A climb
    for r in moved:
        assert r["rank_a"] != r["rank_b"] and r["why"]
        if abs(r["score_a"] - r["score_b"]) >= 5e-4:
            assert r["component"] in a.weights and f"mostly {r['component']}" in r["why"]


def test_stored_run_round_trips(recs, tmp_path):
    db = tmp_path / "runs.db"
    a, _ = recs
    run_id = save_run(a, options={"top_k": 5, "max_params": None}, db=db)
    stored = get_run(run_id, db=db)
    assert isinstance(stored, StoredRun) and stored.id == run_id
    assert stored.task == TASK and stored.created_at and stored.options == {"top_k": 5, "max_params": None}
    assert stored.understanding == a.understanding
    assert stored.constraints == a.constraints
    assert [(c.id, c.rank, c.score, c.components, c.reason, c.variants) for c in stored.candidates] == [
        (c.id, c.rank, c.score, c.components, c.reason, c.variants) for c in a.candidates]
    assert stored.best.model_record() == a.best.record
    assert stored.weights == a.weights and stored.embed_model == a.embed_model
    assert stored.versions["zoo"] == zoo.__version__ and stored.versions["registry"] == registry_version(db)
    # JSON and back again is the same dataclass: enough to write the report later
    assert StoredRun.from_dict(json.loads(json.dumps(stored.to_dict()))) == stored


def test_run_ids_unique_sortable_prefix_and_latest(recs, tmp_path):
    db = tmp_path / "runs.db"
    a, _ = recs
    ids = [save_run(a, options={}, db=db) for _ in range(4)]
    assert len(set(ids)) == 4 and ids == sorted(ids)
    assert [r.id for r in list_runs(limit=None, db=db)] == ids[::-1]
    assert get_run("latest", db=db).id == ids[-1]
    # the shortest prefix that only the first id has is enough
    prefix = next(ids[0][:n] for n in range(1, len(ids[0]) + 1) if all(not i.startswith(ids[0][:n]) for i in ids[1:]))
    assert get_run(prefix, db=db).id == ids[0]
    with pytest.raises(UsageError, match="ambiguous"):
        get_run(ids[0][:9], db=db)  # the date is shared by all four


def test_unknown_run_id_is_a_clear_error(recs, tmp_path):
    db = str(tmp_path / "runs.db")
    res = run("runs", "show", "20261122-181503-ab12", "--db", db)
    assert res.exit_code == 2 and "No runs are stored" in res.output and "zoo recommend" in res.output
    assert list_runs(db=db) == []

    a, _ = recs
    real = save_run(a, options={}, db=db)
    typo = real[:-2] + ("zz" if real[-2:] != "zz" else "yy")
    res = CliRunner().invoke(cli, ["runs", "show", typo, "--db", db])
    assert res.exit_code == 2
    assert f"Unknown run id '{typo}'" in res.output and real in res.output and "zoo runs list" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["runs", "compare", real, "nonsense", "--db", db])
    assert res.exit_code == 2 and "zoo runs list" in res.output
    res = CliRunner().invoke(cli, ["report", "nonsense", "--out", str(tmp_path / "r"), "--db", db])
    assert res.exit_code == 2 and "Unknown run id" in res.output


def test_compare_says_when_the_registry_changed(recs, tmp_path):
    db = tmp_path / "runs.db"
    a, _ = recs
    first = save_run(a, options={"top_k": 5}, db=db)
    before = registry_version(db)
    with Registry(db=db, create=True) as reg:  # the user indexes a model of their own
        reg.index("manifest", [make_record("local:my-xray-net", domains=["medical-radiology"])])
    after = registry_version(db)
    assert after != before and "1 user models" in after
    second = save_run(a, options={"top_k": 5}, db=db)
    cmp = compare_runs(first, second, db=db)
    assert [(i.what, i.a, i.b) for i in cmp.inputs] == [("registry version", before, after)]
    assert cmp.top_a == cmp.top_b and not cmp.moved and not cmp.entered and not cmp.left
    assert "Top pick unchanged" in cmp.summary and "registry version" in cmp.summary


def test_same_inputs_same_ranking(recs, tmp_path):
    db = tmp_path / "runs.db"
    a, _ = recs
    x, y = save_run(a, options={"top_k": 5}, db=db), save_run(a, options={"top_k": 5}, db=db)
    cmp = compare_runs(x, y, db=db)
    assert cmp.inputs == [] and all(r.change == "same" for r in cmp.ranking)
    assert cmp.summary.endswith("Same inputs, same ranking.")
    res = run("runs", "compare", x, y, "--db", str(db))
    assert "The ranking is the same." in res.output


def test_saving_a_run_keeps_the_recommender_warm(tmp_path):
    db = tmp_path / "user.db"  # ZOO_DB: the database zoo.recommend reads
    rec = zoo.recommend(TASK, top_k=3)
    save_run(rec, options={"top_k": 3}, db=db)  # creates the database: the next call loads afresh
    for _ in range(2):
        zoo.recommend(TASK, top_k=3)
    (state,) = _STATE.values()
    for _ in range(2):  # a stored run touches only the runs table: the loaded state stays valid
        save_run(zoo.recommend(TASK, top_k=3), options={"top_k": 3}, db=db)
    (after,) = _STATE.values()
    assert after is state
