"""Fault injection against the user database, through the real CLI in subprocesses: `kill -9` of `zoo index` at
random moments; a full disk (a small tmpfs when running as root, else a file-size limit) and a read-only
database under every command that writes; writers and readers at once. The database always opens, passes
`PRAGMA integrity_check` and holds all old or all new rows; a command that fails says why in one line (no
traceback); a command that only needs to read answers. benchmarks/bench_reliability.py runs the bigger
versions (more kills, 20 s of concurrency) with the same code (tests/reliability.py)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import sys

import numpy as np
import pytest
from reliability import (
    concurrency,
    db_state,
    fill,
    filled_tmpfs_supported,
    kill_trials,
    read_only,
    run_commands,
    tmpfs,
    write_big_manifest,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals, tmpfs and rlimits of Linux")

ROWS = 40  # models in the database before the faults


def test_kill_9_during_index_leaves_all_old_or_all_new(tmp_path):
    report = kill_trials(tmp_path, trials=3, n=6000, rng=random.Random(19))
    assert [t["state"] for t in report.trials if t["state"] not in ("old", "new")] == [], report.trials
    assert report.count("killed", True) >= 2, report.trials  # the kills landed while it ran


@pytest.fixture
def writing_setup(tmp_path, use_cache):
    """A user database of ROWS models (their card vectors not cached yet, so `recommend` has vectors to write),
    and the inputs of each command that writes: a manifest, a model folder, an .npz sample."""
    from safetensors.numpy import save_file

    folder = tmp_path / "dbdir"
    folder.mkdir()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_big_manifest(inputs / "old.json", ROWS, "old")
    write_big_manifest(inputs / "new.json", ROWS, "new")
    bert = inputs / "tiny-bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"],
                                                  "hidden_size": 8, "vocab_size": 30}))
    save_file({"embeddings.word_embeddings.weight": np.zeros((30, 8), np.float32)}, str(bert / "model.safetensors"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    y = np.arange(40) % 2
    np.savez(inputs / "sample.npz", x=x + y[:, None], y=y)
    commands = {
        "index manifest": ["index", "manifest", str(inputs / "new.json")],
        "index local": ["index", "local", str(bert), "--id", "tiny-bert"],
        "recommend": ["recommend", "classify photos of animals", "--top", "3"],
        "probe": ["probe", "--data", str(inputs / "sample.npz"), "--models", "local:kill-000001", "--folds", "2"],
    }
    return folder, inputs, commands


def _populate(db, inputs):
    out = run_commands(db, [["index", "manifest", str(inputs / "old.json")]])
    assert out[0]["exit_code"] == 0, out


def _check_outcomes(results: dict[str, dict], refused: tuple[str, ...]) -> None:
    for name, r in results.items():
        assert r["exception"] is None and "Traceback" not in r["output"], (name, r)
        if name.startswith("index"):  # writing is the command: it fails, saying why, and writes nothing
            assert r["exit_code"] == 1, (name, r)
            assert any(w in r["output"] for w in refused), (name, r["output"])
            assert "Nothing was written" in r["output"] and "cannot rollback" not in r["output"], (name, r["output"])
        else:  # the answer, with a warning for what could not be kept
            assert r["exit_code"] == 0, (name, r["output"][-2000:])
    assert "not cached" in results["recommend"]["output"] and "not stored" in results["recommend"]["output"]
    assert "Not stored for reuse" in results["probe"]["output"] and "Best: local:kill-000001" in results["probe"]["output"]


def _unchanged(db) -> None:
    assert db_state(db, ROWS) == "old"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("SELECT count(*) FROM models").fetchone()[0] == ROWS
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    conn.close()


@pytest.mark.skipif(not filled_tmpfs_supported(), reason="mounting a tmpfs needs root")
def test_full_disk_under_every_command_that_writes(writing_setup):
    folder, inputs, commands = writing_setup
    with tmpfs(folder, "4m"):
        db = folder / "user.db"
        _populate(db, inputs)
        fill(folder)
        results = dict(zip(commands, run_commands(db, list(commands.values())), strict=True))
        _check_outcomes(results, ("is full", "Disk I/O error"))
        (folder / "filler").unlink()  # room again: the database is as it was
        _unchanged(db)


def test_file_size_limit_under_every_command_that_writes(writing_setup):
    """Where no tmpfs can be mounted: RLIMIT_FSIZE 0 makes every write to a file fail, as a full disk does."""
    folder, inputs, commands = writing_setup
    db = folder / "user.db"
    _populate(db, inputs)
    results = dict(zip(commands, run_commands(db, list(commands.values()), fsize=0), strict=True))
    _check_outcomes(results, ("Disk I/O error", "is full"))
    _unchanged(db)


@pytest.mark.skipif(os.geteuid() == 0 and not filled_tmpfs_supported(),
                    reason="root ignores file modes, and no read-only tmpfs can be mounted here")
def test_read_only_database_under_every_command_that_writes(writing_setup):
    folder, inputs, commands = writing_setup
    with tmpfs(folder, "16m") if os.geteuid() == 0 else contextlib.nullcontext():
        db = folder / "user.db"
        _populate(db, inputs)
        with read_only(folder):
            results = dict(zip(commands, run_commands(db, list(commands.values())), strict=True))
        _check_outcomes(results, ("read-only", "cannot write"))
        _unchanged(db)


def test_two_indexers_and_four_readers(tmp_path):
    out = concurrency(tmp_path, seconds=5)
    assert out["integrity"] == "ok"
    assert all(r["errors"] == {} and r["ops"] > 0 for r in out["readers"]), out["readers"]  # never "locked"
    assert all(w["errors"] == {} and w["runs"] > 0 for w in out["writers"]), out["writers"]  # they waited instead
