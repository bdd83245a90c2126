"""H-score and its shrinkage (Ledoit-Wolf regularised) variant."""

from __future__ import annotations

import numpy as np

from zoo.scores._base import check_classification, register_score


def _class_means_between(f: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows ``sqrt(n_k / n) (mu_k - mu)`` so that ``B.T @ B`` is the biased covariance of E[f | y]."""
    n = f.shape[0]
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    sums = np.zeros((n_classes, f.shape[1]))
    np.add.at(sums, y, f)
    mu = f.mean(axis=0)
    return np.sqrt(counts / n)[:, None] * (sums / counts[:, None] - mu)


def _trace_pinv_quad(cov: np.ndarray, b: np.ndarray) -> float:
    """``tr(pinv(cov) @ b.T @ b)`` for symmetric PSD ``cov`` via an eigendecomposition."""
    w, v = np.linalg.eigh(cov)
    cutoff = max(w.max(initial=0.0), 0.0) * cov.shape[0] * np.finfo(np.float64).eps * 10
    keep = w > cutoff
    proj = b @ v[:, keep]
    return float(np.sum(proj**2 / w[keep]))


@register_score("hscore")
def hscore(features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray | None = None) -> float:
    """H-score (Bao, Li, Huang, Yang & Zhang, ICIP 2019, "An Information-Theoretic Approach to
    Transferability in Task Transfer Learning").

    ``H(f) = tr(cov(f)^+ cov(E[f | y]))`` with the pseudo-inverse of the feature covariance (both
    covariances with the 1/n normalisation). Invariant to relabelling classes and to invertible linear
    maps of the features. ``source_probs`` is ignored.
    """
    f, y, n_classes = check_classification(features, labels)
    fc = f - f.mean(axis=0)
    cov = fc.T @ fc / f.shape[0]
    return _trace_pinv_quad(cov, _class_means_between(f, y, n_classes))


def ledoit_wolf(f: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance ``(1 - a) S + a (tr S / d) I`` of the rows of ``f`` and the
    shrinkage ``a`` (same estimator as ``sklearn.covariance.LedoitWolf``; ``S`` uses 1/n)."""
    n, d = f.shape
    x = f - f.mean(axis=0)
    emp = x.T @ x / n
    mu = float(np.trace(emp)) / d
    if d == 1:
        return emp, 0.0
    x2 = x**2
    beta_ = float(np.sum(x2.T @ x2))
    delta_ = float(np.sum(emp**2))
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * float(np.trace(emp)) + d * mu**2) / d
    beta = min(beta, delta)
    a = 0.0 if beta == 0 else beta / delta
    shrunk = (1.0 - a) * emp
    shrunk.flat[:: d + 1] += a * mu
    return shrunk, a


@register_score("shrinkage_hscore")
def shrinkage_hscore(features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray | None = None) -> float:
    """Shrinkage (regularised) H-score (Ibrahim, Ponomareva & Mazumder, "Newer is not always better:
    Rethinking transferability metrics, their peculiarities, stability and performance", 2022).

    ``H_a(f) = tr(cov_a(f)^-1 (1 - a) cov(E[f | y]))`` where ``cov_a`` is the Ledoit-Wolf shrinkage
    estimate of the feature covariance with shrinkage ``a``; stable when d is large relative to n,
    where the plain H-score's covariance inverse is ill-conditioned. ``source_probs`` is ignored.
    """
    f, y, n_classes = check_classification(features, labels)
    cov, a = ledoit_wolf(f)
    b = _class_means_between(f, y, n_classes)
    return (1.0 - a) * _trace_pinv_quad(cov, b)
