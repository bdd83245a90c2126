"""zoo.scores.regime: the scorers' ill-posed regimes are detected, and the fusion never ranks them."""

from __future__ import annotations

import numpy as np
import pytest

from zoo import fusion
from zoo.scores import get_score
from zoo.scores.regime import not_informative


def _sample(n: int, d: int, classes: int, signal: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    f = rng.normal(size=(n, d))
    f[:, :classes] += signal * np.eye(classes)[y]
    return f, y


def test_hscore_saturates_for_noise_with_n_at_most_d_plus_1():
    noise, y = _sample(40, 60, 4, 0.0)
    signal, _ = _sample(40, 60, 4, 3.0, seed=1)
    assert get_score("hscore")(noise, y) == pytest.approx(3.0)
    assert get_score("hscore")(signal, y) == pytest.approx(3.0)
    why = not_informative("hscore", 40, 60, np.bincount(y))
    assert why and "C - 1 = 3" in why
    # the shrinkage variant stays informative there: noise below signal
    assert get_score("shrinkage_hscore")(noise, y) < get_score("shrinkage_hscore")(signal, y)
    assert not_informative("shrinkage_hscore", 40, 60, np.bincount(y)) is None


def test_hscore_noise_floor_is_what_the_rule_says():
    # pure noise scores about (C - 1) d / (n - 1): the rule's reason for calling d >= (n - 1) / 2 not informative
    vals = [get_score("hscore")(*_sample(201, 50, 5, 0.0, seed=s)) for s in range(5)]
    assert abs(np.mean(vals) - 4 * 50 / 200) < 0.15
    assert not_informative("hscore", 201, 50, [41, 40, 40, 40, 40]) is None
    assert "pure noise" in not_informative("hscore", 201, 100, [41, 40, 40, 40, 40])


def test_transrate_with_fewer_rows_per_class_than_dimensions():
    assert "feature dimension" in not_informative("transrate", 100, 64, [50, 50])
    assert not_informative("transrate", 400, 64, [200, 200]) is None


def test_noise_features_no_longer_get_the_maximum_in_the_fusion():
    # n <= d + 1 for the wide noise model: its H-score is the maximum C - 1, the narrow model's is lower.
    noise, y = _sample(30, 40, 3, 0.0)
    good, _ = _sample(30, 5, 3, 2.0, seed=2)
    raw = {"noise": get_score("hscore")(noise, y), "good": get_score("hscore")(good, y)}
    assert raw["noise"] > raw["good"]  # ranked raw, noise would win
    per_model = {m: ({"hscore": v} if not not_informative("hscore", 30, f.shape[1], np.bincount(y)) else {})
                 for (m, v), f in zip(raw.items(), (noise, good), strict=True)}
    assert fusion.data_component(per_model, ["hscore"]) == {"noise": 0.5, "good": 0.5}
