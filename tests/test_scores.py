"""Transferability scorers (zoo.scores) against direct, slow implementations of each paper's formula."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from zoo.errors import UsageError
from zoo.scores import get_score, register_score, score_names
from zoo.scores.hscore import hscore, shrinkage_hscore
from zoo.scores.knn import knn
from zoo.scores.leep import leep, nce
from zoo.scores.logme import logme
from zoo.scores.transrate import transrate

ALL = ["hscore", "knn", "leep", "logme", "nce", "shrinkage_hscore", "transrate"]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _blobs(seed: int = 0, n: int = 90, d: int = 6, c: int = 3, sep: float = 4.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    rng.shuffle(y)
    centers = rng.normal(size=(c, d)) * sep
    f = centers[y] + rng.normal(size=(n, d))
    w = rng.normal(size=(d, 5))
    probs = _softmax(f @ w)  # a fixed "source model" with 5 source classes
    return f, y, probs


# ----------------------------------------------------------------------------- registry


def test_registry_lists_every_scorer_and_rejects_unknown_names():
    assert score_names() == ALL
    assert get_score("logme") is logme
    assert get_score("leep").requires_source_probs and get_score("nce").requires_source_probs
    assert not get_score("hscore").requires_source_probs
    with pytest.raises(UsageError, match="Choose one of"):
        get_score("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_score("logme")(lambda features, labels, *, source_probs=None: 0.0)


# ----------------------------------------------------------------------------- LogME


def _brute_evidence(f: np.ndarray, y: np.ndarray) -> float:
    """max over (alpha, beta) of log N(y; 0, I/beta + F F^T / alpha), divided by n; grid then polish."""
    n = f.shape[0]

    def neg(theta):
        a, b = np.exp(theta)
        cov = np.eye(n) / b + f @ f.T / a
        return -multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(y)

    grid = np.linspace(-8, 8, 17)
    start = min(itertools.product(grid, grid), key=neg)
    res = minimize(neg, np.array(start), method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
    return -res.fun / n


@pytest.mark.parametrize(("n", "d"), [(30, 4), (12, 20)])
def test_logme_classification_matches_brute_force_evidence_maximisation(n, d):
    rng = np.random.default_rng(n + d)
    y = np.arange(n) % 3
    f = rng.normal(size=(n, d)) + 1.5 * np.eye(3, d)[y]
    brute = np.mean([_brute_evidence(f, (y == k).astype(float)) for k in range(3)])
    np.testing.assert_allclose(logme(f, y), brute, rtol=1e-5, atol=1e-6)


def test_logme_regression_matches_brute_force_per_target():
    rng = np.random.default_rng(7)
    f = rng.normal(size=(25, 5))
    t = np.stack([f @ rng.normal(size=5) + 0.3 * rng.normal(size=25), rng.normal(size=25)], axis=1)
    brute = [_brute_evidence(f, t[:, j]) for j in range(2)]
    np.testing.assert_allclose(logme(f, t), np.mean(brute), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logme(f, t[:, 0]), brute[0], rtol=1e-5, atol=1e-6)


def test_logme_regression_linear_target_beats_noise():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(200, 16))
    linear = f @ rng.normal(size=16) + 0.1 * rng.normal(size=200)
    noise = rng.normal(size=200) * linear.std()
    assert logme(f, linear) > logme(f, noise) + 0.5


# ----------------------------------------------------------------------------- LEEP / NCE


def _leep_explicit(y, probs):
    n, zn = probs.shape
    classes = sorted(set(y.tolist()))
    joint = {(c, z): sum(probs[i, z] for i in range(n) if y[i] == c) / n for c in classes for z in range(zn)}
    pz = {z: sum(joint[c, z] for c in classes) for z in range(zn)}
    total = 0.0
    for i in range(n):
        total += np.log(sum(joint[y[i], z] / pz[z] * probs[i, z] for z in range(zn)))
    return total / n


def _nce_explicit(y, probs):
    n = len(y)
    z = [int(np.argmax(p)) for p in probs]
    pairs = list(zip(y.tolist(), z, strict=True))
    out = 0.0
    for c, s in set(pairs):
        p_cs = pairs.count((c, s)) / n
        p_s = z.count(s) / n
        out += p_cs * np.log(p_cs / p_s)
    return out


def test_leep_and_nce_match_explicit_joint_and_conditional():
    f, y, probs = _blobs(seed=1, n=40)
    np.testing.assert_allclose(leep(f, y, source_probs=probs), _leep_explicit(y, probs), rtol=1e-10)
    np.testing.assert_allclose(nce(f, y, source_probs=probs), _nce_explicit(y, probs), rtol=1e-10)


def test_leep_and_nce_invariant_to_permuting_source_classes():
    f, y, probs = _blobs(seed=2)
    perm = np.random.default_rng(0).permutation(probs.shape[1])
    for fn in (leep, nce):
        np.testing.assert_allclose(fn(f, y, source_probs=probs[:, perm]), fn(f, y, source_probs=probs), rtol=1e-12)


def test_leep_and_nce_require_source_probs():
    f, y, probs = _blobs()
    for fn in (leep, nce):
        with pytest.raises(UsageError, match="needs source_probs"):
            fn(f, y)
        with pytest.raises(UsageError, match="sum to 1"):
            fn(f, y, source_probs=probs * 2)
        with pytest.raises(UsageError, match="shape"):
            fn(f, y, source_probs=probs[:-1])


# ----------------------------------------------------------------------------- H-score


def _class_mean_matrix(f, y):
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    return g


def test_hscore_matches_explicit_covariance_inverse():
    f, y, _ = _blobs(seed=4, n=60, d=5)
    cov_f = np.cov(f, rowvar=False, bias=True)
    cov_g = np.cov(_class_mean_matrix(f, y), rowvar=False, bias=True)
    np.testing.assert_allclose(hscore(f, y), np.trace(np.linalg.inv(cov_f) @ cov_g), rtol=1e-9)


def test_shrinkage_hscore_matches_sklearn_ledoit_wolf_formula():
    from sklearn.covariance import LedoitWolf

    for n, d in [(60, 5), (20, 40)]:
        f, y, _ = _blobs(seed=n, n=n, d=d)
        lw = LedoitWolf().fit(f)
        cov_g = np.cov(_class_mean_matrix(f, y), rowvar=False, bias=True)
        expected = np.trace(np.linalg.inv(lw.covariance_) @ ((1 - lw.shrinkage_) * cov_g))
        np.testing.assert_allclose(shrinkage_hscore(f, y), expected, rtol=1e-8)


@pytest.mark.parametrize("fn", [hscore, shrinkage_hscore, transrate, logme, knn])
def test_feature_only_scores_invariant_to_permuting_label_ids(fn):
    f, y, _ = _blobs(seed=5)
    relabelled = np.array([7, 2, 11])[y]
    np.testing.assert_allclose(fn(f, relabelled), fn(f, y), rtol=1e-9)


def test_hscore_invariant_to_invertible_linear_map_of_features():
    f, y, _ = _blobs(seed=6, n=80, d=4)
    a = np.random.default_rng(1).normal(size=(4, 4)) + 3 * np.eye(4)
    np.testing.assert_allclose(hscore(f @ a + 5.0, y), hscore(f, y), rtol=1e-8)


# ----------------------------------------------------------------------------- TransRate


def test_transrate_matches_explicit_logdets():
    f, y, _ = _blobs(seed=8, n=45, d=7)
    eps = 0.5
    n, d = f.shape
    z = f - f.mean(axis=0)

    def rate(zz):
        m = zz.shape[0]
        return 0.5 * np.linalg.slogdet(np.eye(d) + d / (m * eps**2) * zz.T @ zz)[1]

    expected = rate(z) - sum((y == c).sum() / n * rate(z[y == c]) for c in np.unique(y))
    np.testing.assert_allclose(transrate(f, y, eps=eps), expected, rtol=1e-9)


# ----------------------------------------------------------------------------- kNN


def _knn_explicit(f, y, k):
    n = len(y)
    correct = 0
    for i in range(n):
        sims = []
        for j in range(n):
            if j != i:
                cos = f[i] @ f[j] / (np.linalg.norm(f[i]) * np.linalg.norm(f[j]))
                sims.append((cos, j))
        top = sorted(sims, reverse=True)[:k]
        votes, sim_sum = {}, {}
        for s, j in top:
            votes[y[j]] = votes.get(y[j], 0) + 1
            sim_sum[y[j]] = sim_sum.get(y[j], 0.0) + s
        pred = max(votes, key=lambda c: (votes[c], sim_sum[c]))
        correct += pred == y[i]
    return correct / n


@pytest.mark.parametrize("k", [1, 4, 5])
def test_knn_matches_explicit_loop_and_batching_does_not_change_it(k):
    f, y, _ = _blobs(seed=9, n=50, d=4, sep=1.0)
    expected = _knn_explicit(f, y, k)
    assert knn(f, y, k=k) == pytest.approx(expected)
    assert knn(f, y, k=k, batch_size=7) == pytest.approx(expected)


def test_knn_invariant_to_feature_scaling():
    f, y, _ = _blobs(seed=10, sep=1.0)
    scales = np.random.default_rng(0).uniform(0.1, 10.0, size=(f.shape[0], 1))
    assert knn(f * scales, y) == knn(f, y) == knn(f * 1000.0, y)


def test_knn_handles_5000_by_2048_in_batches():
    rng = np.random.default_rng(0)
    y = np.arange(5000) % 10
    f = rng.normal(size=(5000, 2048)).astype(np.float32)
    f[np.arange(5000), y] += 40.0
    assert knn(f, y, k=3) > 0.99


# ----------------------------------------------------------------------------- behaviour shared by all scorers


@pytest.mark.parametrize("name", ALL)
def test_separable_labels_score_above_shuffled_labels(name):
    f, y, probs = _blobs(seed=11, n=120, d=8)
    shuffled = np.random.default_rng(0).permutation(y)
    fn = get_score(name)
    assert fn(f, y, source_probs=probs) > fn(f, shuffled, source_probs=probs)


@pytest.mark.parametrize("name", ALL)
def test_bad_input_raises_usage_error(name):
    f, y, probs = _blobs()
    fn = get_score(name)
    with pytest.raises(UsageError, match="at least 2 classes"):
        fn(f, np.zeros(len(y), dtype=int), source_probs=probs)
    bad = f.copy()
    bad[3, 1] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        fn(bad, y, source_probs=probs)
    with pytest.raises(UsageError, match="one label per feature row|samples"):
        fn(f, y[:-1], source_probs=probs)
    with pytest.raises(UsageError, match="2-D"):
        fn(f[:, 0], y, source_probs=probs)
    if name != "logme":  # float labels mean regression targets for logme
        with pytest.raises(UsageError, match="integer class ids"):
            fn(f, y + 0.5, source_probs=probs)


def test_knn_rejects_bad_k_and_singleton_classes():
    f, y, _ = _blobs()
    for k in (0, len(y), 2.5):
        with pytest.raises(UsageError, match="k must be"):
            knn(f, y, k=k)
    y2 = y.copy()
    y2[0] = 99
    with pytest.raises(UsageError, match="at least 2 samples per class"):
        knn(f, y2)


def test_logme_regression_rejects_mismatched_targets():
    f, _, _ = _blobs()
    with pytest.raises(UsageError, match="regression targets"):
        logme(f, np.ones(len(f) - 1))
