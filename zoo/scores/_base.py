"""Registry and input validation shared by the transferability scorers (NumPy only)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from zoo.errors import UsageError
from zoo.threads import usable_cores


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


# ----------------------------------------------------------------------------- shared spectra
#
# LogME, H-score, shrinkage H-score and TransRate all reduce to the eigendecomposition of a feature
# matrix's second moment. Two facts make them fast (benchmarks/bench_features.py, n = 1,000, d = 1,280):
# (1) the nonzero spectrum of X^T X (d x d) equals that of X X^T (n x n), so decomposing the smaller
# side is enough (the eigenvectors of one side map onto the other's), and (2) the default scorers run
# one after another on the same feature matrix, so the decomposition is computed once and reused: a
# one-entry memo per kind, keyed by a hash of the array's bytes (a changed array never hits).


@dataclass(frozen=True)
class Spectrum:
    """Eigendecomposition of ``X^T X / scale`` computed on its smaller side.

    ``side == "features"`` (d <= n): ``vectors`` (d, d) are eigenvectors of ``X^T X / scale``.
    ``side == "samples"`` (n < d): ``vectors`` (n, n) are eigenvectors of ``X X^T / scale``; they share the
    nonzero eigenvalues, and ``v_i = X^T u_i / sqrt(scale * w_i)``. ``values`` ascending; ``trace`` and
    ``frob2`` (``tr`` and squared Frobenius norm of ``X^T X / scale``) are computed directly from the
    Gram matrix, not from the eigenvalues.
    """

    side: str
    values: np.ndarray
    vectors: np.ndarray
    trace: float
    frob2: float
    scale: float


_MEMO: dict[bool, tuple[bytes, Spectrum]] = {}
_MEMO_LOCK = threading.Lock()


def _digest(f: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((f.shape, f.dtype.str)).encode())
    h.update(memoryview(np.ascontiguousarray(f)).cast("B"))
    return h.digest()


def spectrum(f: np.ndarray, *, centred: bool) -> Spectrum:
    """The :class:`Spectrum` of ``f`` (float64, (n, d)); ``centred=True`` decomposes the biased covariance
    ``(f - mean)^T (f - mean) / n``, ``centred=False`` the raw ``f^T f``. Memoised on the array's bytes."""
    key = _digest(f)
    with _MEMO_LOCK:
        hit = _MEMO.get(centred)
        if hit is not None and hit[0] == key:
            return hit[1]
    n, d = f.shape
    x = f - f.mean(axis=0) if centred else f
    scale = float(n) if centred else 1.0
    with blas_threads():
        if d <= n:
            gram = x.T @ x / scale if centred else x.T @ x
            side = "features"
        else:
            gram = x @ x.T / scale if centred else x @ x.T
            side = "samples"
        trace, frob2 = float(np.trace(gram)), float(np.sum(gram**2))
        w, v = np.linalg.eigh(gram)
    out = Spectrum(side, w, v, trace, frob2, scale)
    with _MEMO_LOCK:
        _MEMO[centred] = (key, out)
    return out


# ----------------------------------------------------------------------------- CPU threads
#
# The count is the cores this process may run on, not what other processes leave free. An earlier rule
# subtracted the 1-minute load average and so fell to one thread whenever the machine was busy (load above
# about 0.5 on 2 cores): a load that comes and goes (a test run, a build) then halved zoo's extraction
# for its whole run, and the load average counts processes that the scheduler would share the cores with
# anyway. Side by side with a peer tool that keeps torch's default threads, zoo was the slower of the two
# on a busy machine (issue 21 item 5; benchmarks/bench_peer_transformer_ranker.py). Whoever wants fewer
# threads says so: ``ZOO_NUM_THREADS``, or the OpenMP/BLAS variables, which zoo then leaves to the libraries.


_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_threads() -> int | None:
    """Threads for zoo's torch passes on the CPU (extraction); the scorers' BLAS takes :func:`scorer_blas_threads`.

    ``ZOO_NUM_THREADS`` when set; None (leave the libraries alone) when the user set ``OMP_NUM_THREADS``,
    ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS``; else :func:`usable_cores`. Other processes' load does
    not enter (see the comment above).
    """
    env = os.environ.get("ZOO_NUM_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError(f"ZOO_NUM_THREADS must be a positive integer, got {env!r}; unset it to use "
                             f"the {usable_cores()} core(s) this process may run on.")
        return value
    if any(os.environ.get(v) for v in _THREAD_ENV):
        return None
    return usable_cores()


def scorer_blas_threads() -> int | None:
    """BLAS threads for the scorers' Gram products and eigendecompositions: ``ZOO_NUM_THREADS`` when set, None
    (leave the library alone) when the OpenMP/BLAS variables are set, else **one**.

    One, and not the cores, because of the sizes: a few hundred to a few thousand rows per candidate. On the
    2-core machine (``benchmarks/bench_blas_threads.py``, BENCHMARKS.md "BLAS threads for the scorers") two
    OpenBLAS threads gained 1.3-1.7x on an idle machine, lost up to 2.7x beside one busy process per core and
    2-46x on an oversubscribed one, since each product's threads wait for one another (the ranking bootstrap's
    250 x 250 eigendecompositions went from ~10 ms to ~1 s each). A fixed choice from the work's size, not
    from other processes' load; torch's extraction passes keep :func:`cpu_threads`.
    """
    env = os.environ.get("ZOO_NUM_THREADS", "").strip()
    if env:
        return cpu_threads()
    if any(os.environ.get(v) for v in _THREAD_ENV):
        return None
    return 1


# The limit an enclosing blas_threads() of this thread holds. Entering threadpool_limits rescans the process's
# loaded libraries (/proc/self/maps, ~1 ms): a scorer and its spectrum each entered it on every call, about 50
# times per resample of the ranking bootstrap (10 candidates), which already holds the same limit around its loop.
# A nested block with the same count therefore does not enter it again (a BLAS library first loaded inside the
# outer block stays unlimited, as it would have been after the outer block's own entry).
_BLAS_HELD = threading.local()


@contextlib.contextmanager
def blas_threads() -> Iterator[None]:
    """Limit BLAS/LAPACK threads to :func:`scorer_blas_threads` for the block (no-op without threadpoolctl, and
    inside an enclosing ``blas_threads()`` of the same thread that already holds the same limit)."""
    n = scorer_blas_threads()
    if n is None or getattr(_BLAS_HELD, "n", None) == n:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it the libraries keep their own setting
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        outer = getattr(_BLAS_HELD, "n", None)
        _BLAS_HELD.n = n
        try:
            yield
        finally:
            _BLAS_HELD.n = outer


def blas_limited(fn: Callable) -> Callable:
    """Run the scorer ``fn`` under :func:`blas_threads` (its matrix products and eigendecompositions): one BLAS
    thread unless ``ZOO_NUM_THREADS`` says otherwise (see :func:`scorer_blas_threads`)."""

    @functools.wraps(fn)
    def limited(*args, **kwargs):
        with blas_threads():
            return fn(*args, **kwargs)

    return limited
