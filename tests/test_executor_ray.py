"""--executor ray (zoo.executor, issue 21) on a real local Ray: one cluster for these tests, real offline
models on a real digits folder, real worker processes (one of them killed), a real Ctrl-C (SIGINT)."""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="the ray extra: pip install -e '.[test,ray]' (.ci/run installs it)")

from zoo.cli import cli  # noqa: E402
from zoo.errors import UsageError  # noqa: E402

# Four offline models of two libraries (torch CIFAR ResNets, Keras HDF5 mini-Xceptions), at their small native
# sizes: the test measures agreement, not speed.
FOUR = ["local:cifar_resnet20.c10", "local:cifar_resnet32.c10", "local:mini_xception.fer2013",
        "local:mini_xception.imdb_gender"]
TASK = "classify handwritten digits"


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for this module's tests (2 CPUs: this machine), shut down after them. Its start is timed:
    2.7 s here (import 0.4 s, init 2.7 s, first task 0.5 s) when measured alone."""
    if ray.is_initialized():
        ray.shutdown()
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"Ray started in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    # This module's functions run in the workers: pickled by value (tests/ is not importable there).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def cache(fresh_cache):
    """The session's cache (its ONNX export of the query encoder), without feature entries (conftest)."""
    return fresh_cache


def _recommend(data, executor: str | None):
    from zoo.ranking import recommend

    return recommend(TASK, data=data, candidates=FOUR, executor=executor, probe_budget=0)  # scores only


def test_same_ranking_and_scores_as_local_and_the_driver_cache_is_warm_after(cluster, digits_folder):
    from zoo.features import clear_cache

    here = _recommend(digits_folder, "local")
    clear_cache()  # cold again: the workers extract
    there = _recommend(digits_folder, "ray")
    assert [c.id for c in there.candidates] == [c.id for c in here.candidates]
    assert len(there.candidates) == 4 and not there.not_scored
    for a, b in zip(here.candidates, there.candidates, strict=True):
        assert not a.data_cached and not b.data_cached  # both measured, neither read the other's features
        assert a.data_scores.keys() == b.data_scores.keys()
        for name, value in a.data_scores.items():
            # 1e-6, relative for the scores far above 1 (transrate ~175): a task's torch runs on 1 thread
            # (its num_cpus), the driver's on 2, and float32 sums in another order differ in the last bits
            assert b.data_scores[name] == pytest.approx(value, rel=1e-6, abs=1e-6), (a.id, name)
        assert b.score == pytest.approx(a.score, abs=1e-6)
    # One writer: the workers only read the cache; the driver wrote what they returned, so a run without
    # Ray extracts nothing.
    from zoo.scoring import score

    again = score(digits_folder, FOUR, executor="local")
    assert all(m.error is None and m.cached and m.extract_seconds == 0 for m in again.models)
    for m in again.models:
        assert m.scores["knn"] == next(c for c in there.candidates if c.id == m.id).data_scores["knn"]


def _broken_model(tmp_path) -> str:
    """A garbage checkpoint: torch.load raises its own error (as tests/test_scoring.py)."""
    import zoo

    garbage = tmp_path / "broken.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(f"manifest: broken\nmodels:\n  - id: local:mobilenet_v2.broken\n    modality: image\n"
                        f"    library: torchvision\n    license: mit\n    weights: file:{garbage}\n")
    zoo.index("manifest", path=str(manifest))
    return "local:mobilenet_v2.broken"


def test_a_corrupt_checkpoint_is_reported_and_the_others_finish(cluster, digits_folder, tmp_path):
    broken = _broken_model(tmp_path)
    res = CliRunner().invoke(cli, ["score", "--data", str(digits_folder), "--models",
                                   f"{broken},local:cifar_resnet20.c10", "--scores", "knn", "--executor", "ray",
                                   "--json"])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    rep = json.loads(res.output[res.output.index("{"):])
    bad, good = rep["models"]
    assert bad["error"] and f"{broken} could not be loaded or run" in bad["error"] and "ZOO_DEBUG" in bad["error"]
    assert good["error"] is None and 0 <= good["scores"]["knn"] <= 1
    # recommend --data reports it in not_scored with the same reason
    from zoo.ranking import recommend

    rec = recommend(TASK, data=digits_folder, candidates=[broken, "local:cifar_resnet20.c10"], executor="ray")
    assert [c.id for c in rec.candidates] == ["local:cifar_resnet20.c10"]
    assert "could not be loaded or run" in rec.not_scored[broken]


def _counting(marker_dir, kill_id: str, raise_id: str, work, rec, sample, policy):
    """Counts attempts per model in files; kills its own worker process on the first attempt at ``kill_id``
    (as the kernel's OOM killer would) and raises a deterministic error for ``raise_id``."""
    marker = marker_dir / rec.id.replace(":", "_")
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if rec.id == kill_id and attempts == 1:
        time.sleep(0.5)  # during the task, as an out-of-memory kill would be
        os.kill(os.getpid(), signal.SIGKILL)
    if rec.id == raise_id:
        raise RuntimeError("a deterministic failure")
    return work(rec, sample, policy)


def test_a_killed_worker_is_retried_and_a_deterministic_error_is_not(cluster, digits_folder, tmp_path):
    from zoo import scoring
    from zoo.data import load_sample
    from zoo.executor import run_candidates
    from zoo.fetching import FetchPolicy
    from zoo.registry import Registry

    ids = ["local:cifar_resnet20.c10", "local:mini_xception.fer2013"]
    with Registry() as reg:
        records = reg.get_many(ids)
    sample = load_sample(digits_folder)
    lines: list[str] = []
    work = functools.partial(_counting, tmp_path, ids[0], ids[1],
                             functools.partial(scoring.measure_on_worker, ["knn"], "cpu", False))
    out = run_candidates(records, sample, work, label="scoring", device="cpu", policy=FetchPolicy(enabled=False),
                         show=True, say=lines.append)
    killed, raising = out[ids[0]], out[ids[1]]
    assert killed.error is None and (tmp_path / "local_cifar_resnet20.c10").read_text() == "2"
    model_score, feats, _ = killed.value
    assert model_score.error is None and 0 <= model_score.scores["knn"] <= 1 and feats.features.shape[0] == 36
    assert any(ids[0] in line and "done on node" in line for line in lines), lines
    # (The "attempt 2" status line is best effort: a worker killed before its start message left is not seen.)
    assert raising.error and "a deterministic failure" in raising.error
    assert (tmp_path / "local_mini_xception.fer2013").read_text() == "1"  # not retried: it would fail again


def test_ctrl_c_cancels_and_stores_no_probe_results(cluster, digits_folder, tmp_path):
    from zoo.probe import probe

    db = tmp_path / "user.db"

    def interrupt(line: str) -> None:
        if "running on node" in line:
            raise KeyboardInterrupt  # what Ctrl-C raises in the driver while it waits

    ids = ["local:cifar_resnet20.c10", "local:cifar_resnet32.c10", "local:mini_xception.fer2013"]
    with pytest.raises(KeyboardInterrupt):
        probe(digits_folder, ids, folds=3, executor="ray", progress=interrupt, db=db)
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from probe_results").fetchone()[0] == 0
    rep = probe(digits_folder, ids, folds=3, executor="ray", db=db)  # the cluster is usable after it
    assert not rep.failed and len(rep.results) == 3
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from probe_results").fetchone()[0] == 3


def test_sigint_to_recommend_stores_no_run_and_joins_the_cluster_at_ray_address(cluster, digits_folder, tmp_path):
    """The real thing: ``zoo recommend --data --executor ray`` in its own process, joining this cluster through
    RAY_ADDRESS, gets SIGINT once a candidate runs; it exits 130 and no run is stored."""
    db = tmp_path / "user.db"
    env = dict(os.environ, RAY_ADDRESS=cluster.get_runtime_context().gcs_address, ZOO_DB=str(db))
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "recommend", TASK, "--data", str(digits_folder),
                             "--candidates", ",".join(FOUR), "--executor", "ray"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said = []
    for line in proc.stderr:
        said.append(line)
        if "running on node" in line:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    said.append(err)
    assert proc.returncode == 130, "".join(said)
    assert "Interrupted" in "".join(said) and "Traceback" not in "".join(said)
    if db.exists():
        with sqlite3.connect(db) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
            if "runs" in tables:
                assert con.execute("select count(*) from runs").fetchone()[0] == 0


def test_a_relative_data_path_is_found_by_the_workers(cluster, digits_folder, monkeypatch):
    """The workers' current folder is not the command's: the sample's paths travel absolute."""
    from zoo.scoring import score

    monkeypatch.chdir(digits_folder.parent)
    rep = score(digits_folder.name, ["local:cifar_resnet20.c10"], scores=["knn"], executor="ray")
    assert rep.models[0].error is None and 0 <= rep.models[0].scores["knn"] <= 1


def test_workers_fetch_from_the_hub_and_the_driver_reports_what(cluster, hub, digits_folder):
    """A task fetches its weights (a real HTTP server speaking the Hub's protocol) under the command's policy;
    the commit and the bytes come back to the driver's candidate."""
    from zoo import recommend
    from zoo.weights import local_snapshot

    mnv2 = "timm:mobilenetv2_100.ra_in1k"
    rec = recommend(TASK, data=str(digits_folder), candidates=[mnv2, "local:cifar_resnet20.c10"],
                    scores=["knn"], executor="ray")
    got = next(c for c in rec.candidates if c.id == mnv2)
    assert got.weights_commit and got.weights_commit == local_snapshot(got.record.weights).name
    assert got.download_bytes > 1_000_000 and got.download_seconds > 0
    assert any(method == "GET" and "/api/" not in path for method, path, _ in hub.requests)


def test_sample_shipped_to_another_node_keeps_the_cache_key(digits_folder):
    """On a multi-node cluster the image files travel in the object store and are written once per node; the
    features' cache key (and so the driver's cache) is the same as from the driver's folder."""
    from zoo.data import load_sample
    from zoo.executor import _materialize, _ship
    from zoo.features import feature_key
    from zoo.registry import Registry

    sample = load_sample(digits_folder)
    shipped = _ship(sample, files=True)
    assert shipped.files and len(shipped.files) == len(sample)
    there = _materialize(shipped, same_node=False)
    assert there.source != sample.source and all(os.path.isfile(p) for p in there.items)
    assert [Path(p).read_bytes() for p in there.items] == [Path(p).read_bytes() for p in sample.items]
    with Registry() as reg:
        rec = reg.get("local:cifar_resnet20.c10")
    assert feature_key(rec, there) == feature_key(rec, sample)


def test_without_ray_the_error_names_the_extra(digits_folder, monkeypatch):
    from zoo.executor import resolve_executor
    from zoo.scoring import score

    assert resolve_executor() == "local"  # the default is unchanged
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(UsageError, match=r"pip install 'zoo\[ray\]'"):
        score(digits_folder, ["local:cifar_resnet20.c10"], executor="ray")
    monkeypatch.setenv("ZOO_EXECUTOR", "ray")
    res = CliRunner().invoke(cli, ["probe", "--data", str(digits_folder), "--models", "local:cifar_resnet20.c10"])
    assert res.exit_code == 2 and "zoo[ray]" in res.output and "Traceback" not in res.output  # a usage error
    monkeypatch.setenv("ZOO_EXECUTOR", "dask")
    with pytest.raises(UsageError, match="use local or ray"):
        resolve_executor()


def test_help_and_registry_queries_do_not_import_ray():
    code = ("import sys; from zoo.cli import main; sys.argv=['zoo'] + sys.argv[1:];\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('RAY', 'ray' in sys.modules)")
    for args in (["--help"], ["score", "--help"], ["search", "resnet", "--modality", "image"],
                 ["show", "local:cifar_resnet20.c10"]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
        assert out.strip().splitlines()[-1] == "RAY False", out
