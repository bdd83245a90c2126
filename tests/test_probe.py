"""`zoo probe`: the linear probe on tiny deterministic features, agreement with scikit-learn, the registry
round trip (real SQLite in tmp_path), bad input, and real offline models end to end through the CLI."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import rec

from zoo.cli import cli
from zoo.errors import UsageError
from zoo.probe import (
    GRIDS,
    ProbeError,
    ProbeReport,
    ProbeResult,
    fold_interval,
    grid_values,
    macro_f1,
    probe,
    probe_features,
    resolve_folds,
    score_agreement,
    stratified_folds,
    summarise,
)
from zoo.registry import Registry

IMAGE_MODELS = ["local:cifar_resnet20.c10", "local:mini_xception.fer2013"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))


def blobs(per_class: int = 20, d: int = 8, classes: int = 3, seed: int = 0, spread: float = 1.0,
          gap: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian class clusters: ``gap`` apart along the first axes, ``spread`` wide."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), per_class)
    centres = np.zeros((classes, d))
    centres[np.arange(classes), np.arange(classes) % d] = gap
    return (centres[y] + spread * rng.standard_normal((len(y), d))).astype(np.float32), y


@pytest.fixture
def npz(tmp_path) -> Path:
    x, y = blobs(per_class=15, d=6, spread=1.5)
    path = tmp_path / "emb.npz"
    np.savez(path, x=x, y=np.array(["cat", "dog", "fox"])[y])
    return path


def _same_numbers(a: ProbeResult, b: ProbeResult) -> None:
    da, db = asdict(a), asdict(b)
    for key in ("seconds", "from_registry", "features_cached", "extract_seconds", "created_at", "params"):
        da.pop(key), db.pop(key)
    assert da == db


def _json(output: str) -> dict:
    return json.loads(output[output.index("{"):])


# ------------------------------------------------------------------------------------------ folds, intervals


def test_stratified_folds_are_balanced_and_seeded():
    y = np.repeat([0, 1, 2], [10, 7, 5])
    folds = stratified_folds(y, 5, seed=3)
    assert sorted(np.bincount(folds)) == [4, 4, 4, 5, 5]  # sizes differ by at most one
    for c in range(3):
        per = np.bincount(folds[y == c], minlength=5)
        assert per.max() - per.min() <= 1 and per.min() >= 1
    assert np.array_equal(folds, stratified_folds(y, 5, seed=3))
    assert not np.array_equal(folds, stratified_folds(y, 5, seed=4))


def test_fold_interval_is_a_clipped_t_interval():
    mean, lo, hi = fold_interval([0.8, 0.9, 1.0])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(k)
    assert mean == pytest.approx(0.9) and lo == pytest.approx(0.9 - half) and hi == 1.0
    assert fold_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)


def test_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    p[p == 3] = 2  # a class never predicted
    assert macro_f1(y, p, 5) == pytest.approx(f1_score(y, p, average="macro"))


def test_grids_are_named_and_ordered():
    name, values = grid_values("standard")
    assert name == "standard" and values == sorted(values) and len(values) == len(GRIDS["standard"])
    assert grid_values([1.0, 0.01]) == ("custom", [0.01, 1.0])  # strong to weak: the warm-start order
    with pytest.raises(ProbeError, match="known: standard"):
        grid_values("nope")
    with pytest.raises(ProbeError, match="positive"):
        grid_values([0.0])


# ------------------------------------------------------------------------------------------ the linear probe


def test_probe_features_separable_and_deterministic():
    x, y = blobs(per_class=20, d=8)
    a = probe_features(x, y, folds=4, seed=1, device="cpu")
    assert a.accuracy >= 0.95 and 0 <= a.accuracy_ci[0] <= a.accuracy <= a.accuracy_ci[1] <= 1
    assert len(a.fold_accuracies) == len(a.fold_macro_f1) == len(a.chosen_c) == 4 and a.folds == 4
    assert set(a.chosen_c) <= set(GRIDS["standard"]) and a.grid == "standard" and a.method == "linear-probe"
    assert a.n == 60 and a.n_classes == 3 and a.feature_dim == 8 and a.device == "cpu" and a.inner_folds == 3
    for f, row in enumerate(a.inner_accuracy):  # the choice is the first best of the inner CV
        assert a.chosen_c[f] == a.grid_values[int(np.argmax(np.round(row, 12)))]
    _same_numbers(a, probe_features(x, y, folds=4, seed=1, device="cpu"))
    other = probe_features(x, y, folds=4, seed=2, device="cpu")
    assert other.fold_accuracies != a.fold_accuracies or other.inner_accuracy != a.inner_accuracy


@pytest.mark.parametrize("d", [12, 400])  # more rows than features (primal basis), and fewer (kernel basis)
@pytest.mark.parametrize("c", [0.01, 1.0])
def test_agrees_with_sklearn_at_the_same_c(d, c):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = blobs(per_class=50, d=d, classes=3, spread=2.5, gap=3.0)
    ours = probe_features(x, y, folds=3, seed=0, grid=[c], device="cpu")
    folds = stratified_folds(y, 3, 0)
    for f in range(3):
        tr, te = folds != f, folds == f
        scaler = StandardScaler().fit(x[tr])
        ref = LogisticRegression(C=c, max_iter=5000, tol=1e-8).fit(scaler.transform(x[tr]), y[tr])
        acc = ref.score(scaler.transform(x[te]), y[te])
        assert abs(ours.fold_accuracies[f] - acc) <= 0.021, (f, ours.fold_accuracies[f], acc)  # one sample of 50
    assert 0.4 < ours.accuracy < 1.0  # better than chance (1/3), not trivial


def test_splits_solved_in_chunks_give_the_same_numbers(monkeypatch):
    import zoo.probe.solver

    x, y = blobs(per_class=15, d=30, spread=2.0)
    whole = probe_features(x, y, folds=3, device="cpu")
    monkeypatch.setattr(zoo.probe.solver, "_MAX_BATCH_BYTES", 1)  # one split per batch, as on a small GPU
    parts = probe_features(x, y, folds=3, device="cpu")
    assert parts.chosen_c == whole.chosen_c
    assert np.allclose(parts.fold_accuracies, whole.fold_accuracies, atol=1 / 15 + 1e-9)


def test_labels_of_any_kind_and_constant_features():
    x, y = blobs(per_class=10, d=5)
    x[:, 4] = 7.0  # a constant column is harmless (scale 1, zero after centring)
    res = probe_features(x, np.array(["a", "b", "c"])[y], folds=2, grid="coarse", device="cpu")
    assert res.accuracy > 0.9 and res.grid == "coarse" and res.n_classes == 3


def test_bad_inputs_say_what_to_do():
    x, y = blobs(per_class=4, d=5)
    with pytest.raises(ProbeError, match="single class"):
        probe_features(x, np.zeros(len(x), dtype=int))
    with pytest.raises(ProbeError, match=r"5-fold .* class '0' has 4.*--min-folds"):
        probe_features(x, y, folds=5)
    res = probe_features(x, y, folds=5, min_folds=3, device="cpu")
    assert res.folds == 4 and "4 folds were used" in res.note
    with pytest.raises(ProbeError, match="min_folds"):
        probe_features(x, y, folds=5, min_folds=6)
    one = y.copy()
    one[0] = 5  # a class with a single sample
    with pytest.raises(ProbeError, match="at least 2 per class"):
        probe_features(x, one, folds=2, min_folds=2)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ProbeError, match="NaN"):
        probe_features(bad, y, folds=2)
    with pytest.raises(ProbeError, match="one per feature row"):
        probe_features(x, y[:-1], folds=2)
    with pytest.raises(ProbeError, match="device"):
        probe_features(x, y, folds=2, device="tpu")
    assert issubclass(ProbeError, UsageError)
    assert resolve_folds({"a": 9, "b": 9}, 5) == (5, None)


def test_cuda_is_refused_clearly_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    x, y = blobs(per_class=10, d=5)
    with pytest.raises(ProbeError, match="no CUDA GPU"):
        probe_features(x, y, folds=2, device="cuda")


def test_auto_device_runs_the_same_code_path():
    x, y = blobs(per_class=10, d=5)
    auto = probe_features(x, y, folds=2, device="auto")
    import torch

    assert auto.device == ("cuda" if torch.cuda.is_available() else "cpu")
    if auto.device == "cpu":
        _same_numbers(auto, probe_features(x, y, folds=2, device="cpu"))


# ------------------------------------------------------------------------------------------ summary


def _result(mid: str, acc: float, half: float, params: int | None) -> ProbeResult:
    return ProbeResult(model_id=mid, method="linear-probe", accuracy=acc, accuracy_ci=(acc - half, acc + half),
                       macro_f1=acc, macro_f1_ci=(acc - half, acc + half), fold_accuracies=[acc], fold_macro_f1=[acc],
                       chosen_c=[1.0], grid="standard", grid_values=[1.0], folds=5, inner_folds=3, seed=0, n=100,
                       n_classes=2, feature_dim=8, seconds=0.1, device="cpu", params=params)


def test_tied_with_best_and_practical_pick():
    rep = ProbeReport(data="d", data_hash="h", n=100, classes=["a", "b"], settings={}, results=[
        _result("big", 0.90, 0.03, 80_000_000), _result("small", 0.88, 0.03, 5_000_000),
        _result("unknown", 0.89, 0.03, None), _result("far", 0.70, 0.02, 1_000)])
    summarise(rep)
    assert rep.best == "big" and rep.tied_with_best == ["big", "unknown", "small"]
    assert rep.practical_pick == "small" and "smallest of the 3" in rep.practical_reason
    assert rep.score_agreement is None
    alone = ProbeReport(data="d", data_hash="h", n=1, classes=[], settings={}, results=[_result("x", 0.9, 0.01, None)])
    summarise(alone)
    assert alone.practical_pick == "x" and alone.tied_with_best == ["x"]


def test_score_agreement():
    res = [_result("a", 0.9, 0.01, 1), _result("b", 0.8, 0.01, 1), _result("c", 0.7, 0.01, 1)]
    same = score_agreement(res, {"a": 3.0, "b": 2.0, "c": 1.0}, "logme")
    assert same.spearman == pytest.approx(1.0) and same.kendall == pytest.approx(1.0) and same.n == 3
    assert score_agreement(res, {"a": 1.0, "b": 2.0, "c": 3.0}).spearman == pytest.approx(-1.0)
    assert score_agreement(res, {"a": 1.0, "b": 2.0}).spearman is None  # two models: always +-1, not computed
    assert score_agreement(res, {"a": 1.0, "b": 1.0}).spearman is None  # constant scores


# ------------------------------------------------------------------------------------------ registry


def _rows(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM probe_results ORDER BY id").fetchall()
    finally:
        conn.close()


def test_probe_stores_and_reuses_results(npz, tmp_path):
    db = tmp_path / "probe.db"
    ids = ["local:cifar_resnet20.c10", "local:mobilenet_v2.tv_in1k"]  # an .npz fits every model: no weights read
    first = probe(npz, ids, folds=3, db=db, scores={ids[0]: 1.0, ids[1]: 2.0})
    assert [r.model_id for r in first.results] == ids and not first.failed
    assert all(not r.from_registry and r.features_cached is None for r in first.results)  # .npz: nothing extracted
    assert first.classes == ["cat", "dog", "fox"] and first.n == 45 and first.best in ids
    assert first.practical_pick == ids[0]  # the same features: tied, and cifar_resnet20 is smaller
    assert first.score_agreement is not None and first.score_agreement.n == 2
    rows = _rows(db)
    assert len(rows) == 2 and {r["model_id"] for r in rows} == set(ids)
    row = rows[0]
    import torch

    auto = "cuda" if torch.cuda.is_available() else "cpu"  # probe's default device is "auto"
    assert row["data_hash"] == first.data_hash and row["folds"] == 3 and row["seed"] == 0 and row["device"] == auto
    assert row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"]
    assert json.loads(row["settings"])["grid"] == "standard" and "torch" in json.loads(row["versions"])
    assert json.loads(row["result"])["fold_accuracies"] == first.results[0].fold_accuracies

    again = probe(npz, ids, folds=3, db=db)
    assert all(r.from_registry for r in again.results) and len(_rows(db)) == 2
    for a, b in zip(first.results, again.results, strict=True):
        _same_numbers(a, b)
        assert b.params == a.params
    forced = probe(npz, ids[:1], folds=3, db=db, force=True)
    assert not forced.results[0].from_registry and len(_rows(db)) == 2  # replaced, not added
    _same_numbers(forced.results[0], first.results[0])
    probe(npz, ids[:1], folds=3, seed=1, db=db)  # other settings: another row
    probe(npz, ids[:1], folds=3, grid="coarse", db=db)
    assert len(_rows(db)) == 4


def test_probe_bad_data_and_models(tmp_path, npz):
    with pytest.raises(ProbeError, match="no labels"):
        x, _ = blobs()
        path = tmp_path / "unlabelled.npz"
        np.savez(path, x=x)
        probe(path, ["local:cifar_resnet20.c10"])
    with pytest.raises(ProbeError, match="--min-folds"):
        probe(npz, ["local:cifar_resnet20.c10"], folds=20)
    rep = probe(npz, ["local:cifar_resnet20.c10"], folds=20, min_folds=3)
    assert rep.results[0].folds == 15 and rep.notes and "15 folds" in rep.notes[0]
    with pytest.raises(ProbeError, match="No models"):
        probe(npz, [" "])
    with pytest.raises(UsageError, match="logme"):  # the unknown scorer's message lists the known ones
        probe(npz, ["local:cifar_resnet20.c10"], score="nope")


def test_missing_weights_are_reported_not_raised(digits_folder, tmp_path):
    db = tmp_path / "user.db"
    broken = rec("local:broken_resnet20", library="cifar_resnet", architecture="resnet20", params=270_000,
                 weights="file:/nonexistent/resnet20.th", input_size=[3, 32, 32], mean=[0.5, 0.5, 0.5],
                 std=[0.25, 0.25, 0.25])
    with Registry(db=db, create=True) as reg:
        reg.index("manifest", [broken])
    rep = probe(digits_folder, ["local:broken_resnet20"], folds=3, db=db)
    assert not rep.results and "not on this machine" in rep.failed["local:broken_resnet20"]
    res = CliRunner().invoke(cli, ["probe", "--data", str(digits_folder), "--models", "local:broken_resnet20",
                                   "--folds", "3", "--db", str(db)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "Failed: local:broken_resnet20: Weights for local:broken_resnet20" in res.output


# ------------------------------------------------------------------------------------------ the command line


def test_cli_json_and_reuse(npz, tmp_path):
    db = tmp_path / "cli.db"
    args = ["probe", "--data", str(npz), "--models", "local:cifar_resnet20.c10,local:cifar_resnet56.c10",
            "--folds", "3", "--seed", "2", "--db", str(db)]
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = _json(res.output)
    assert data["settings"]["folds"] == 3 and data["settings"]["seed"] == 2 and data["n"] == 45
    first = data["results"][0]
    assert first["model_id"] == "local:cifar_resnet20.c10" and len(first["accuracy_ci"]) == 2
    assert first["from_registry"] is False and data["tied_with_best"][0] == data["best"]
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert table.output.count("from registry") >= 2 and "95% interval" in table.output
    assert "grid standard: C in {0.0001, 0.001, …, 100} (7 values)" in table.output
    assert "Practical pick: local:cifar_resnet20.c10" in table.output


def test_cli_errors_are_one_line(npz):
    res = CliRunner().invoke(cli, ["probe", "--data", str(npz), "--models", "local:cifar_resnet20.c10",
                                   "--folds", "30"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "--min-folds" in res.output
    res = CliRunner().invoke(cli, ["probe", "--data", str(npz), "--models", "local:nope"])
    assert res.exit_code == 1 and "Unknown model id" in res.output


def test_help_does_not_import_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom zoo.cli import cli\n"
            "r = CliRunner().invoke(cli, ['probe', '--help'])\nassert r.exit_code == 0 and '--finetune-epochs' in r.output\n"
            "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_cli_real_models_end_to_end(digits_folder, tmp_path):
    """Real offline models on a small image folder: features extracted once, probed, stored, reused."""
    db = tmp_path / "e2e.db"
    args = ["probe", "--data", str(digits_folder), "--models", ",".join(IMAGE_MODELS), "--folds", "3",
            "--score", "knn", "--db", str(db)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "computed, extracted" in res.output and "Agreement with knn" in res.output
    assert "Best: " in res.output and "Practical pick: " in res.output
    rows = _rows(db)
    assert [r["model_id"] for r in rows] == IMAGE_MODELS and all(0 <= r["accuracy"] <= 1 for r in rows)
    again = CliRunner().invoke(cli, [*args, "--json"])
    assert again.exit_code == 0, again.output
    data = _json(again.output)
    assert [r["from_registry"] for r in data["results"]] == [True, True] and len(_rows(db)) == 2
    acc = {r["model_id"]: r["accuracy"] for r in data["results"]}
    assert acc == {r["model_id"]: r["accuracy"] for r in rows}
    assert acc["local:cifar_resnet20.c10"] > 0.6  # digits 0/1/7 are easy for CIFAR features
    forced = probe(digits_folder, IMAGE_MODELS[:1], folds=3, db=db, force=True)
    assert forced.results[0].features_cached is True  # the disk cache shared with `zoo score`
    assert forced.results[0].accuracy == acc[IMAGE_MODELS[0]]


@pytest.mark.slow
def test_finetune_last_block(digits_folder, tmp_path):
    rep = probe(digits_folder, ["local:cifar_resnet20.c10"], folds=2, finetune_epochs=1, db=tmp_path / "ft.db")
    r = rep.results[0]
    assert r.method == "finetune-last-block" and r.folds == 2 and 0 <= r.accuracy <= 1 and not r.chosen_c
    assert "layer3.2 and everything after it" in r.note and rep.settings["epochs"] == 1
    again = probe(digits_folder, ["local:cifar_resnet20.c10"], folds=2, finetune_epochs=1, db=tmp_path / "ft.db")
    assert again.results[0].from_registry and again.results[0].accuracy == r.accuracy


def test_frozen_text_encoders_cannot_be_finetuned(tmp_path):
    rows = ["text,label"] + [f"great fun film number {i},pos" for i in range(6)] + \
           [f"dull boring mess number {i},neg" for i in range(6)]
    csv = tmp_path / "reviews.csv"
    csv.write_text("\n".join(rows))
    rep = probe(csv, ["local:glove-6b-50d.avg"], folds=2, finetune_epochs=1)
    assert not rep.results and "cannot be fine-tuned" in rep.failed["local:glove-6b-50d.avg"]
    linear = probe(csv, ["local:glove-6b-50d.avg"], folds=2, score="logme")
    assert linear.results[0].accuracy > 0.5 and linear.score_agreement is not None


def test_last_block_of_a_resnet():
    from zoo.nets.cifar_resnet import cifar_resnet
    from zoo.probe import _last_block, _unfreeze_tail

    model = cifar_resnet(20)
    name, _ = _last_block(model)
    assert name == "layer3.2"
    block, n = _unfreeze_tail(model)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert block == "layer3.2" and trainable and all(k.startswith(("layer3.2.", "linear.")) for k in trainable)
    assert n == sum(p.numel() for p in model.parameters() if p.requires_grad)
