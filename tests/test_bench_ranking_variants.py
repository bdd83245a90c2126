"""Issue 20's benchmark variants (benchmarks/ranking_variants.py): the regimes where H-score and TransRate
are ill-posed, the non-embedding parameter count of the offline text encoders, the calibration buckets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import ranking_variants as rv  # noqa: E402


def test_ill_posed_regimes_match_the_scores():
    from zoo.scores import get_score

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)  # n = 40, 10 rows per class
    noise = rng.normal(size=(40, 64))  # d = 64 >= n: H-score is C - 1 = 3 whatever the features
    assert rv.ill_posed("hscore", 40, 64, 10)
    assert get_score("hscore")(noise, y) == pytest.approx(3.0, abs=1e-3)
    assert rv.ill_posed("hscore", 40, 16, 10) is None
    assert rv.ill_posed("transrate", 40, 16, 10) and rv.ill_posed("transrate", 40, 8, 10) is None
    assert rv.ill_posed("logme", 40, 64, 10) is None


def _record(rid: str):
    from zoo.sources.manifest import iter_records

    return next(r for r in iter_records(ROOT / "zoo" / "manifests" / "offline.yaml") if r.id == rid)


def test_non_embedding_parameters_of_offline_text_encoders():
    glove = _record("local:glove-6b-50d.avg")
    assert glove.params == 20_000_000 and rv.non_embedding_params(glove) == 0
    l3 = _record("local:paraphrase-MiniLM-L3-v2.onnx")
    # token (30522 x 384), position (512 x 384) and token-type (2 x 384) tables read from the ONNX file
    assert rv.non_embedding_params(l3) == l3.params - (30522 + 512 + 2) * 384
    int8 = _record("local:all-MiniLM-L6-v2.int8-onnx")
    assert rv.non_embedding_params(int8) == int8.params - (30522 + 512 + 2) * 384
    cnn = _record("local:cifar_resnet20.c10")
    assert rv.non_embedding_params(cnn) == cnn.params


def test_calibration_buckets():
    rows = [{"task": "a", "seed": 0, "stays_first": 0.95, "pick_or_tied": True},
            {"task": "b", "seed": 0, "stays_first": 0.90, "pick_or_tied": False},
            {"task": "c", "seed": 0, "stays_first": 0.6, "pick_or_tied": True},
            {"task": "d", "seed": 0, "stays_first": 0.2, "pick_or_tied": False}]
    table = {b["bucket"]: b for b in rv.calibration_table(rows)}
    assert table[">= 90 %"]["n"] == 2 and table[">= 90 %"]["share"] == 0.5
    assert table["50-90 %"]["n"] == 1 and table["< 50 %"]["pick_or_tied"] == 0
    noise = {"m1": {"0": {"accuracy": 0.8}, "1": {"accuracy": 0.9}}, "m2": {"0": {"accuracy": 0.5}, "1": {"accuracy": 0.5}}}
    assert rv.seed_noise(noise) == pytest.approx(0.05)
