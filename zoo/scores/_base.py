"""Registry and input validation shared by the transferability scorers (NumPy only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from zoo.errors import UsageError


class Scorer(Protocol):
    def __call__(
        self, features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray | None = None
    ) -> float: ...


_SCORES: dict[str, Scorer] = {}


def register_score(name: str, *, requires_source_probs: bool = False) -> Callable[[Scorer], Scorer]:
    """Register ``fn`` under ``name``; sets ``fn.score_name`` and ``fn.requires_source_probs``."""

    def deco(fn: Scorer) -> Scorer:
        if name in _SCORES and _SCORES[name] is not fn:
            raise ValueError(f"A transferability score named {name!r} is already registered.")
        fn.score_name = name  # type: ignore[attr-defined]
        fn.requires_source_probs = requires_source_probs  # type: ignore[attr-defined]
        _SCORES[name] = fn
        return fn

    return deco


def get_score(name: str) -> Scorer:
    try:
        return _SCORES[name]
    except KeyError:
        raise UsageError(
            f"Unknown transferability score {name!r}. Choose one of: {', '.join(score_names())}."
        ) from None


def score_names() -> list[str]:
    return sorted(_SCORES)


def check_features(features: object) -> np.ndarray:
    """Return ``features`` as a finite float64 (n, d) array with n >= 2, else raise UsageError."""
    try:
        f = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"features must be a numeric (n_samples, n_features) array ({exc}).") from None
    if f.ndim != 2:
        raise UsageError(
            f"features must be 2-D (n_samples, n_features); got shape {f.shape}. Reshape or flatten per-sample features."
        )
    if f.shape[0] < 2 or f.shape[1] < 1:
        raise UsageError(f"features must have at least 2 samples and 1 feature; got shape {f.shape}.")
    if not np.all(np.isfinite(f)):
        bad = int(np.sum(~np.isfinite(f).all(axis=1)))
        raise UsageError(
            f"features contain NaN or infinite values in {bad} of {f.shape[0]} samples; "
            "drop or repair those samples before scoring."
        )
    return f


def check_classification(
    features: object, labels: object, *, min_per_class: int = 1
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate features and integer class labels.

    Returns ``(features, y, n_classes)`` where ``y`` holds class indices remapped to ``0..C-1``
    (in sorted order of the original label values).
    """
    f = check_features(features)
    y = np.asarray(labels)
    if y.ndim != 1:
        raise UsageError(f"labels must be a 1-D array of class ids; got shape {y.shape}.")
    if y.shape[0] != f.shape[0]:
        raise UsageError(
            f"features has {f.shape[0]} samples but labels has {y.shape[0]}; pass one label per feature row."
        )
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise UsageError(
                "labels must be integer class ids; got non-integer values. "
                "For regression targets use the 'logme' score with float targets."
            )
    elif y.dtype.kind not in "iub":
        raise UsageError(f"labels must be integer class ids; got dtype {y.dtype}. Encode classes as 0..C-1.")
    classes, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    if classes.size < 2:
        raise UsageError(
            f"labels contain only {classes.size} distinct class; a transferability score needs at least 2 classes."
        )
    if counts.min() < min_per_class:
        small = [str(c) for c, k in zip(classes, counts, strict=True) if k < min_per_class]
        raise UsageError(
            f"this score needs at least {min_per_class} samples per class; classes {', '.join(small[:10])} "
            "have fewer. Add samples or drop those classes."
        )
    return f, y_idx.reshape(-1).astype(np.intp), int(classes.size)


def check_source_probs(source_probs: object, n: int, score: str) -> np.ndarray:
    """Validate a (n, Z) matrix of source-model class probabilities; rows are renormalised to sum to 1."""
    if source_probs is None:
        raise UsageError(
            f"The {score!r} score needs source_probs: the pre-trained model's softmax output over its own "
            "(source) classes for every target sample, shape (n_samples, n_source_classes)."
        )
    try:
        p = np.asarray(source_probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"source_probs must be a numeric (n_samples, n_source_classes) array ({exc}).") from None
    if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 1:
        raise UsageError(f"source_probs must have shape ({n}, n_source_classes); got {p.shape}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise UsageError("source_probs must be finite and non-negative; pass softmax probabilities, not logits.")
    sums = p.sum(axis=1, keepdims=True)
    if not np.allclose(sums, 1.0, atol=1e-3):
        raise UsageError(
            "each row of source_probs must sum to 1; pass softmax probabilities (apply softmax to logits first)."
        )
    return p / sums
