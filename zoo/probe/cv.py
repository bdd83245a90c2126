"""Folds, grids and intervals of the linear probe, and :func:`probe_features`: nested cross-validation
around the solver (:mod:`zoo.probe.solver`). See :mod:`zoo.probe` for the method."""


from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from zoo.probe.results import DEFAULT_FOLDS, DEFAULT_GRID, GRIDS, INNER_FOLDS, LINEAR, ProbeError, ProbeResult
from zoo.probe.solver import _fit_path

# One thread on CPU by default, a fixed choice for this workload (not read from the machine's load, unlike the
# extraction's count before issue 21 item 5, zoo.scores._base.cpu_threads): the solver's products are small and
# skinny, and OpenMP threads that wait for each other spin instead of computing. bench_probe.py, 1,000 x 2,048,
# 5 folds, 7 values, 2-core machine: 3.3-3.5 s CPU (6.8-7.4 s wall) on one thread, 30-53 s CPU (64-84 s wall)
# on two, the same numbers (2026-12-05, load 16-18; 5 s against 21 s CPU on 2026-11-22 at a lower load).
# ``threads=`` overrides it.
CPU_THREADS = 1


# ----------------------------------------------------------------------------------------- folds, grids


def grid_values(grid: str | Sequence[float]) -> tuple[str, list[float]]:
    """``(name, C values)`` of a named grid or explicit values (named ``"custom"``)."""
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ProbeError(f"Unknown regularisation grid {grid!r}; known: {', '.join(GRIDS)}.")
        return grid, list(GRIDS[grid])
    try:
        values = [float(c) for c in grid]
    except (TypeError, ValueError):
        raise ProbeError(f"grid must be a grid name ({', '.join(GRIDS)}) or a list of C values, got {grid!r}.") from None
    if not values or not all(math.isfinite(c) and c > 0 for c in values):
        raise ProbeError(f"Grid values must be positive, finite C values, got {values!r}.")
    return "custom", sorted(values)  # strong to weak regularisation: the warm-start order


def describe_grid(name: str, values: Sequence[float]) -> str:
    """``standard: C in {1e-04, ..., 1e+02} (7 values)`` for output."""
    if not values:
        return name
    shown = ", ".join(f"{c:g}" for c in values) if len(values) <= 4 else \
        f"{values[0]:g}, {values[1]:g}, …, {values[-1]:g}"
    return f"{name}: C in {{{shown}}} ({len(values)} values)"


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id (``0..k-1``) of every row: each class shuffled (seeded) and dealt round-robin, so every
    fold gets ``count // k`` or one more of each class and fold sizes differ by at most one."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]) if len(y) else \
        np.zeros(0, dtype=np.int64)
    fold = np.empty(len(y), dtype=np.int64)
    fold[order] = np.arange(len(y)) % k
    return fold


def resolve_folds(counts: Mapping[str, int], folds: int, min_folds: int | None = None) -> tuple[int, str | None]:
    """The number of outer folds the class counts allow, and a note when it was lowered.

    Every class needs at least ``folds`` samples (one per held-out fold). With ``min_folds``, fewer
    folds are used instead (never fewer than ``min_folds``); without it, too few samples is an error.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ProbeError(f"folds must be an integer of at least 2, got {folds!r}.")
    if min_folds is not None and (isinstance(min_folds, bool) or not isinstance(min_folds, int)
                                  or not 2 <= min_folds <= folds):
        raise ProbeError(f"min_folds must be an integer between 2 and folds ({folds}), got {min_folds!r}.")
    if len(counts) < 2:
        only = f" (only {next(iter(counts))!r})" if counts else ""
        raise ProbeError(f"The labels have a single class{only}; a probe needs at least 2 classes. "
                         "Add samples of other classes.")
    cls, least = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    if least >= folds:
        return folds, None
    if min_folds is not None and least >= min_folds:
        return least, (f"{folds}-fold cross-validation needs {folds} samples per class; class {cls!r} has {least}, "
                       f"so {least} folds were used (allowed by min_folds={min_folds}).")
    fewer = (f" or allow fewer folds (--min-folds {max(2, least)})" if least >= 2 else "")
    raise ProbeError(f"{folds}-fold cross-validation needs at least {folds} samples in every class; class {cls!r} "
                     f"has {least}. Add samples to that class, lower --folds{fewer}."
                     if least >= 2 else
                     f"Class {cls!r} has {least} sample; cross-validation needs at least 2 per class. "
                     "Add samples to that class or remove it.")


def fold_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: mean ± t(0.975, k-1)·sd/√k over the fold values, clipped to [0, 1]."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, mean, mean
    from scipy.stats import t

    half = float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``
    (scikit-learn's ``f1_score(average="macro")``; a class with no true and no predicted sample is left out)."""
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_classes).astype(np.float64)
    true = np.bincount(y_true, minlength=n_classes)
    pred = np.bincount(y_pred, minlength=n_classes)
    seen = (true + pred) > 0
    f1 = np.divide(2 * tp, true + pred, out=np.zeros(n_classes), where=seen)
    return float(f1[seen].mean()) if seen.any() else 0.0


# ----------------------------------------------------------------------------------------- linear probe


def probe_features(
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    grid: str | Sequence[float] = DEFAULT_GRID,
    device: str = "auto",
    inner_folds: int = INNER_FOLDS,
    min_folds: int | None = None,
    model_id: str = "",
    threads: int | None = None,
) -> ProbeResult:
    """Linear-probe accuracy of features ``X`` (n, d) for labels ``y`` (see the module docstring).

    ``y`` may hold any labels (they are encoded in sorted order). ``grid`` is a name in :data:`GRIDS` or
    explicit C values; a single value skips the inner cross-validation. ``device``: ``"auto"`` (CUDA
    when torch sees a GPU), ``"cpu"`` or ``"cuda"``; ``threads``: torch threads on CPU (default
    :data:`CPU_THREADS`). Too few samples per class for ``folds`` is a :class:`ProbeError` unless
    ``min_folds`` allows fewer folds (the result's ``note`` then says so).
    """
    import torch
    from scipy.stats import t as _t  # noqa: F401 - imported before the clock starts, as torch: not probe time

    t0 = time.perf_counter()
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ProbeError(f"Features must be a non-empty (n, d) matrix, got shape {X.shape}.")
    y_raw = np.asarray(y)
    if y_raw.ndim != 1 or len(y_raw) != len(X):
        raise ProbeError(f"Labels must be one per feature row: {len(X)} rows, labels of shape {y_raw.shape}.")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise ProbeError(f"{bad} feature rows contain NaN or infinite values; the features are broken. "
                         "Clear the cache for this model (`zoo cache clear --model ID --yes`) and extract again.")
    _check_seed(seed)
    if isinstance(inner_folds, bool) or not isinstance(inner_folds, int) or inner_folds < 2:
        raise ProbeError(f"inner_folds must be an integer of at least 2, got {inner_folds!r}.")
    names, y_idx = np.unique(y_raw, return_inverse=True)
    y_idx = y_idx.astype(np.int64)
    counts = {str(c): int(k) for c, k in zip(names, np.bincount(y_idx), strict=True)}
    k, note = resolve_folds(counts, folds, min_folds)
    grid_name, cs = grid_values(grid)
    dev = _resolve_device(device)
    n_classes = len(names)

    outer = stratified_folds(y_idx, k, seed)
    train_sets = [np.flatnonzero(outer != f) for f in range(k)]
    test_sets = [np.flatnonzero(outer == f) for f in range(k)]
    # Inner folds: as many as the smallest class of every outer training part allows (>= 2).
    least_train = min(int(np.bincount(y_idx[tr], minlength=n_classes).min()) for tr in train_sets)
    n_inner = max(2, min(inner_folds, least_train)) if len(cs) > 1 else 0

    with _torch_threads(dev, threads):
        Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
        yt = torch.as_tensor(y_idx, device=dev)
        iterations = 0
        inner_acc = np.zeros((k, len(cs)))
        if n_inner:
            splits, owner = [], []
            for f, tr in enumerate(train_sets):
                # A seed per outer fold, derived from the probe's seed: the inner folds differ between
                # outer folds but are reproducible.
                ifold = stratified_folds(y_idx[tr], n_inner, _child_seed(seed, f))
                for j in range(n_inner):
                    splits.append((tr[ifold != j], tr[ifold == j]))
                    owner.append(f)
            preds, its = _fit_path(Xt, yt, splits, cs, n_classes)
            iterations += its
            for s, (_, va) in enumerate(splits):
                truth = y_idx[va]
                for g in range(len(cs)):
                    inner_acc[owner[s], g] += float((preds[g][s] == truth).mean()) / n_inner
            # Highest mean inner accuracy; ties go to the stronger regularisation (the first in the grid).
            chosen = [int(np.argmax(np.round(inner_acc[f], 12))) for f in range(k)]
        else:
            chosen = [0] * k
        outer_preds, its = _fit_path(Xt, yt, list(zip(train_sets, test_sets, strict=True)),
                                     cs[: max(chosen) + 1], n_classes)
        iterations += its

    fold_acc, fold_f1 = [], []
    for f, te in enumerate(test_sets):
        pred = outer_preds[chosen[f]][f]
        fold_acc.append(float((pred == y_idx[te]).mean()))
        fold_f1.append(macro_f1(y_idx[te], pred, n_classes))
    acc, acc_lo, acc_hi = fold_interval(fold_acc)
    f1, f1_lo, f1_hi = fold_interval(fold_f1)
    return ProbeResult(
        model_id=model_id, method=LINEAR, accuracy=acc, accuracy_ci=(acc_lo, acc_hi), macro_f1=f1,
        macro_f1_ci=(f1_lo, f1_hi), fold_accuracies=fold_acc, fold_macro_f1=fold_f1,
        chosen_c=[cs[c] for c in chosen], grid=grid_name, grid_values=cs, folds=k, inner_folds=n_inner, seed=seed,
        n=len(X), n_classes=n_classes, feature_dim=int(X.shape[1]), seconds=time.perf_counter() - t0,
        device=dev, inner_accuracy=[[round(a, 6) for a in row] for row in inner_acc.tolist()] if n_inner else [],
        iterations=iterations, note=note or "")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ProbeError(f"seed must be a non-negative integer, got {seed!r}.")


def _child_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise ProbeError(f"device must be auto, cpu or cuda, got {device!r}.")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ProbeError("device 'cuda' was asked for, but torch sees no CUDA GPU here. Use --device cpu or auto.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextlib.contextmanager
def _torch_threads(device: str, threads: int | None) -> Iterator[None]:
    """On CPU, run with ``threads`` torch threads (default :data:`CPU_THREADS`) and restore the count after."""
    import torch

    if device != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads or CPU_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before)
