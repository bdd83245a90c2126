"""Quick-probe: the accuracy a linear probe (or a short fine-tune) reaches on the user's labelled sample.

Transferability scores (``zoo score``) are estimates; a probe measures. :func:`probe` loads the sample
(:func:`zoo.data.load_sample`, at most ``max_samples`` per class), takes each model's penultimate
features from the disk cache shared with ``zoo score`` (:func:`zoo.features.extract`: extraction
happens at most once per model and data) and runs :func:`probe_features` on them. Every result is
stored in the user database (table ``probe_results``: model, data hash, settings hash, accuracy and
macro-F1 with their intervals, folds, seed, seconds, device, versions, the full result as JSON); the
same model, data and settings are answered from there (``from_registry=True``) unless ``force``.

Method (:func:`probe_features`, ``method="linear-probe"``):

- **Outer evaluation**: stratified K-fold (:func:`stratified_folds`, seeded). Each fold's accuracy and
  macro-F1 are measured on its held-out rows; the reported value is the mean over folds with a 95 %
  **t-interval over the fold values** (mean ± t(0.975, K-1)·sd/√K, clipped to [0, 1]). Folds share
  training rows, so the interval is a practical yardstick for "statistically tied", not an exact
  confidence interval.
- **Model**: multinomial logistic regression with an L2 penalty, scikit-learn's convention
  (minimise ``C·Σ cross-entropy + ½‖W‖²``, intercept not penalised), so a ``C`` here means what it
  means to ``sklearn.linear_model.LogisticRegression``.
- **Regularisation**: ``C`` is chosen for every outer fold by stratified inner cross-validation
  (:data:`INNER_FOLDS` folds of that fold's training rows) from a named grid (:data:`GRIDS`): the
  highest mean inner accuracy, ties to the stronger regularisation. The model is then refitted on
  the fold's whole training part at that ``C``.
- **No leakage**: the standardisation (mean and scale, as ``StandardScaler``) is fitted on the
  training rows of every fit, inner ones included; held-out rows never inform it.

Solver (why it is fast): every fit is rewritten exactly in the span of its standardised training rows
``A`` (``m × D``). With ``A Aᵀ = U S² Uᵀ`` the problem has ``r = m`` features ``F = U S`` whose Gram
matrix is diagonal, and a held-out row ``t`` becomes ``t Aᵀ U S⁻¹`` (with more rows than features,
``Aᵀ A = V S² Vᵀ`` and ``F = A V`` instead: ``r = D``). All fits of one stage (every inner split, then
every outer fold) are batched into one torch problem and solved by full-batch L-BFGS whose initial
Hessian is the diagonal curvature in that basis (``c_k·s_j²/m + 1/(C·m)``, ``c_k`` the mean softmax
curvature of class ``k``), warm-started along the grid from strong to weak regularisation; a fit
stops when an iteration lowers its objective by less than 1e-5 of it (at most 150 iterations per grid
value) and leaves the batch. Eigen-directions below 1e-5 of the largest (float32 noise) are left out.
The same code runs on CUDA (``device="cuda"``/``"auto"``); float32 everywhere, so CPU and GPU agree
within noise, and at the same ``C`` the predictions agree with scikit-learn's ``LogisticRegression``
(tests/test_probe.py). Same data, seed and settings give identical numbers on one machine.

Fine-tune (``finetune_epochs > 0``, ``method="finetune-last-block"``): per outer fold, the backbone's
last block (the last element of its block stacks holding at least 1 % of the parameters) and
everything after it are trained with a new linear head for that many epochs (AdamW, cosine decay,
head learning rate 10×); the rest stays frozen, BatchNorm statistics included. Same folds and the
same reporting. Frozen encoders (ONNX, averaged word vectors) cannot be fine-tuned and say so.

Bad input raises :class:`ProbeError` (a :class:`~zoo.errors.UsageError`) saying what to do: a single
class, fewer samples in a class than folds (``min_folds`` allows falling back to fewer folds),
non-finite features. A model whose features cannot be computed here (weights not on this machine,
wrong modality) is listed in :attr:`ProbeReport.failed` with the reason, and the others go on.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.format import fmt_params

if TYPE_CHECKING:
    import torch

    from zoo.data import Sample
    from zoo.record import ModelRecord
    from zoo.registry import Registry

__all__ = [
    "DEFAULT_GRID", "GRIDS", "INNER_FOLDS", "PROBE_VERSION", "ProbeError", "ProbeReport", "ProbeResult",
    "ScoreAgreement", "describe_grid", "fold_interval", "grid_values", "macro_f1", "probe", "probe_features",
    "resolve_folds", "score_agreement", "settings_hash", "stratified_folds", "summarise",
]

# Bump when the numbers a probe produces change (solver, tolerances, fold assignment): stored results of
# older versions are then recomputed instead of being served from the registry.
PROBE_VERSION = 1

# Grids of scikit-learn's C (inverse regularisation) for standardised features, strong to weak. The
# order matters: the solver warm-starts each value from the previous one.
GRIDS: dict[str, tuple[float, ...]] = {
    "standard": (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
    "coarse": (1e-3, 1e-2, 1e-1, 1.0),
    "wide": tuple(10.0 ** k for k in range(-6, 5)),
}
DEFAULT_GRID = "standard"
INNER_FOLDS = 3
DEFAULT_FOLDS = 5
DEFAULT_MAX_SAMPLES = 300  # per class, as `zoo score`: the same sample, so the same cached features

LINEAR = "linear-probe"
FINETUNE = "finetune-last-block"

# Solver settings (part of the stored settings: changing them changes the numbers).
_TOL = 1e-5  # stop a fit when an iteration lowers its objective by less than this fraction
_MAX_ITER = 150  # L-BFGS iterations per grid value (warm-started, so later values need few)
_HISTORY = 10
_MAX_BACKTRACK = 10  # halvings of a rejected step before the fit counts as stalled
_EIG_FLOOR = 1e-5  # eigen-directions below this fraction of the largest are float32 noise
# One thread on CPU by default: the solver's products are small and skinny, and on a busy machine
# OpenMP threads spin against other processes (1,000 x 2,048, 5 folds, 7 values on a loaded 2-core
# machine: 5 s of CPU on one thread, 21 s on two, the same numbers). ``threads=`` overrides it.
CPU_THREADS = 1
_MAX_BATCH_BYTES = 1 << 30  # one batch of splits on CPU (more are solved in turn); GPUs use free memory

# Fine-tune recipe (benchmarks/ground_truth.py uses the same optimiser and schedule).
FINETUNE_LR = {"image": 1e-3, "text": 5e-5}
FINETUNE_BATCH = 32
FINETUNE_HEAD_LR_MULT = 10.0
FINETUNE_WEIGHT_DECAY = 0.01
_FINETUNE_MAX_BYTES = 2 << 30  # preprocessed images kept in memory for the epochs
_BLOCK_SHARE = 0.01  # a "block" holds at least this share of the backbone's parameters


class ProbeError(UsageError):
    """The data cannot be probed as asked; the message says what to change."""


@dataclass
class ProbeResult:
    """One model's (``model_id``) linear probe or last-block fine-tune (``method``) on the user's sample:
    ``accuracy`` and ``macro_f1`` as fractions with their 95 % t-interval over the outer folds (``accuracy_ci``,
    ``macro_f1_ci``) and the per-fold values (``fold_accuracies``, ``fold_macro_f1``; ``inner_accuracy`` per
    outer fold and grid value), the regularisation chosen per fold (``chosen_c``) from ``grid``/``grid_values``, the
    settings (``folds``, ``inner_folds``, ``seed``), the data's size (``n``, ``n_classes``, ``feature_dim``),
    ``seconds`` of probing on ``device`` (``extract_seconds`` for features, ``features_cached``), whether it was
    read back from the registry (``from_registry``, stored at ``created_at``), the model's ``params`` and
    ``weights_commit``, the solver's ``iterations`` and a ``note``."""

    model_id: str
    method: str  # "linear-probe" | "finetune-last-block"
    accuracy: float  # mean over outer folds, a fraction in [0, 1]
    accuracy_ci: tuple[float, float]  # 95 % t-interval over folds, clipped to [0, 1]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    fold_accuracies: list[float]
    fold_macro_f1: list[float]
    chosen_c: list[float]  # the C picked by inner CV in each outer fold ([] for a fine-tune)
    grid: str  # the grid's name ("custom" for explicit values, "none" for a fine-tune)
    grid_values: list[float]
    folds: int
    inner_folds: int
    seed: int
    n: int
    n_classes: int
    feature_dim: int
    seconds: float  # the probe itself (fits or fine-tuning), not the feature extraction
    device: str
    from_registry: bool = False
    features_cached: bool | None = None  # None: from the registry, a fine-tune, or precomputed (.npz) features
    extract_seconds: float = 0.0
    params: int | None = None  # the model's parameter count, for the practical pick
    weights_commit: str | None = None  # the Hub commit of the weights probed (None: not a Hub repo, or stored)
    inner_accuracy: list[list[float]] = field(default_factory=list)  # [outer fold][grid value]
    iterations: int = 0  # L-BFGS iterations (the slowest fit of each batch, summed over stages)
    note: str = ""
    created_at: str = ""


@dataclass
class ScoreAgreement:
    """Rank agreement between a transferability score and probe accuracy over the probed models."""

    score: str
    spearman: float | None
    kendall: float | None
    n: int
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class ProbeReport:
    """What ``zoo.probe.probe`` returns: the sample (``data``, ``data_hash``, ``n``, ``classes``), the
    ``settings``, one :class:`ProbeResult` per model probed (``results``) and ``failed`` (id -> why not), the
    ``best`` by accuracy, those statistically tied with it (``tied_with_best``: intervals overlap), the ``practical_pick`` (the
    smallest of those) with its ``practical_reason``, the agreement of a score with the probe
    (``score_agreement``), ``notes`` and total ``seconds``."""

    data: str
    data_hash: str
    n: int
    classes: list[str]
    settings: dict[str, Any]
    results: list[ProbeResult] = field(default_factory=list)  # in the order the models were given
    failed: dict[str, str] = field(default_factory=dict)  # model id -> why it could not be probed
    best: str | None = None
    tied_with_best: list[str] = field(default_factory=list)  # intervals overlap the best's (best first)
    practical_pick: str | None = None  # the smallest (params) among the tied
    practical_reason: str = ""
    score_agreement: ScoreAgreement | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


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


# ----------------------------------------------------------------------------------------- the API


def probe(
    data: str | Path,
    models: Sequence[str],
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    device: str = "auto",
    force: bool = False,
    finetune_epochs: int = 0,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    grid: str | Sequence[float] = DEFAULT_GRID,
    min_folds: int | None = None,
    text_column: str = "text",
    label_column: str = "label",
    db: str | Path | None = None,
    scores: Mapping[str, float] | None = None,
    score: str | None = None,
    progress: Callable[[str], None] | None = None,
    fetch: bool | Any = True,
    max_download: str | int | None = None,
    allow_pickle: bool = False,
    executor: str | None = None,
) -> ProbeReport:
    """Probe every model on the labelled sample at ``data``; see the module docstring.

    Weights not on this machine are fetched from the Hub first (``fetch=False``: only what is on disk),
    within ``max_download`` for the whole call; one model that fails is reported in ``failed``.

    Results are stored in the user database (``db``) and reused for the same model, data and settings
    unless ``force``. ``finetune_epochs > 0`` fine-tunes the last block instead of a linear probe.
    ``scores`` (model id -> a transferability score) or ``score`` (a scorer name, computed on the same
    features) adds the rank agreement between that score and probe accuracy. ``progress`` receives a
    line per model, and progress bars go to stderr when it is given. ``executor="ray"`` probes each model
    in a Ray task (:mod:`zoo.executor`; default ``ZOO_EXECUTOR`` or ``"local"``); only this process stores.
    """
    from zoo.data import load_sample
    from zoo.executor import resolve_executor
    from zoo.fetching import FetchPolicy, using

    executor = resolve_executor(executor)
    policy = FetchPolicy.make(fetch, max_download=max_download, allow_pickle=allow_pickle,
                              progress=progress is not None, say=progress)
    with using(policy):
        return _probe(data, models, folds=folds, seed=seed, device=device, force=force, finetune_epochs=finetune_epochs,
                      max_samples=max_samples, grid=grid, min_folds=min_folds, text_column=text_column,
                      label_column=label_column, db=db, scores=scores, score=score, progress=progress,
                      policy=policy, load_sample=load_sample, executor=executor)


def _probe(data: str | Path, models: Sequence[str], *, folds: int, seed: int, device: str, force: bool,
           finetune_epochs: int, max_samples: int | None, grid: str | Sequence[float], min_folds: int | None,
           text_column: str, label_column: str, db: str | Path | None, scores: Mapping[str, float] | None,
           score: str | None, progress: Callable[[str], None] | None, policy: Any,
           load_sample: Callable[..., Sample], executor: str = "local") -> ProbeReport:
    from zoo.data import skipped_summary
    from zoo.errors import DatabaseError
    from zoo.registry import Registry

    t0 = time.perf_counter()
    ids = list(dict.fromkeys(m.strip() for m in models if m and m.strip()))
    if not ids:
        raise ProbeError("No models given: pass model ids (--models ID,ID).")
    if isinstance(finetune_epochs, bool) or not isinstance(finetune_epochs, int) or finetune_epochs < 0:
        raise ProbeError(f"finetune_epochs must be a non-negative integer, got {finetune_epochs!r}.")
    _check_seed(seed)
    if device not in ("auto", "cpu", "cuda"):
        raise ProbeError(f"device must be auto, cpu or cuda, got {device!r}.")
    if scores is not None and score is not None:
        raise ProbeError("Give either scores (values per model) or score (a scorer name), not both.")
    scorer = None
    if score is not None:
        from zoo.scores import get_score

        scorer = get_score(score)
        if getattr(scorer, "requires_source_probs", False):
            raise ProbeError(f"{score} needs the source model's class probabilities, which zoo does not extract; "
                             "use a label-only scorer (logme, hscore, shrinkage_hscore, transrate, knn).")
    grid_name, cs = grid_values(grid)
    sample = load_sample(data, text_column=text_column, label_column=label_column,
                         max_samples_per_class=max_samples)
    _check_labels(sample)
    k, fold_note = resolve_folds(sample.class_counts(), folds, min_folds)
    method = FINETUNE if finetune_epochs else LINEAR
    settings = _settings(method, k, seed, grid_name, cs, finetune_epochs)
    key = settings_hash(settings)
    report = ProbeReport(data=str(data), data_hash=sample.content_hash, n=len(sample), classes=list(sample.classes),
                         settings=settings, notes=[fold_note] if fold_note else [])
    report.notes += [*sample.notes, *filter(None, [skipped_summary(sample)])]  # unreadable files are said, not dropped
    values: dict[str, float] = dict(scores or {})
    unstored: list[str] = []
    unstored_why = ""
    with Registry(db=db, create=True) as reg:
        records = reg.get_many(ids)
        stored = {} if force else _lookup(reg, [r.id for r in records], sample.content_hash, key)
        remote = {}
        if executor == "ray" and any(r.id not in stored for r in records):
            _resolve_device(device)
            from zoo.executor import run_candidates

            work = functools.partial(_measure_on_worker, method, k, seed, grid, finetune_epochs, device)
            remote = run_candidates([r for r in records if r.id not in stored], sample, work, label="probing",
                                    device=device, policy=policy, show=progress is not None, say=progress)
        for rec in records:
            hit = stored.get(rec.id)
            if hit is not None:
                hit.params = rec.params
                report.results.append(hit)
                if progress:
                    progress(f"{rec.id}: from registry")
                if scorer is not None:
                    _add_score(values, scorer, rec, sample, device, report)
                continue
            if rec.id in remote:  # measured in a Ray task: this process keeps its features and stores its result
                out = remote[rec.id]
                if out.error or isinstance(out.value, str):
                    report.failed[rec.id] = out.error or out.value
                    continue
                res, feats, got = out.value
                _keep_remote(rec, sample, policy, feats, got)
            else:
                if progress:
                    progress(f"probing {rec.id} …")
                _resolve_device(device)  # a missing GPU is the user's error, not the model's (checked when computing)
                try:
                    res, _, got = _measure_one(rec, sample, method=method, folds=k, seed=seed, grid=grid,
                                               epochs=finetune_epochs, device=device, policy=policy,
                                               show_progress=progress is not None)
                except Exception as e:  # noqa: BLE001 - a library's own error in one model never sinks the run
                    report.failed[rec.id] = _failure(rec, e)
                    continue
            if scorer is not None:  # the features are in the disk cache now (a fine-tune extracts them)
                _add_score(values, scorer, rec, sample, device, report)
            res.params = rec.params
            res.created_at = _utcnow()
            try:
                _store(reg, res, sample.content_hash, key, settings)
            except DatabaseError as e:  # a read-only, locked or full database costs the reuse, not the result
                unstored.append(rec.id)
                unstored_why = str(e)
            report.results.append(res)
    if unstored:
        report.notes.append(f"Not stored for reuse ({', '.join(unstored)}): {unstored_why}")
    summarise(report, values if (scores is not None or scorer is not None) else None, score or "scores")
    report.seconds = time.perf_counter() - t0
    return report


def _measure_one(rec: ModelRecord, sample: Sample, *, method: str, folds: int, seed: int,
                 grid: str | Sequence[float], epochs: int, device: str, policy: Any, show_progress: bool,
                 cache: bool | str = True) -> tuple[ProbeResult, Any, Any]:
    """Fetch, extract and probe (or fine-tune) one model: its result, its features (None for a fine-tune) and
    what was fetched for it. Raises on failure (:func:`_failure` words it)."""
    got = policy.ensure(rec) if sample.modality != "array" else None
    feats = None
    if method == FINETUNE:
        res = _finetune(rec, sample, folds=folds, seed=seed, epochs=epochs, device=device,
                        show_progress=show_progress)
    else:
        from zoo.features import extract

        feats = extract(rec, sample, device=device, progress=show_progress, cache=cache)
        res = probe_features(feats.features, sample.labels, folds=folds, seed=seed, grid=grid, device=device,
                             model_id=rec.id)
        if sample.modality != "array":  # an .npz holds the features themselves: nothing extracted
            res.features_cached, res.extract_seconds = feats.cached, feats.seconds
    res.weights_commit = got.commit if got is not None else None
    return res, feats, got


def _failure(rec: ModelRecord, e: BaseException) -> str:
    if isinstance(e, ZooError):
        return str(e)
    import logging

    logging.getLogger("zoo").debug("probing %s failed", rec.id, exc_info=e)
    return (f"{rec.id} could not be loaded or run ({type(e).__name__}: {str(e)[:300]}); "
            "rerun with ZOO_DEBUG=1 for the traceback, or leave it out.")


def _measure_on_worker(method: str, folds: int, seed: int, grid: str | Sequence[float], epochs: int, device: str,
                       rec: ModelRecord, sample: Sample, policy: Any) -> tuple[ProbeResult, Any, Any] | str:
    """:func:`_measure_one` in a Ray task (zoo.executor): the node's feature cache is read, never written; a
    failure comes back as its reason."""
    try:
        return _measure_one(rec, sample, method=method, folds=folds, seed=seed, grid=grid, epochs=epochs,
                            device=device, policy=policy, show_progress=False, cache="read")
    except Exception as e:  # noqa: BLE001 - as here: one model's failure is reported, the others go on
        return _failure(rec, e)


def _keep_remote(rec: ModelRecord, sample: Sample, policy: Any, feats: Any, got: Any) -> None:
    """A Ray task's features into this machine's cache (the one writer), its fetch into the command's record."""
    from zoo.executor import keep_fetch
    from zoo.features import store

    keep_fetch(policy, got)
    if feats is not None:
        store(rec, sample, feats)


def _check_labels(sample: Sample) -> None:
    if sample.labels is None or sample.task == "unlabelled":
        raise ProbeError(f"{sample.source} has no labels: a probe needs labelled samples (an image folder "
                         "root/<class>/..., a label column, or y in an .npz)."
                         + "".join(f" {n}" for n in sample.notes if "--label-column" in n))
    if sample.task == "multilabel":
        raise ProbeError("Multi-label data is not supported by the probe; probe one label at a time.")
    if sample.task == "regression":
        raise ProbeError(f"{sample.source} has a numeric regression target; the probe is a classifier. "
                         "Give class labels (strings or integers).")


def _add_score(values: dict[str, float], scorer: Callable[..., float], record: ModelRecord, sample: Sample,
               device: str, report: ProbeReport) -> None:
    """``record``'s transferability score on the sample (its features from the shared disk cache)."""
    from zoo.features import extract

    try:
        feats = extract(record, sample, device=device)
        values[record.id] = float(scorer(feats.features, sample.labels))
    except ZooError as e:
        report.notes.append(f"{record.id} left out of the score agreement: {e}")


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


def _fit_path(Xt: torch.Tensor, yt: torch.Tensor, splits: list[tuple[np.ndarray, np.ndarray]],
              cs: Sequence[float], n_classes: int) -> tuple[list[list[np.ndarray]], int]:
    """Predictions on every split's held-out rows for every C: ``preds[g][split]``; plus the iterations.

    The splits are solved in as few batches as memory allows (:data:`_MAX_BATCH_BYTES`).
    """
    m, mt, d = max(len(tr) for tr, _ in splits), max(len(te) for _, te in splits), Xt.shape[1]
    r = min(m, d)
    # float32: the standardised rows, F in two layouts, the held-out rows in the basis, the Gram matrix.
    per_split = ((m + mt) * d + (2 * m + mt + r) * r) * 4
    chunk = max(1, min(len(splits), _batch_bytes(Xt.device) // max(per_split, 1)))
    preds: list[list[np.ndarray]] = [[] for _ in cs]
    iterations = 0
    for start in range(0, len(splits), chunk):
        part = splits[start:start + chunk]
        batch = _Batch.build(Xt, yt, part)
        out, its = batch.solve(cs, n_classes)
        iterations += its
        for g in range(len(cs)):
            preds[g].extend(out[g])
    return preds, iterations


def _batch_bytes(device: torch.device) -> int:
    """Memory for one batch of splits: :data:`_MAX_BATCH_BYTES` on CPU, a quarter of the free GPU memory."""
    if device.type != "cuda":
        return _MAX_BATCH_BYTES
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return max(_MAX_BATCH_BYTES, free // 4)


class _Batch:
    """Standardised, eigen-rotated features of several splits, padded to one tensor.

    Stored class-major (logits are ``(K, rows)``): the skinny products of the solver run as
    ``(K, r) @ (r, m)`` and ``(K, m) @ (m, r)``, about twice as fast on CPU as ``(m, r) @ (r, K)``.
    """

    def __init__(self, F: torch.Tensor, FT: torch.Tensor, FtT: torch.Tensor, s2: torch.Tensor, y: torch.Tensor,
                 w: torch.Tensor, m: torch.Tensor, n_test: list[int]):
        self.F, self.FT, self.FtT = F, FT, FtT  # (S, m, r) and (S, r, m) training; (S, r, m_test) held-out
        self.s2, self.y, self.w, self.m, self.n_test = s2, y, w, m, n_test

    @classmethod
    def build(cls, Xt: torch.Tensor, yt: torch.Tensor, splits: list[tuple[np.ndarray, np.ndarray]]) -> _Batch:
        import torch

        dev, d = Xt.device, Xt.shape[1]
        S = len(splits)
        M = max(len(tr) for tr, _ in splits)
        Mt = max(max(len(te) for _, te in splits), 1)
        primal = d < M  # work in the span of the training rows when they are fewer than the features
        R = d if primal else M
        gram = torch.zeros(S, R, R, dtype=torch.float32, device=dev)
        stdised = []
        for s, (tr, te) in enumerate(splits):
            A = Xt.index_select(0, torch.as_tensor(tr, device=dev))
            mu = A.mean(0)
            sd = A.std(0, unbiased=False)
            # Constant features keep scale 1 (as StandardScaler): they are zero after centring either way.
            sd = torch.where(sd > 1e-6 * sd.max().clamp_min(1e-30), sd, torch.ones_like(sd))
            A = (A - mu) / sd
            T = (Xt.index_select(0, torch.as_tensor(te, device=dev)) - mu) / sd
            stdised.append((A, T))
            if primal:
                gram[s] = A.T @ A
            else:
                gram[s, : len(tr), : len(tr)] = A @ A.T  # zero padding: its eigenvalues are 0 and dropped
        evals, vecs = _eigh(gram)
        keep = evals > _EIG_FLOOR * evals.amax(1, keepdim=True).clamp_min(1e-30)
        s2 = torch.where(keep, evals, torch.zeros_like(evals))
        F = torch.zeros(S, M, R, dtype=torch.float32, device=dev)
        FtT = torch.zeros(S, R, Mt, dtype=torch.float32, device=dev)
        y = torch.zeros(S, M, dtype=torch.long, device=dev)
        w = torch.zeros(S, M, dtype=torch.float32, device=dev)
        for s, (tr, te) in enumerate(splits):
            A, T = stdised[s]
            m, mt = len(tr), len(te)
            if primal:
                V = vecs[s] * keep[s]
                F[s, :m] = A @ V
                FtT[s, :, :mt] = (T @ V).T
            else:
                root = s2[s].sqrt()
                inv = torch.where(keep[s], 1.0 / root.clamp_min(1e-30), torch.zeros_like(root))
                U = vecs[s, :m] * keep[s]
                F[s, :m] = U * root
                FtT[s, :, :mt] = (U * inv).T @ (A @ T.T)
            y[s, :m] = yt.index_select(0, torch.as_tensor(tr, device=dev))
            w[s, :m] = 1.0 / m
        m_t = torch.as_tensor([float(len(tr)) for tr, _ in splits], dtype=torch.float32, device=dev)
        return cls(F, F.transpose(1, 2).contiguous(), FtT, s2, y, w, m_t, [len(te) for _, te in splits])

    def select(self, keep: torch.Tensor) -> _Batch:
        return _Batch(self.F[keep], self.FT[keep], self.FtT[keep], self.s2[keep], self.y[keep], self.w[keep],
                      self.m[keep], [self.n_test[i] for i in keep.tolist()])

    def solve(self, cs: Sequence[float], n_classes: int) -> tuple[list[list[np.ndarray]], int]:
        """Fit every split at every C (strong to weak, warm-started); held-out predictions per C."""
        import torch

        S, _, R = self.F.shape
        K = n_classes
        x_all = self.F.new_zeros(S, K * R + K)
        out: list[list[np.ndarray]] = []
        iterations = 0
        for c in cs:
            lam = 1.0 / (float(c) * self.m)  # sklearn's C·Σloss + ½‖W‖², divided by C·m: a mean loss
            x_all, its = _lbfgs(self, x_all, lam, K)
            iterations += its
            ZT = x_all[:, : K * R].view(S, K, R)
            b = x_all[:, K * R:]
            pred = torch.baddbmm(b[:, :, None], ZT, self.FtT).argmax(1).cpu().numpy()
            out.append([pred[s, : self.n_test[s]] for s in range(S)])
        return out, iterations


def _eigh(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    if gram.device.type != "cpu":
        return torch.linalg.eigh(gram)
    # MKL's threaded eigh stalls on a busy CPU (measured: 0.12 s on one thread, 4.9 s on two for an
    # 800 x 800 matrix on a loaded 2-core machine); one thread per small matrix is never much slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(gram)
    finally:
        torch.set_num_threads(before)


def _objective(b: _Batch, lam: torch.Tensor, x: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy + λ/2‖Z‖² per split, and its gradient (written out: cheaper than autograd)."""
    import torch

    S, R = x.shape[0], b.F.shape[2]
    ZT = x[:, : K * R].view(S, K, R)
    logits = torch.baddbmm(x[:, K * R:, None], ZT, b.FT)  # (S, K, m)
    lse = torch.logsumexp(logits, 1)
    nll = lse - logits.gather(1, b.y[:, None, :]).squeeze(1)
    f = (b.w * nll).sum(1) + 0.5 * lam * (ZT * ZT).sum((1, 2))
    p = torch.exp(logits - lse[:, None, :])
    p.scatter_add_(1, b.y[:, None, :], -torch.ones_like(p[:, :1, :]))  # softmax - one-hot
    p *= b.w[:, None, :]
    gZ = torch.bmm(p, b.F) + lam[:, None, None] * ZT
    return f, torch.cat([gZ.reshape(S, K * R), p.sum(2)], 1)


def _preconditioner(b: _Batch, lam: torch.Tensor, x: torch.Tensor, K: int) -> torch.Tensor:
    """Inverse diagonal curvature in the eigenbasis: class k's mean softmax curvature ``c_k`` (at ``x``)
    times the direction's variance, plus the penalty; ``c_k`` alone for the intercepts."""
    import torch

    S, R = x.shape[0], b.F.shape[2]
    p = torch.softmax(torch.baddbmm(x[:, K * R:, None], x[:, : K * R].view(S, K, R), b.FT), 1)
    c = ((p * (1 - p)) * b.w[:, None, :]).sum(2).clamp_min(1e-6)  # (S, K)
    diag = c[:, :, None] * (b.s2 / b.m[:, None])[:, None, :] + lam[:, None, None]
    return 1.0 / torch.cat([diag.reshape(S, K * R), c], 1)


def _lbfgs(batch: _Batch, x_all: torch.Tensor, lam_all: torch.Tensor, K: int) -> tuple[torch.Tensor, int]:
    """Batched, preconditioned L-BFGS from ``x_all`` at the penalties ``lam_all``; the solutions and the
    number of iterations of the slowest fit. Converged fits are dropped from the batch as it goes."""
    import torch

    x_all = x_all.clone()
    idx = torch.arange(len(x_all), device=x_all.device)
    b, lam, x = batch, lam_all, x_all
    pinv = _preconditioner(b, lam, x, K)
    f, g = _objective(b, lam, x, K)
    hist: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    active = torch.ones(len(idx), dtype=torch.bool, device=x.device)
    it = 0
    for it in range(1, _MAX_ITER + 1):  # noqa: B007 - the count is returned
        d = -_two_loop(g, hist, pinv)
        d = torch.where(active[:, None], d, torch.zeros_like(d))
        gd = (g * d).sum(1)
        uphill = active & (gd >= 0)
        if bool(uphill.any()):  # a stale history: fall back to the preconditioned gradient
            d = torch.where(uphill[:, None], -pinv * g, d)
            gd = (g * d).sum(1)
        # The quadratic model predicts a decrease of -gd/2: below the tolerance, the fit is done (this
        # also ends fits at float32's noise floor, where a line search would only halve in vain).
        active = active & (-0.5 * gd > _TOL * f.abs().clamp_min(_TOL))
        if not bool(active.any()):
            break
        d = torch.where(active[:, None], d, torch.zeros_like(d))
        xn, fn, gn, done = _line_search(b, lam, x, f, g, d, gd, active, K)
        stalled = ~done  # no decrease found: the fit is at float32's noise floor
        sk, yk = xn - x, gn - g
        sy = (sk * yk).sum(1)
        good = sy > 1e-10 * sk.norm(dim=1) * yk.norm(dim=1)
        rho = torch.where(good, 1.0 / torch.where(good, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        hist.append((sk * good[:, None], yk * good[:, None], rho))
        if len(hist) > _HISTORY:
            hist.pop(0)
        decrease = f - fn
        x, f, g = xn, fn, gn
        active = active & ~stalled & ~(decrease <= _TOL * f.abs().clamp_min(_TOL))
        n_active = int(active.sum())
        if n_active == 0:
            break
        if n_active * 2 <= len(active) and len(active) >= 4:
            # Drop converged fits: later iterations only pay for the ones still moving.
            x_all[idx] = x
            keep = active.nonzero().squeeze(1)
            idx, b, lam = idx[keep], b.select(keep), lam[keep]
            x, f, g, pinv, active = x[keep], f[keep], g[keep], pinv[keep], active[keep]
            hist = [(a[keep], c[keep], r[keep]) for a, c, r in hist]
    x_all[idx] = x
    return x_all, it


def _line_search(b: _Batch, lam: torch.Tensor, x: torch.Tensor, f: torch.Tensor, g: torch.Tensor, d: torch.Tensor,
                 gd: torch.Tensor, active: torch.Tensor, K: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backtracking (Armijo) from a step of 1, which L-BFGS accepts almost always. Only the fits that
    need a shorter step are evaluated again. Returns the new points and which fits found a decrease."""
    import torch

    ft, gt = _objective(b, lam, x + d, K)
    done = ~active | (ft <= f + 1e-4 * gd)  # inactive fits have d = 0: they keep their point
    xn = torch.where(done[:, None], x + d, x)
    fn = torch.where(done, ft, f)
    gn = torch.where(done[:, None], gt, g)
    if bool(done.all()):
        return xn, fn, gn, done
    rest = (~done).nonzero().squeeze(1)
    sub, lam_r, x_r, f_r, d_r, gd_r = b.select(rest), lam[rest], x[rest], f[rest], d[rest], gd[rest]
    ok_r = torch.zeros(len(rest), dtype=torch.bool, device=x.device)
    step = torch.ones_like(f_r)
    for _ in range(_MAX_BACKTRACK):
        step = torch.where(ok_r, step, step * 0.5)
        ft, gt = _objective(sub, lam_r, x_r + step[:, None] * d_r, K)
        new = ~ok_r & (ft <= f_r + 1e-4 * step * gd_r)
        xn[rest] = torch.where(new[:, None], x_r + step[:, None] * d_r, xn[rest])
        fn[rest] = torch.where(new, ft, fn[rest])
        gn[rest] = torch.where(new[:, None], gt, gn[rest])
        ok_r = ok_r | new
        if bool(ok_r.all()):
            break
    done[rest] = ok_r
    return xn, fn, gn, done


def _two_loop(g: torch.Tensor, hist: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
              pinv: torch.Tensor) -> torch.Tensor:
    """L-BFGS two-loop recursion per split; the initial inverse Hessian is ``γ·pinv``."""
    import torch

    q = g.clone()
    alphas = []
    for sk, yk, rho in reversed(hist):
        a = rho * (sk * q).sum(1)
        alphas.append(a)
        q -= a[:, None] * yk
    if hist:
        sk, yk, _ = hist[-1]
        sy = (sk * yk).sum(1)
        ypy = (yk * pinv * yk).sum(1)
        ok = (sy > 0) & (ypy > 0)
        gamma = torch.where(ok, sy / torch.where(ok, ypy, torch.ones_like(ypy)), torch.ones_like(sy))
        r = gamma[:, None] * pinv * q
    else:
        r = pinv * q
    for (sk, yk, rho), a in zip(hist, reversed(alphas), strict=True):
        beta = rho * (yk * r).sum(1)
        r += (a - beta)[:, None] * sk
    return r


# ----------------------------------------------------------------------------------------- registry


def _settings(method: str, folds: int, seed: int, grid_name: str, cs: Sequence[float], epochs: int) -> dict[str, Any]:
    """Everything that changes a probe's numbers (hashed into ``settings_hash``), and nothing else."""
    out: dict[str, Any] = {"method": method, "folds": folds, "seed": seed, "probe_version": PROBE_VERSION,
                           "metric": "accuracy and macro-F1: mean over outer folds, 95% t-interval"}
    if method == LINEAR:
        out.update(grid=grid_name, grid_values=list(cs), inner_folds=INNER_FOLDS, tol=_TOL, max_iter=_MAX_ITER,
                   eig_floor=_EIG_FLOOR)
    else:
        out.update(epochs=epochs, lr=dict(FINETUNE_LR), batch_size=FINETUNE_BATCH,
                   head_lr_mult=FINETUNE_HEAD_LR_MULT, weight_decay=FINETUNE_WEIGHT_DECAY)
    return out


def settings_hash(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _utcnow() -> str:
    from zoo.registry import utcnow

    return utcnow()


def _versions() -> dict[str, str]:
    import platform

    import torch

    from zoo import __version__

    return {"zoo": __version__, "probe": str(PROBE_VERSION), "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


_STORED_FIELDS = {f.name for f in fields(ProbeResult)} - {"from_registry", "features_cached", "extract_seconds",
                                                          "params"}


def _lookup(reg: Registry, ids: list[str], data_hash: str, key: str) -> dict[str, ProbeResult]:
    """Stored results for ``ids`` on this data and settings (unreadable rows are ignored: recomputed)."""
    from zoo.registry import in_chunks

    found: dict[str, ProbeResult] = {}
    for chunk, marks in in_chunks(ids):
        rows = reg.conn.execute(
            f"SELECT model_id, result FROM main.probe_results WHERE data_hash = ? AND settings_hash = ? "
            f"AND model_id IN ({marks})", [data_hash, key, *chunk])
        for model_id, text in rows:
            try:
                doc = json.loads(text)
                res = ProbeResult(**{k: v for k, v in doc.items() if k in _STORED_FIELDS})
            except (TypeError, ValueError):
                continue
            res.accuracy_ci = (float(res.accuracy_ci[0]), float(res.accuracy_ci[1]))
            res.macro_f1_ci = (float(res.macro_f1_ci[0]), float(res.macro_f1_ci[1]))
            res.from_registry = True
            found[model_id] = res
    return found


def _store(reg: Registry, res: ProbeResult, data_hash: str, key: str, settings: Mapping[str, Any]) -> None:
    doc = {k: v for k, v in asdict(res).items() if k in _STORED_FIELDS}
    cols = ("model_id", "data_hash", "settings_hash", "settings", "accuracy", "accuracy_lo", "accuracy_hi",
            "macro_f1", "macro_f1_lo", "macro_f1_hi", "folds", "seed", "seconds", "device", "versions", "result",
            "created_at")
    values = [res.model_id, data_hash, key, json.dumps(settings, sort_keys=True), res.accuracy, res.accuracy_ci[0],
              res.accuracy_ci[1], res.macro_f1, res.macro_f1_ci[0], res.macro_f1_ci[1], res.folds, res.seed,
              res.seconds, res.device, json.dumps(_versions(), sort_keys=True), json.dumps(doc), res.created_at]
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols[3:])
    with reg.transaction() as conn:  # a forced rerun replaces the stored result
        conn.execute(f"INSERT INTO main.probe_results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                     f"ON CONFLICT(model_id, data_hash, settings_hash) DO UPDATE SET {updates}", values)


# ----------------------------------------------------------------------------------------- the summary


def summarise(report: ProbeReport, values: Mapping[str, float] | None = None, score_name: str = "scores") -> None:
    """Fill in ``report``'s best, the models tied with it (intervals overlap), the practical pick (the
    smallest of those; unknown sizes count as largest) and, with ``values``, the score agreement."""
    res = report.results
    if not res:
        return
    inf = float("inf")
    best = min(res, key=lambda r: (-r.accuracy, -r.macro_f1, r.params if r.params is not None else inf, r.model_id))
    report.best = best.model_id
    tied = [r for r in res if r.accuracy_ci[1] >= best.accuracy_ci[0]]
    tied.sort(key=lambda r: (r is not best, -r.accuracy, r.model_id))
    report.tied_with_best = [r.model_id for r in tied]
    sized = [r for r in tied if r.params is not None]
    pick = min(sized, key=lambda r: (r.params, -r.accuracy, r.model_id)) if sized else best
    report.practical_pick = pick.model_id
    if len(tied) == 1:
        report.practical_reason = "no other model's interval overlaps the best's"
    elif not sized:
        report.practical_reason = "sizes unknown, so the best is the pick"
    elif pick is best:
        report.practical_reason = f"the best is also the smallest of the {len(tied)} tied models"
    else:
        report.practical_reason = (f"the smallest of the {len(tied)} models tied with the best, "
                                   f"{fmt_params(pick.params)} parameters vs {fmt_params(best.params)}")
    if values is not None:
        report.score_agreement = score_agreement(res, values, score_name)


# A rank correlation of two models is always +1 or -1: it says nothing, so none is computed below three.
MIN_AGREEMENT_MODELS = 3


def score_agreement(results: Sequence[ProbeResult], values: Mapping[str, float], name: str = "scores") -> ScoreAgreement:
    """Spearman and Kendall rank correlation between ``values`` and probe accuracy (``None`` below
    :data:`MIN_AGREEMENT_MODELS` models or when either side is constant)."""
    pairs = [(float(values[r.model_id]), r.accuracy) for r in results
             if r.model_id in values and math.isfinite(float(values[r.model_id]))]
    out = ScoreAgreement(score=name, spearman=None, kendall=None, n=len(pairs),
                         values={r.model_id: float(values[r.model_id]) for r in results if r.model_id in values})
    if len(pairs) < MIN_AGREEMENT_MODELS:
        return out
    a, b = np.array(pairs).T
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return out
    from scipy.stats import kendalltau, spearmanr

    rho, tau = float(spearmanr(a, b)[0]), float(kendalltau(a, b)[0])
    out.spearman = rho if math.isfinite(rho) else None
    out.kendall = tau if math.isfinite(tau) else None
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# ----------------------------------------------------------------------------------------- fine-tune


def _finetune(record: ModelRecord, sample: Sample, *, folds: int, seed: int, epochs: int, device: str,
              show_progress: bool) -> ProbeResult:
    """Fine-tune the last block and a new head in every outer fold; accuracy on the held-out rows."""
    import torch
    from tqdm import tqdm

    from zoo.backbones import load_backbone

    t0 = time.perf_counter()
    if sample.modality not in ("image", "text"):
        raise ProbeError(f"A fine-tune needs the raw images or texts; {sample.source} holds precomputed arrays. "
                         "Drop --finetune-epochs for a linear probe on them.")
    if sample.modality != record.modality:
        raise ProbeError(f"{record.id} is a {record.modality} model, but {sample.source} holds {sample.modality} "
                         f"data. Pick a {sample.modality} model (`zoo search --modality {sample.modality}`).")
    dev = _resolve_device(device)
    y = np.asarray(sample.labels, dtype=np.int64)
    n_classes = len(sample.classes)
    lb = load_backbone(record, num_classes=n_classes, device=dev)
    if not lb.trainable or not hasattr(lb.model, "parameters"):
        raise ProbeError(f"{record.id} cannot be fine-tuned: {lb.note or 'it is a frozen encoder.'} "
                         "Probe it without --finetune-epochs (a linear probe on its features).")
    inputs = _finetune_inputs(lb, sample)
    block, n_trainable = _unfreeze_tail(lb.model)
    initial = {k: v.detach().clone() for k, v in lb.model.state_dict().items()}
    outer = stratified_folds(y, folds, seed)
    lr = FINETUNE_LR[record.modality]
    steps = epochs * sum(math.ceil(int((outer != f).sum()) / FINETUNE_BATCH) for f in range(folds))
    loss_fn = torch.nn.CrossEntropyLoss()
    yt = torch.as_tensor(y)
    fold_acc: list[float] = []
    fold_f1: list[float] = []
    with tqdm(total=steps, desc=f"fine-tune {record.id}", unit="step", file=sys.stderr, leave=False,
              disable=not show_progress) as bar:
        for f in range(folds):
            tr, te = np.flatnonzero(outer != f), np.flatnonzero(outer == f)
            lb.model.load_state_dict(initial)  # every fold starts from the pretrained weights
            torch.manual_seed(_child_seed(seed, f))
            lb.head.reset_parameters()
            opt = torch.optim.AdamW(
                [{"params": [p for p in lb.model.parameters() if p.requires_grad], "lr": lr},
                 {"params": list(lb.head.parameters()), "lr": lr * FINETUNE_HEAD_LR_MULT}],
                weight_decay=FINETUNE_WEIGHT_DECAY)
            per_epoch = math.ceil(len(tr) / FINETUNE_BATCH)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, per_epoch * epochs))
            gen = torch.Generator().manual_seed(_child_seed(seed, f))
            _train_mode(lb.model, lb.head)
            for _ in range(epochs):
                order = tr[torch.randperm(len(tr), generator=gen).numpy()]
                for i in range(0, len(order), FINETUNE_BATCH):
                    rows = order[i:i + FINETUNE_BATCH]
                    bar.update(1)
                    if len(rows) < 2:  # BatchNorm cannot train on a single sample
                        continue
                    loss = loss_fn(lb.head(_forward(lb, inputs, rows)), yt[rows].to(dev))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
            pred = _predict(lb, inputs, te)
            fold_acc.append(float((pred == y[te]).mean()))
            fold_f1.append(macro_f1(y[te], pred, n_classes))
    acc, acc_lo, acc_hi = fold_interval(fold_acc)
    f1, f1_lo, f1_hi = fold_interval(fold_f1)
    what = f"{block} and everything after it" if block else "the whole backbone (no block structure found)"
    return ProbeResult(
        model_id=record.id, method=FINETUNE, accuracy=acc, accuracy_ci=(acc_lo, acc_hi), macro_f1=f1,
        macro_f1_ci=(f1_lo, f1_hi), fold_accuracies=fold_acc, fold_macro_f1=fold_f1, chosen_c=[], grid="none",
        grid_values=[], folds=folds, inner_folds=0, seed=seed, n=len(y), n_classes=n_classes,
        feature_dim=lb.feature_dim, seconds=time.perf_counter() - t0, device=dev,
        note=(f"fine-tuned {what} ({n_trainable:,} parameters) with a new head: {_plural(epochs, 'epoch')}, AdamW lr {lr:g} "
              f"(head {lr * FINETUNE_HEAD_LR_MULT:g}), batch {FINETUNE_BATCH}, cosine decay"))


def _finetune_inputs(lb: Any, sample: Sample) -> Any:
    """Preprocessed images as one tensor (decoded once for all folds and epochs), or the texts."""
    if sample.modality == "text":
        return [str(t) for t in sample.items or []]
    import torch
    from PIL import Image, ImageOps

    items = list(sample.items or [])
    out = []
    for i, path in enumerate(items):
        try:
            with Image.open(path) as im:
                im.load()
                img = ImageOps.exif_transpose(im) or im
        except Exception as e:  # noqa: BLE001 - PIL raises many types
            raise ProbeError(f"Could not decode image {path} ({type(e).__name__}: {e}); fix or remove it.") from None
        x = lb.preprocess(img)
        if i == 0 and x.numel() * 4 * len(items) > _FINETUNE_MAX_BYTES:
            raise ProbeError(f"{len(items)} images at {tuple(x.shape)} need {x.numel() * 4 * len(items) / 2**30:.1f} GiB "
                             "in memory for the fine-tune; lower --max-samples.")
        out.append(x)
    return torch.stack(out)


def _last_block(model: Any) -> tuple[str | None, int]:
    """The last block of the backbone and the index of its first parameter.

    A block is an element of a ``Sequential``/``ModuleList``/``ModuleDict`` holding at least
    :data:`_BLOCK_SHARE` and less than half of the parameters (a wrapper around everything is not a
    block), not nested in another such element; the last is the one whose parameters start latest.
    """
    from torch import nn

    params = list(model.parameters())
    position = {id(p): i for i, p in enumerate(params)}
    total = sum(p.numel() for p in params)
    candidates: dict[str, Any] = {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            continue
        for child_name, child in module.named_children():
            size = sum(p.numel() for p in child.parameters())
            if _BLOCK_SHARE * total <= size < 0.5 * total:
                candidates[f"{name}.{child_name}" if name else child_name] = child
    outermost = {n: m for n, m in candidates.items() if not any(n.startswith(o + ".") for o in candidates)}
    best: tuple[str | None, int] = (None, 0)
    for name, module in outermost.items():
        start = position[id(next(module.parameters()))]
        if best[0] is None or start > best[1]:
            best = (name, start)
    return best


def _unfreeze_tail(model: Any) -> tuple[str | None, int]:
    """Train the last block and every parameter registered after it; freeze the rest."""
    block, start = _last_block(model)
    n = 0
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i >= start)
        n += p.numel() if i >= start else 0
    return block, n


def _train_mode(model: Any, head: Any) -> None:
    """Train mode for the modules being trained only: frozen BatchNorm layers keep their statistics."""
    model.eval()
    for module in model.modules():
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            module.train()
    head.train()


def _forward(lb: Any, inputs: Any, rows: np.ndarray) -> torch.Tensor:
    """Backbone features of ``rows`` with gradients, for the adapter's kind of model."""
    import torch

    if isinstance(inputs, torch.Tensor):
        x = inputs[torch.as_tensor(rows)].to(lb.device)
        return lb.model(pixel_values=x) if lb.record.library == "transformers" else lb.model(x)
    enc = lb.preprocess([inputs[i] for i in rows])
    enc = {k: v.to(lb.device) if hasattr(v, "to") else v for k, v in dict(enc).items()}
    if lb.record.library == "sentence-transformers":
        return lb.model(enc)["sentence_embedding"]
    return lb.model(**enc)


def _predict(lb: Any, inputs: Any, rows: np.ndarray, batch: int = 128) -> np.ndarray:
    import torch

    lb.model.eval()
    lb.head.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(rows), batch):
            out.append(lb.head(_forward(lb, inputs, rows[i:i + batch])).argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
