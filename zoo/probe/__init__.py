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

The package: this module holds the API (:func:`probe`: load, extract, probe, store); :mod:`zoo.probe.cv` the
folds, grids, intervals and :func:`probe_features`; :mod:`zoo.probe.solver` the batched L-BFGS;
:mod:`zoo.probe.results` the constants, the error, the result classes, their registry store and the summary;
:mod:`zoo.probe.finetune` the short fine-tune. Every name is importable from ``zoo.probe``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

# The package's modules, by what they hold (each name below stays importable from zoo.probe):
from zoo.probe.cv import (  # folds, grids, intervals; nested cross-validation around the solver
    CPU_THREADS,
    _check_seed,
    _resolve_device,
    describe_grid,
    fold_interval,
    grid_values,
    macro_f1,
    probe_features,
    resolve_folds,
    stratified_folds,
)
from zoo.probe.finetune import _finetune, _last_block, _unfreeze_tail  # the short fine-tune
from zoo.probe.results import (  # constants, the error, the results, their store and summary
    DEFAULT_FOLDS,
    DEFAULT_GRID,
    DEFAULT_MAX_SAMPLES,
    FINETUNE,
    FINETUNE_BATCH,
    FINETUNE_HEAD_LR_MULT,
    FINETUNE_LR,
    FINETUNE_WEIGHT_DECAY,
    GRIDS,
    INNER_FOLDS,
    LINEAR,
    MIN_AGREEMENT_MODELS,
    PROBE_VERSION,
    ProbeError,
    ProbeReport,
    ProbeResult,
    ScoreAgreement,
    _lookup,
    _settings,
    _store,
    _utcnow,
    features_match,
    score_agreement,
    settings_hash,
    summarise,
)

if TYPE_CHECKING:
    from zoo.data import Sample
    from zoo.record import ModelRecord

__all__ = [
    "DEFAULT_GRID", "GRIDS", "INNER_FOLDS", "PROBE_VERSION", "ProbeError", "ProbeReport", "ProbeResult",
    "ScoreAgreement", "describe_grid", "fold_interval", "grid_values", "macro_f1", "probe", "probe_features",
    "resolve_folds", "score_agreement", "settings_hash", "stratified_folds", "summarise",
]
# Importable from here as before the split, though not in __all__: settings and the fine-tune's helpers.
_REEXPORTED = (CPU_THREADS, DEFAULT_FOLDS, DEFAULT_MAX_SAMPLES, FINETUNE_BATCH, FINETUNE_HEAD_LR_MULT, FINETUNE_LR,
               FINETUNE_WEIGHT_DECAY, MIN_AGREEMENT_MODELS, _last_block, _unfreeze_tail)


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
    from zoo.scoring import failure_reason

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
        stored = {r.id: stored[r.id] for r in records if r.id in stored and features_match(stored[r.id], r, sample.modality)}
        remote = {}
        if executor == "ray" and any(r.id not in stored for r in records):
            _resolve_device(device)
            from zoo.executor import keep_returned, run_candidates

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
                keep_returned(policy, rec, sample, feats, got)
            else:
                if progress:
                    progress(f"probing {rec.id} …")
                _resolve_device(device)  # a missing GPU is the user's error, not the model's (checked when computing)
                try:
                    res, _, got = _measure_one(rec, sample, method=method, folds=k, seed=seed, grid=grid,
                                               epochs=finetune_epochs, device=device, policy=policy,
                                               show_progress=progress is not None)
                except Exception as e:  # noqa: BLE001 - a library's own error in one model never sinks the run
                    report.failed[rec.id] = failure_reason(rec, e, "probing")
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
        res.feature_layers = feats.layers
        if sample.modality != "array":  # an .npz holds the features themselves: nothing extracted
            res.features_cached, res.extract_seconds = feats.cached, feats.seconds
    res.weights_commit = got.commit if got is not None else None
    return res, feats, got


def _measure_on_worker(method: str, folds: int, seed: int, grid: str | Sequence[float], epochs: int, device: str,
                       rec: ModelRecord, sample: Sample, policy: Any) -> tuple[ProbeResult, Any, Any] | str:
    """:func:`_measure_one` in a Ray task (zoo.executor): the node's feature cache is read, never written; a
    failure comes back as its reason."""
    from zoo.scoring import failure_reason

    try:
        return _measure_one(rec, sample, method=method, folds=folds, seed=seed, grid=grid, epochs=epochs,
                            device=device, policy=policy, show_progress=False, cache="read")
    except Exception as e:  # noqa: BLE001 - as here: one model's failure is reported, the others go on
        return failure_reason(rec, e, "probing")


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
