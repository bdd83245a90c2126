"""H-score and its shrinkage (Ledoit-Wolf regularised) variant."""

from __future__ import annotations

import numpy as np

from zoo.scores._base import blas_limited, check_classification, register_score, spectrum


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


def _class_indicator_means(y: np.ndarray, n_classes: int, u: np.ndarray) -> np.ndarray:
    """``M @ u`` for the (C, n) matrix ``M[k, j] = sqrt(n_k / n) / n_k [y_j = k]``, so that the rows of
    ``_class_means_between`` are ``M @ (f - mean)``."""
    n = y.shape[0]
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    sums = np.zeros((n_classes, u.shape[1]))
    np.add.at(sums, y, u)
    return (np.sqrt(counts / n) / counts)[:, None] * sums


def _cutoff(values: np.ndarray, d: int) -> float:
    """Eigenvalues at or below this are treated as zero (as ``_trace_pinv_quad`` does)."""
    return max(values.max(initial=0.0), 0.0) * d * np.finfo(np.float64).eps * 10


@register_score("hscore")
@blas_limited
def hscore(features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray | None = None) -> float:
    """H-score (Bao, Li, Huang, Yang & Zhang, ICIP 2019, "An Information-Theoretic Approach to
    Transferability in Task Transfer Learning").

    ``H(f) = tr(cov(f)^+ cov(E[f | y]))`` with the pseudo-inverse of the feature covariance (both
    covariances with the 1/n normalisation). Invariant to relabelling classes and to invertible linear
    maps of the features. ``source_probs`` is ignored.

    Computed from the eigendecomposition of the covariance on its smaller side (shared with the other
    scorers, :func:`zoo.scores._base.spectrum`): with more features than samples, the n x n Gram
    ``K = f_c f_c^T / n`` with eigenpairs ``(w_i, u_i)`` gives ``H = n sum_{w_i > cutoff} ||M u_i||^2``,
    since ``B v_i = sqrt(n w_i) M u_i`` for the covariance's eigenvectors ``v_i = f_c^T u_i / sqrt(n w_i)``.
    """
    f, y, n_classes = check_classification(features, labels)
    sp = spectrum(f, centred=True)
    d = f.shape[1]
    keep = sp.values > _cutoff(sp.values, d)
    if sp.side == "features":
        proj = _class_means_between(f, y, n_classes) @ sp.vectors[:, keep]
        return float(np.sum(proj**2 / sp.values[keep]))
    mu = _class_indicator_means(y, n_classes, sp.vectors[:, keep])
    return float(f.shape[0] * np.sum(mu**2))


def ledoit_wolf(f: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance ``(1 - a) S + a (tr S / d) I`` of the rows of ``f`` and the
    shrinkage ``a`` (same estimator as ``sklearn.covariance.LedoitWolf``; ``S`` uses 1/n)."""
    n, d = f.shape
    x = f - f.mean(axis=0)
    emp = x.T @ x / n
    mu = float(np.trace(emp)) / d
    if d == 1:
        return emp, 0.0
    a = _lw_shrinkage(x, float(np.trace(emp)), float(np.sum(emp**2)))
    shrunk = (1.0 - a) * emp
    shrunk.flat[:: d + 1] += a * mu
    return shrunk, a


def _lw_shrinkage(x: np.ndarray, trace: float, frob2: float) -> float:
    """The Ledoit-Wolf shrinkage of centred rows ``x`` given ``tr S`` and ``||S||_F^2`` (``S = x^T x / n``).

    ``sum((x**2).T @ x**2) = sum_i ||x_i||^4`` (an O(n d) sum instead of an O(n d^2) product)."""
    n, d = x.shape
    if d == 1:
        return 0.0
    mu = trace / d
    beta_ = float(np.sum(np.einsum("ij,ij->i", x, x) ** 2))
    beta = (beta_ / n - frob2) / (d * n)
    delta = (frob2 - 2.0 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


@register_score("shrinkage_hscore")
@blas_limited
def shrinkage_hscore(features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray | None = None) -> float:
    """Shrinkage (regularised) H-score (Ibrahim, Ponomareva & Mazumder, "Newer is not always better:
    Rethinking transferability metrics, their peculiarities, stability and performance", 2022).

    ``H_a(f) = tr(cov_a(f)^-1 (1 - a) cov(E[f | y]))`` where ``cov_a`` is the Ledoit-Wolf shrinkage
    estimate of the feature covariance with shrinkage ``a``; stable when d is large relative to n,
    where the plain H-score's covariance inverse is ill-conditioned. ``source_probs`` is ignored.

    ``cov_a = (1 - a) S + a mu I`` has the eigenvectors of ``S`` with eigenvalues ``(1 - a) w_i + a mu``,
    so the shared eigendecomposition of ``S`` (:func:`zoo.scores._base.spectrum`) serves here too; with
    more features than samples the between-class matrix lies in the span of the n-side eigenvectors
    (``||B v_i||^2 = n w_i ||M u_i||^2``) and the other directions contribute nothing.
    """
    f, y, n_classes = check_classification(features, labels)
    n, d = f.shape
    sp = spectrum(f, centred=True)
    x = f - f.mean(axis=0)
    a = _lw_shrinkage(x, sp.trace, sp.frob2)
    mu = sp.trace / d
    shrunk = (1.0 - a) * sp.values + a * mu
    if sp.side == "features":
        keep = shrunk > _cutoff(shrunk, d)
        proj = _class_means_between(f, y, n_classes) @ sp.vectors[:, keep]
        return (1.0 - a) * float(np.sum(proj**2 / shrunk[keep]))
    # the d - n directions outside the samples' span have eigenvalue a * mu and take part in the cutoff
    top = max(shrunk.max(initial=0.0), a * mu)
    keep = shrunk > max(top, 0.0) * d * np.finfo(np.float64).eps * 10
    m = _class_indicator_means(y, n_classes, sp.vectors[:, keep])
    w = np.clip(sp.values[keep], 0.0, None)
    return (1.0 - a) * float(np.sum(n * w * np.sum(m**2, axis=0) / shrunk[keep]))
