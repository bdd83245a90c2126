"""TransRate: mutual information between features and labels via coding rates."""

from __future__ import annotations

import numpy as np

from zoo.errors import UsageError
from zoo.scores._base import blas_limited, check_classification, register_score, spectrum


def coding_rate(z: np.ndarray, eps: float, d: int, n: int) -> float:
    """``R = 1/2 logdet(I_d + d / (n eps^2) z.T @ z)``, computed from the eigenvalues of the smaller Gram
    matrix of ``z`` (the squared singular values; 3-5x faster than an SVD, equal to ~1e-11 relative)."""
    m, k = z.shape
    gram = z @ z.T if m < k else z.T @ z
    sv2 = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    return 0.5 * float(np.sum(np.log1p(d / (n * eps**2) * sv2)))


@register_score("transrate")
@blas_limited
def transrate(
    features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray | None = None, eps: float = 1e-2
) -> float:
    """TransRate (Huang, Huang, Lu, Li & Wang, ICML 2022, "Frustratingly Easy Transferability
    Estimation").

    With centred features ``Z`` (n x d) and the coding rate ``R(Z, eps) = 1/2 logdet(I + d/(n eps^2)
    Z^T Z)``: ``TrR = R(Z, eps) - sum_y (n_y / n) R(Z_y, eps)`` where ``R(Z_y, eps)`` uses ``n_y`` and
    the rows of class ``y``. This is the paper's definition; the authors' reference code instead drops
    the ``d`` factor and weights classes uniformly. The value depends on the feature scale relative to
    ``eps`` (default 1e-2), so compare models on comparably scaled features. ``source_probs`` is ignored.
    """
    if not (np.isfinite(eps) and eps > 0):
        raise UsageError(f"transrate eps must be a positive number; got {eps!r}.")
    f, y, n_classes = check_classification(features, labels)
    n, d = f.shape
    z = f - f.mean(axis=0)
    # R(Z) from the shared eigendecomposition of Z^T Z / n (zoo.scores._base.spectrum): the squared
    # singular values of Z are n times its eigenvalues, so no separate SVD of the (n, d) matrix is needed.
    w = np.clip(spectrum(f, centred=True).values, 0.0, None)
    total = 0.5 * float(np.sum(np.log1p(d / eps**2 * w)))
    cond = 0.0
    for k in range(n_classes):
        zk = z[y == k]
        cond += zk.shape[0] / n * coding_rate(zk, eps, d, zk.shape[0])
    return total - cond
