"""zoo.confidence: the bootstrap of a data-aware ranking (deterministic tiny features; the real-model path is in
tests/test_recommend_data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from zoo import fusion
from zoo.confidence import RankingConfidence, bootstrap_ranking, half_sample, usable_scorers
from zoo.errors import UsageError


def _task(n_per_class: int = 40, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    return rng, y


def _features(rng, y, d: int, signal: float) -> np.ndarray:
    f = rng.normal(size=(len(y), d))
    f[:, : y.max() + 1] += signal * np.eye(y.max() + 1)[y]
    return f.astype(np.float32)


def test_a_clear_winner_stays_first():
    rng, y = _task()
    feats = {"strong": _features(rng, y, 16, 3.0), "weak": _features(rng, y, 16, 0.3), "noise": _features(rng, y, 16, 0.0)}
    conf = bootstrap_ranking(feats, y, description=dict.fromkeys(feats, 0.5), size=None, n_boot=60)
    assert isinstance(conf, RankingConfidence)
    assert conf.top == "strong"
    assert conf.stays_first >= 0.9
    assert conf.tied == []
    assert conf.n_boot == 60 and set(conf.first_share) == set(feats)
    assert abs(sum(conf.first_share.values()) - 1.0) < 1e-9
    assert "strong stays first in" in conf.sentence() and "no candidate is tied" in conf.sentence()


def test_identical_candidates_are_tied():
    rng, y = _task()
    f = _features(rng, y, 16, 1.0)
    feats = {"a": f, "b": f.copy(), "noise": _features(rng, y, 16, 0.0)}
    conf = bootstrap_ranking(feats, y, description=dict.fromkeys(feats, 0.5), size=None, n_boot=40)
    assert conf.top == "a"  # the full ranking's tie-break: the id
    assert conf.tied == ["b"]
    assert conf.stays_first == pytest.approx(0.5)  # every resample: a and b share first place
    assert conf.lead_interval["b"] == (0.0, 0.0)
    assert "tied with it: b" in conf.sentence()


def test_close_candidates_are_tied_and_the_description_counts():
    rng, y = _task(n_per_class=15)
    feats = {"x": _features(rng, y, 8, 0.8), "y": _features(rng, y, 8, 0.8)}
    conf = bootstrap_ranking(feats, y, description={"x": 0.5, "y": 0.5}, size=None, n_boot=60, seed=1)
    assert conf.tied  # the same signal on 60 rows: the sample cannot tell them apart
    # a description far in favour of one and no data weight: no resample changes the order
    sure = bootstrap_ranking(feats, y, description={"x": 1.0, "y": 0.0}, size=None, n_boot=20, weight=0.0)
    assert sure.top == "x" and sure.stays_first == 1.0 and sure.tied == []


def test_half_samples_keep_every_class_and_are_reproducible():
    rng, y = _task(n_per_class=5, classes=3)
    strata = [np.flatnonzero(y == k) for k in range(3)]
    rows = half_sample(strata, np.random.default_rng(0))
    assert len(rows) == 6 and set(y[rows]) == {0, 1, 2} and len(set(rows)) == len(rows)
    f = {"a": _features(rng, y, 4, 1.0), "b": _features(rng, y, 4, 0.5)}
    one = bootstrap_ranking(f, y, description=dict.fromkeys(f, 0.5), size=None, n_boot=10, seed=3)
    two = bootstrap_ranking(f, y, description=dict.fromkeys(f, 0.5), size=None, n_boot=10, seed=3)
    assert one.first_share == two.first_share and one.lead_interval == two.lead_interval


def test_the_budget_caps_resamples_and_says_so():
    rng, y = _task()
    feats = {"a": _features(rng, y, 16, 2.0), "b": _features(rng, y, 16, 0.0)}
    conf = bootstrap_ranking(feats, y, description=dict.fromkeys(feats, 0.5), size=None, n_boot=200, max_flops=1.0)
    from zoo.confidence import MIN_BOOT

    assert conf.n_boot == MIN_BOOT and conf.n_boot_asked == 200
    assert f"of {MIN_BOOT} resamples" in conf.sentence() and "200 asked" in conf.sentence()


def test_scorers_that_cannot_be_fused_are_left_out():
    rng, y = _task(n_per_class=10)  # 40 rows
    feats = {"wide": _features(rng, y, 64, 1.0), "narrow": _features(rng, y, 8, 1.0)}
    used, dropped = usable_scorers(feats, y, ["logme", "hscore", "transrate", "leep"], None)
    assert used == ["logme"]
    assert "C - 1" in dropped["hscore"] and "feature dimension" in dropped["transrate"]
    assert "source head" in dropped["leep"]
    conf = bootstrap_ranking(feats, y, description=dict.fromkeys(feats, 0.5), size=None,
                             scorers=("logme", "hscore"), n_boot=5)
    assert conf.scorers == ["logme"]


def test_bad_input_says_what_to_do():
    _, y = _task()
    with pytest.raises(UsageError, match="one row per label"):
        bootstrap_ranking({"a": np.zeros((3, 2))}, y, description={"a": 0.5}, size=None)
    with pytest.raises(UsageError, match="integer class labels"):
        bootstrap_ranking({"a": np.zeros((len(y), 2))}, y.astype(float), description={"a": 0.5}, size=None)


def test_fusion_never_ranks_a_scorer_some_candidate_lacks():
    per_model = {"a": {"logme": 1.0, "leep": -1.0}, "b": {"logme": 0.0}}
    assert fusion.fusable(per_model, ["logme", "leep"]) == ["logme"]
    assert fusion.data_component(per_model, ["leep"]) == {"a": 0.5, "b": 0.5}


def test_large_samples_use_rescaled_subsamples(monkeypatch):
    import zoo.confidence as confidence

    rng, y = _task(n_per_class=40)
    feats = {"strong": _features(rng, y, 8, 3.0), "weak": _features(rng, y, 8, 1.0), "noise": _features(rng, y, 8, 0.0)}
    half = bootstrap_ranking(feats, y, description=dict.fromkeys(feats, 0.5), size=None, n_boot=30)
    monkeypatch.setattr(confidence, "MAX_ROWS", 40)  # 160 rows: resamples of 40 (10 per class), not 80
    small = bootstrap_ranking(feats, y, description=dict.fromkeys(feats, 0.5), size=None, n_boot=30)
    assert small.top == half.top == "strong" and small.stays_first >= 0.9
    lo, hi = small.lead_interval["weak"]
    hlo, hhi = half.lead_interval["weak"]
    # the spread is rescaled to the full sample's (sqrt(m / (n - m)) = sqrt(40 / 120)): the same order as half-samples
    assert 0.2 < (hi - lo) / max(hhi - hlo, 1e-12) < 5


def test_the_resampling_loop_enters_the_blas_limit_once(monkeypatch):
    """Entering threadpoolctl's limit rescans the process's libraries (~1 ms); the loop holds one limit, and the
    scorers' and their spectra's own ``blas_threads()`` inside it (five per candidate per resample) must not enter
    it again. A nested block that asks for another count still gets it, and the outer count is back after it."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from zoo.scores._base import blas_threads

    for name in ("ZOO_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    entered: list[int] = []
    real = threadpoolctl.threadpool_limits
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda limits, **kw: entered.append(limits) or real(limits, **kw))
    rng, y = _task()
    feats = {"a": _features(rng, y, 16, 1.0), "b": _features(rng, y, 64, 0.5), "c": _features(rng, y, 200, 0.2)}
    conf = bootstrap_ranking(feats, y, description=dict.fromkeys(feats, 0.5), size=None, n_boot=5)
    assert conf.n_boot == 5 and entered == [1]

    def blas() -> set[int]:
        return {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}

    entered.clear()
    with blas_threads():
        with blas_threads():
            assert blas() == {1}
        monkeypatch.setenv("ZOO_NUM_THREADS", "2")
        with blas_threads():
            assert blas() == {2}
        monkeypatch.delenv("ZOO_NUM_THREADS")
        assert blas() == {1}
        with blas_threads():
            pass
    assert entered == [1, 2]


def _small_lead() -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Two candidates whose fused scores differ by 0.02 on every resample: no data weight, the description makes
    a 1.0 vs 0.0, the size prior (weight 0.98) the same 0.5 for both, so 0.51 vs 0.49 whatever the rows."""
    rng, y = _task(n_per_class=10)
    feats = {"a": _features(rng, y, 4, 1.0), "b": _features(rng, y, 4, 1.0)}
    kw = {"description": {"a": 1.0, "b": 0.0}, "size": {"a": 0.5, "b": 0.5}, "weight": 0.0, "size_weight": 0.98}
    return feats, y, kw


def test_the_proxy_error_is_added_to_every_resample():
    feats, y, kw = _small_lead()
    exact = bootstrap_ranking(feats, y, n_boot=400, **kw)
    assert exact.top == "a" and exact.stays_first == 1.0 and exact.tied == [] and exact.proxy_sd == 0.0
    assert exact.lead_interval["b"] == pytest.approx((0.02, 0.02))
    # noise of SD 1 on a lead of 0.02: a coin toss between the two, and the lead's interval contains 0
    noisy = bootstrap_ranking(feats, y, n_boot=400, proxy_sd=1.0, **kw)
    assert noisy.top == "a" and abs(noisy.stays_first - 0.5) < 0.1 and noisy.tied == ["b"]
    # a small SD: P(a first) = Phi(0.02 / (0.01 sqrt 2)) = 0.92
    near = bootstrap_ranking(feats, y, n_boot=400, proxy_sd=0.01, **kw)
    assert 0.85 < near.stays_first < 0.98
    assert noisy.proxy_sd == 1.0 and "N(0, 1^2)" in noisy.rule and "N(0" not in exact.rule
    assert "typical error" in noisy.sentence() and "typical error" not in exact.sentence()
    again = bootstrap_ranking(feats, y, n_boot=400, proxy_sd=1.0, **kw)
    assert again.first_share == noisy.first_share  # seeded


def test_the_default_proxy_sd_is_the_module_constant_and_sd_0_changes_nothing(monkeypatch):
    import zoo.confidence as confidence

    rng, y = _task()
    feats = {"a": _features(rng, y, 16, 1.0), "b": _features(rng, y, 16, 0.9), "c": _features(rng, y, 16, 0.2)}
    kw = {"description": dict.fromkeys(feats, 0.5), "size": None, "n_boot": 20}
    default, zero = bootstrap_ranking(feats, y, **kw), bootstrap_ranking(feats, y, proxy_sd=0.0, **kw)
    assert default.first_share == zero.first_share and default.lead_interval == zero.lead_interval
    # the same half-samples for every SD: summarise() over one resample_fused() is bootstrap_ranking(proxy_sd=...)
    reps = confidence.resample_fused(feats, y, **kw)
    for sd in (0.0, 0.1):
        one = confidence.summarise(reps, sd)
        assert one.first_share == bootstrap_ranking(feats, y, proxy_sd=sd, **kw).first_share
    monkeypatch.setattr(confidence, "PROXY_SD", 0.1)
    assert bootstrap_ranking(feats, y, **kw).first_share == confidence.summarise(reps, 0.1).first_share
    with pytest.raises(UsageError, match="proxy_sd"):
        bootstrap_ranking(feats, y, proxy_sd=-0.1, **kw)
