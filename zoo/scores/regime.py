"""When a transferability score says nothing about the sample at hand (NumPy only).

Two of the scorers are ill-posed in the regime zoo often runs in (a few hundred rows, hundreds or
thousands of feature dimensions):

- **H-score** (``hscore``) with ``n <= d + 1`` rows: the centred features span all ``n - 1`` directions of
  the sample, the covariance's pseudo-inverse whitens them, and ``tr(cov^+ cov(E[f | y]))`` equals
  ``C - 1`` for every model, pure noise included. Below that the score of noise features is about
  ``(C - 1) d / (n - 1)`` (the between-class covariance of noise has that trace after whitening), so once
  ``d >= (n - 1) / 2`` half of the score's range or more is what noise would reach; zoo calls it not
  informative from there on. The shrinkage variant (``shrinkage_hscore``) regularises the covariance and
  stays informative (tests/test_regime.py: noise ranks below signal at n < d).
- **TransRate** (``transrate``) with a class of fewer rows than dimensions: each class's coding rate is
  limited by its row count, not by the features, and the score grows with the feature dimension itself.

:func:`not_informative` gives the reason (or None); scoring keeps such a value out of ``scores`` and says
why (``ModelScore.not_informative``), and the fusion never ranks a scorer that lacks a value for any
candidate (:func:`zoo.fusion.data_component`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def not_informative(name: str, n: int, d: int, class_counts: Sequence[int] | np.ndarray) -> str | None:
    """Why scorer ``name`` is not informative for ``n`` rows of ``d``-dimensional features with these class
    row counts, or None when it is."""
    counts = np.asarray(class_counts)
    c = int(counts.size)
    if name == "hscore" and c >= 2:
        if n <= d + 1:
            return (f"not informative: with n = {n} rows <= d + 1 = {d + 1} feature dimensions H-score equals "
                    f"C - 1 = {c - 1} for every model, noise included")
        if 2 * d >= n - 1:
            return (f"not informative: with n = {n} rows and d = {d} dimensions pure noise scores about "
                    f"{(c - 1) * d / (n - 1):.2f} of H-score's maximum {c - 1}")
    if name == "transrate" and c >= 2 and int(counts.min()) <= d:
        return (f"not informative: the smallest class has {int(counts.min())} rows, no more than the d = {d} "
                "feature dimensions, so TransRate ranks mainly by feature dimension")
    return None
