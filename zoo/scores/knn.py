"""Leave-one-out k-nearest-neighbour accuracy with cosine similarity."""

from __future__ import annotations

import numpy as np

from zoo.errors import UsageError
from zoo.scores._base import blas_limited, check_classification, register_score

# Similarity rows per batch are capped so a batch holds about this many float64 entries (~64 MiB).
_BATCH_ENTRIES = 1 << 23


@register_score("knn")
@blas_limited
def knn(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    source_probs: np.ndarray | None = None,
    k: int = 5,
    batch_size: int | None = None,
) -> float:
    """Leave-one-out kNN accuracy under cosine similarity (the non-parametric proxy for linear-probe
    accuracy used throughout the transferability literature, e.g. Kornblith, Shlens & Le, CVPR 2019).

    Each sample is classified by a majority vote of its ``k`` most cosine-similar other samples; vote
    ties go to the class with the larger summed similarity among those neighbours. Returns the fraction
    classified correctly. Similarities are computed in row batches so n = 5,000, d = 2,048 needs well
    under 100 MiB. Invariant to rescaling features. Every class needs at least 2 samples.
    ``source_probs`` is ignored.
    """
    f, y, n_classes = check_classification(features, labels, min_per_class=2)
    n = f.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 1:
        raise UsageError(f"knn k must be an integer between 1 and n_samples - 1 = {n - 1}; got {k!r}.")
    k = int(k)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    x = f / np.maximum(norms, np.finfo(np.float64).tiny)
    bs = batch_size or max(1, _BATCH_ENTRIES // n)
    correct = 0
    rows = np.arange(n)
    for start in range(0, n, bs):
        stop = min(n, start + bs)
        sims = x[start:stop] @ x.T
        sims[np.arange(stop - start), rows[start:stop]] = -np.inf  # leave the sample itself out
        nbr = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        nbr_sims = np.take_along_axis(sims, nbr, axis=1)
        nbr_labels = y[nbr]
        votes = np.zeros((stop - start, n_classes))
        np.add.at(votes, (np.arange(stop - start)[:, None], nbr_labels), 1.0)
        sim_sum = np.zeros_like(votes)
        np.add.at(sim_sum, (np.arange(stop - start)[:, None], nbr_labels), nbr_sims)
        # |sim_sum| <= k, so the tie-break term stays below 1/2 and never overturns a vote count.
        pred = np.argmax(votes + sim_sum / (2 * k + 1), axis=1)
        correct += int(np.sum(pred == y[start:stop]))
    return correct / n
