"""benchmarks/ground_truth.py --smoke (real weights, real data, tiny sizes) and benchmarks/datasets.py splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import datasets as bds  # noqa: E402

IMAGE_MODEL = "local:cifar_resnet20.c10"
TEXT_MODEL = "local:glove-6b-50d.avg"


def _run(out: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "ground_truth.py"), "--smoke", "--device", "cpu",
           "--tasks", "mnist5k", "mr", "--models", IMAGE_MODEL, TEXT_MODEL, "--seeds", "0", "1",
           "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, time.perf_counter() - t0


def test_smoke_writes_protocol_and_entries_and_resumes(tmp_path):
    proc, first_s = _run(tmp_path)
    assert "ETA" in proc.stdout
    docs = {}
    for task, model, key in (("mnist5k", IMAGE_MODEL, "chosen_lr"), ("mr", TEXT_MODEL, "chosen_C")):
        doc = json.loads((tmp_path / f"{task}.json").read_text())
        docs[task] = doc
        proto = doc["protocol"]
        assert proto["recipe"]["task"] == task and proto["recipe"]["smoke"] is True
        assert proto["recipe"]["max_train"] == 64 and proto["recipe"]["max_test"] == 32
        assert {"versions", "date", "device"} <= set(proto)
        if task == "mnist5k":
            assert proto["recipe"]["epochs"] == 1 and proto["recipe"]["input_size_cap"] > 0
            assert len(proto["recipe"]["lr_grid_backbone"]) >= 2
        else:
            assert len(proto["recipe"]["C_grid"]) >= 2
        assert list(doc["results"]) == [model]
        for seed in ("0", "1"):
            e = doc["results"][model][seed]
            assert 0.0 <= e["accuracy"] <= 1.0
            assert e["seconds"] > 0
            assert key in e
            assert e["n_test"] == 32 and 0 < e["n_train"] <= 64
    # the second invocation finds every entry done: nothing runs, nothing changes
    proc2, second_s = _run(tmp_path)
    assert "0 entries to run" in proc2.stdout
    for task, doc in docs.items():
        assert json.loads((tmp_path / f"{task}.json").read_text()) == doc
    assert second_s < first_s + 5


def test_resume_refuses_a_different_recipe(tmp_path):
    from benchmarks import ground_truth as gt

    cfg = {"max_train": 64, "max_test": 32, "epochs": 1, "smoke": True}
    proto = {"recipe": gt.recipe(cfg, "text", "mr")}
    gt.save_store(tmp_path / "mr.json", {"task": "mr", "protocol": proto, "results": {}})
    assert gt.load_store(tmp_path / "mr.json", proto, "mr", "text")["results"] == {}
    other = {"recipe": gt.recipe({**cfg, "max_train": 128}, "text", "mr")}
    with pytest.raises(SystemExit):
        gt.load_store(tmp_path / "mr.json", other, "mr", "text")


@pytest.mark.parametrize("task", bds.TASKS)
def test_loaders_shapes_and_fixed_splits(task):
    a = bds.load(task, seed=0)
    b = bds.load(task, seed=0)
    c = bds.load(task, seed=1)
    trx, try_, tex, tey = a
    assert len(trx) == len(try_) and len(tex) == len(tey)
    assert 0 < len(try_) <= bds.MAX_TRAIN and 0 < len(tey) <= bds.MAX_TEST
    assert try_.dtype == np.int64 and set(np.unique(tey)) <= set(np.unique(try_))
    assert np.unique(try_).tolist() == list(range(int(try_.max()) + 1))
    if bds.modality(task) == "image":
        assert isinstance(trx, np.ndarray) and trx.dtype == np.uint8 and trx.ndim in (3, 4)
        assert trx.shape[1:] == tex.shape[1:]
        assert np.array_equal(trx, b[0]) and np.array_equal(tex, b[2])
    else:
        assert isinstance(trx, list) and all(isinstance(t, str) and t for t in trx[:50])
        assert trx == b[0] and tex == b[2]
    assert np.array_equal(try_, b[1]) and np.array_equal(tey, b[3])
    assert not np.array_equal(try_, c[1])  # another seed reshuffles


def test_documented_sizes_and_disjoint_splits():
    for task in ("mnist5k", "animal_mnist", "mr", "subj"):
        trx, _, tex, _ = bds.load(task, seed=0)
        assert len(trx) == 3000 and len(tex) == 1000
    assert bds.load("mnist5k", 0)[0].shape[1:] == (28, 28)
    assert len(bds.load("trec", 0)[2]) == 500
    # pooled tasks: train and test never share an item
    trx, _, tex, _ = bds.load("mr", 0)
    assert len(set(trx) & set(tex)) < 10  # by index; MR itself repeats a few sentences
    # digits: 3-fold CV, every image tested exactly once, folds fixed by the seed
    assert bds.n_folds("digits") == 3
    sizes = [len(bds.load("digits", 0, fold=f)[3]) for f in range(3)]
    assert sum(sizes) == 1797 and max(sizes) - min(sizes) <= 10
    small = bds.load("mnist5k", 3, max_train=64, max_test=32)
    assert len(small[1]) == 64 and len(small[3]) == 32 and len(np.unique(small[1])) == 10


def test_heldout_tasks_of_issue_20():
    """The five held-out tasks read what their docs say, and are kept apart from the eight earlier tasks."""
    assert set(bds.HELDOUT_TASKS) <= set(bds.TASKS) and bds.TASKS[-len(bds.HELDOUT_TASKS):] == bds.HELDOUT_TASKS
    x, y = bds._raw("chatterbot")
    assert len(np.unique(y)) == 19 and np.bincount(y).min() >= bds.CHATTERBOT_MIN_PER_CLASS
    assert len(set(x)) == len(x)  # distinct utterances, none under two topics
    trx, try_, tex, tey = bds.load("trec_hln", 0)
    assert np.unique(try_).tolist() == [0, 1, 2] and len(tex) == 65 + 81 + 113  # HUM, LOC, NUM of TREC's test file
    title, _, _, _ = bds.load("agnews_title", 0)
    full, _, _, _ = bds.load("agnews_subset", 0)
    assert title != full and all(". " not in t[-3:] for t in title[:20])
    assert np.mean([len(t) for t in title]) < np.mean([len(t) for t in full]) / 2
    sst5 = bds.load("sst5", 0)
    assert np.unique(sst5[1]).tolist() == [0, 1, 2, 3, 4]
    assert bds.n_folds("lfw_faces") == 3
    folds = [bds.load("lfw_faces", 0, fold=f) for f in range(3)]
    assert sum(len(f[3]) for f in folds) == 200 and folds[0][0].shape[1:] == (25, 25)
    assert sum(int(f[3].sum()) for f in folds) == 100  # 100 faces (label 1), 100 non-faces
