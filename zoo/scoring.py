"""Score candidate backbones on the user's labelled sample: features (cached) -> transferability scores.

This is the measuring half of data-aware ranking (``zoo score``). How the scores are fused with the
description components and priors is decided on the ranking benchmark, not here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import UsageError, ZooError

# Scores computed by default: label-only scorers that apply to every backbone. LEEP and NCE need a
# source classification head's probabilities and are added when asked for.
DEFAULT_SCORES = ("logme", "hscore", "shrinkage_hscore", "transrate", "knn")


@dataclass
class ModelScore:
    """One model (``id``) scored on the sample: ``scores`` (scorer -> raw value), the features' shape (``n``,
    ``feature_dim``), ``extract_seconds`` (0 when ``cached``) on ``device``, ``score_seconds`` per scorer, scorers
    that do not apply and why (``skipped``), scorers not computed because their value would say nothing on this
    sample and why (``not_informative``: zoo.scores.regime), what was fetched for it (``download_bytes``,
    ``download_seconds``, ``weights_commit``), which transformer layers its features averaged (``layers``, None:
    the model's own output; :mod:`zoo.backbones.layers`), or ``error``: why it could not be scored."""

    id: str
    scores: dict[str, float]
    n: int
    feature_dim: int
    extract_seconds: float
    score_seconds: dict[str, float]
    cached: bool
    device: str
    error: str | None = None  # why this model could not be scored (weights absent, modality mismatch)
    weights_commit: str | None = None  # the Hub commit of the weights measured (None: not a Hub repo)
    download_bytes: int = 0  # fetched for this model by this run
    download_seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)  # scorer -> why it does not apply (LEEP without a head)
    # scorer -> why its value would say nothing on this sample (zoo.scores.regime: H-score with n <= d + 1, ...);
    # such a scorer is not computed, so it is neither shown as a number nor fused
    not_informative: dict[str, str] = field(default_factory=dict)
    layers: list[int] | None = None  # the transformer layers the scored features averaged (None: model's output)


@dataclass
class Plan:
    """What ``score`` is about to do for one model, said before any extraction starts."""

    id: str
    cached: bool
    estimate_seconds: float  # 0 when cached; else zoo.estimates: imports + load + the pass, on this machine
    warnings: list[str] = field(default_factory=list)
    download_bytes: int = 0  # to fetch from the Hub before extracting (0: on this machine, or not fetchable)
    download_estimate_seconds: float = 0.0
    error: str | None = None  # known before starting: this model will not be scored (refused, not on the Hub)
    estimate_basis: str = ""  # "measured", "cost model", "default" (zoo.estimates), or "cached"
    estimate_detail: str = ""  # the basis in words
    estimate_imports: list[str] = field(default_factory=list)  # libraries this model is the first to import
    estimate_import_seconds: float = 0.0  # of estimate_seconds: those imports


@dataclass
class ScoreReport:
    """What :func:`score` returns: the sample (``data``, ``data_hash``, ``task``, ``n``, ``classes``, ``skipped``
    items), the scorers computed (``scores``), one :class:`ModelScore` per model (``models``), the
    :class:`Plan` said before extracting (``plan``: cached or not, the time estimate and its basis, data-fit
    warnings) and the total ``seconds``."""

    data: str
    data_hash: str
    task: str
    n: int
    classes: list[str]
    skipped: int
    scores: list[str]
    models: list[ModelScore] = field(default_factory=list)
    plan: list[Plan] = field(default_factory=list)
    seconds: float = 0.0


def score(
    data: str | Path,
    models: Sequence[str],
    *,
    scores: Sequence[str] | None = None,
    max_samples: int = 300,
    text_column: str = "text",
    label_column: str = "label",
    device: str = "auto",
    db: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    on_plan: Callable[[list[Plan]], None] | None = None,
    fetch: bool | Any = True,
    max_download: str | int | None = None,
    allow_pickle: bool = False,
    executor: str | None = None,
) -> ScoreReport:
    """Transferability of each model's features for the labelled sample at ``data``.

    Weights not on this machine are fetched from the Hub first (``fetch=False``: only what is on disk),
    within ``max_download`` for the whole call (default ``ZOO_MAX_DOWNLOAD`` or 10 GB). ``executor="ray"``
    runs one Ray task per model (:mod:`zoo.executor`; default ``ZOO_EXECUTOR`` or ``"local"``)."""
    from zoo import scores as scorers
    from zoo.data import load_sample
    from zoo.executor import resolve_executor
    from zoo.fetching import FetchPolicy
    from zoo.registry import Registry

    t0 = time.perf_counter()
    executor = resolve_executor(executor)  # before any data is read: a missing extra is said at once
    names = list(scores or DEFAULT_SCORES)
    for n in names:
        scorers.get_score(n)  # an unknown scorer fails before any data is read
    sample = load_sample(data, text_column=text_column, label_column=label_column,
                         max_samples_per_class=max_samples)
    check_scorable(sample, names)
    with Registry(db=db) as reg:
        records = reg.get_many(models)
    policy = FetchPolicy.make(fetch, max_download=max_download, allow_pickle=allow_pickle,
                              progress=progress is not None)
    report = score_sample(sample, records, names, device=device, progress=progress, on_plan=on_plan, fetch=policy,
                          executor=executor)
    report.data = str(data)
    report.seconds = time.perf_counter() - t0
    return report


def check_scorable(sample: Any, names: Sequence[str]) -> None:
    """Refuse data the scorers cannot use, saying what to do instead."""
    if sample.labels is None or sample.task == "unlabelled":
        raise UsageError(f"{sample.source} has no labels: transferability scores need labelled samples "
                         "(an image folder root/<class>/..., or a label column)."
                         + "".join(f" {n}" for n in sample.notes if "--label-column" in n))
    if sample.task == "multilabel":
        raise UsageError("Multi-label data is not supported by the scorers yet; score one label at a time.")
    if sample.task == "regression":
        unsupported = [n for n in names if n != "logme"]
        if unsupported:
            raise UsageError(f"Regression targets: only logme applies; drop {', '.join(unsupported)} "
                             "(--scores logme).")


def score_sample(
    sample: Any,
    records: Sequence[Any],
    names: Sequence[str],
    *,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
    on_plan: Callable[[list[Plan]], None] | None = None,
    progress_bars: bool = False,
    fetch: Any = None,
    executor: str | None = None,
) -> ScoreReport:
    """Score already-loaded ``records`` on an already-loaded, checked ``sample`` (the recommender's entry).

    ``fetch`` is a :class:`zoo.fetching.FetchPolicy` (default: the command's current one). One model that
    cannot be fetched, loaded or run is reported in its ``error`` and the others go on. ``executor="ray"``:
    one Ray task per model; their features come back and fill this machine's cache."""
    from zoo import scores as scorers
    from zoo.executor import resolve_executor
    from zoo.features import extract
    from zoo.fetching import FetchPolicy, current_policy, using

    t0 = time.perf_counter()
    fns = {n: scorers.get_score(n) for n in names}
    needs_src = any(getattr(fn, "requires_source_probs", False) for fn in fns.values())
    report = ScoreReport(data=sample.source, data_hash=sample.content_hash, task=sample.task, n=len(sample),
                         classes=list(sample.classes), skipped=len(sample.skipped), scores=list(names))
    policy = fetch if isinstance(fetch, FetchPolicy) else current_policy()
    with using(policy):
        report.plan = make_plan(records, sample, policy, device=device)
        if on_plan:
            on_plan(report.plan)
        planned = {p.id: p for p in report.plan}
        if resolve_executor(executor) == "ray":
            _score_on_ray(records, sample, report, names, planned, policy, device=device, needs_src=needs_src,
                          show=progress is not None or progress_bars)
            records = []
        for rec in records:
            _score_one(rec, sample, report, fns, planned[rec.id], policy, device=device, progress=progress,
                       progress_bars=progress_bars, needs_src=needs_src, extract=extract)
    report.seconds = time.perf_counter() - t0
    return report


def _score_on_ray(records: Sequence[Any], sample: Any, report: ScoreReport, names: Sequence[str],
                  planned: dict[str, Plan], policy: Any, *, device: str, needs_src: bool, show: bool) -> None:
    """One Ray task per model that the plan did not rule out; the driver keeps what they return."""
    import functools

    from zoo.executor import keep_returned, run_candidates

    todo = [r for r in records if not planned[r.id].error]
    outcomes = run_candidates(todo, sample, functools.partial(measure_on_worker, list(names), device, needs_src),
                              label="scoring", device=device, policy=policy, show=show)
    for rec in records:
        if planned[rec.id].error:
            report.models.append(failed_score(rec, sample, planned[rec.id].error or ""))
            continue
        out = outcomes[rec.id]
        if out.error:
            report.models.append(failed_score(rec, sample, out.error))
            continue
        model_score, feats, got = out.value
        keep_returned(policy, rec, sample, feats, got)
        report.models.append(model_score)


def _score_one(rec: Any, sample: Any, report: ScoreReport, fns: dict[str, Any], plan: Plan, policy: Any, *,
               device: str, progress: Callable[[str], None] | None, progress_bars: bool, needs_src: bool,
               extract: Callable[..., Any]) -> None:
    """Fetch, extract and score one model; any failure becomes its ``error`` (the run goes on)."""
    if plan.error:
        report.models.append(failed_score(rec, sample, plan.error))
        return
    if progress:
        progress(rec.id)
    report.models.append(measure(rec, sample, fns, policy, device=device, progress_bars=progress_bars,
                                 needs_src=needs_src, extract=extract)[0])


def failed_score(rec: Any, sample: Any, why: str) -> ModelScore:
    return ModelScore(rec.id, {}, len(sample), rec.feature_dim or 0, 0.0, {}, False, "-", error=why)


def failure_reason(rec: Any, e: BaseException, doing: str = "scoring") -> str:
    """What one candidate's failure says: zoo's own message, or the library's error and how to see more
    (``doing``: what failed, for the debug log; the probe says "probing")."""
    if isinstance(e, ZooError):
        return str(e)
    import logging

    logging.getLogger("zoo").debug("%s %s failed", doing, rec.id, exc_info=e)
    return (f"{rec.id} could not be loaded or run ({type(e).__name__}: {str(e)[:300]}); "
            "rerun with ZOO_DEBUG=1 for the traceback, or leave it out.")


def measure(rec: Any, sample: Any, fns: dict[str, Any], policy: Any, *, device: str, progress_bars: bool,
            needs_src: bool, extract: Callable[..., Any]) -> tuple[ModelScore, Any, Any]:
    """Fetch, extract and score one model here (or in a Ray worker): its :class:`ModelScore` (``error`` set
    when it failed), its :class:`zoo.features.Features` and its :class:`zoo.fetching.FetchResult` (None when
    it failed, or nothing was fetched)."""
    try:
        got = policy.ensure(rec) if sample.modality != "array" else None
        feats = extract(rec, sample, device=device, progress=progress_bars, with_source_probs=needs_src)
    except Exception as e:  # noqa: BLE001 - a library's own error in one candidate never sinks the run
        return failed_score(rec, sample, failure_reason(rec, e)), None, None
    values: dict[str, float] = {}
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    noinf = _not_informative(fns, feats.features.shape, sample.labels)
    for name, fn in fns.items():
        if name in noinf:
            continue
        kw: dict[str, Any] = {}
        if getattr(fn, "requires_source_probs", False):
            if feats.source_probs is None:  # no source head (a text encoder...): LEEP/NCE do not apply
                skipped[name] = feats.source_note or f"{rec.id} has no source classification head"
                continue
            kw["source_probs"] = feats.source_probs
        t = time.perf_counter()
        values[name] = float(fn(feats.features, sample.labels, **kw))
        timings[name] = time.perf_counter() - t
    return ModelScore(rec.id, values, feats.features.shape[0], feats.features.shape[1], feats.seconds, timings,
                      feats.cached, feats.device, skipped=skipped, not_informative=noinf,
                      weights_commit=got.commit if got is not None else None,
                      download_bytes=got.bytes if got is not None else 0,
                      download_seconds=got.seconds if got is not None and got.bytes else 0.0,
                      layers=feats.layers), feats, got


def _not_informative(fns: dict[str, Any], shape: tuple[int, ...], labels: Any) -> dict[str, str]:
    """Scorer -> why it is not informative for features of ``shape`` on these labels (zoo.scores.regime)."""
    import numpy as np

    from zoo.scores.regime import not_informative

    y = np.asarray(labels)
    if y.dtype.kind == "f":  # regression targets: the regimes are about classes
        return {}
    counts = np.unique(y, return_counts=True)[1]
    return {name: why for name in fns if (why := not_informative(name, int(shape[0]), int(shape[1]), counts))}


def measure_on_worker(names: Sequence[str], device: str, needs_src: bool, rec: Any, sample: Any,
                      policy: Any) -> tuple[ModelScore, Any, Any]:
    """:func:`measure` in a Ray task (zoo.executor): the node's feature cache is read, never written (the
    driver stores the returned features)."""
    import functools

    from zoo import scores as scorers
    from zoo.features import extract

    fns = {n: scorers.get_score(n) for n in names}
    return measure(rec, sample, fns, policy, device=device, progress_bars=False, needs_src=needs_src,
                   extract=functools.partial(extract, cache="read"))


# ---------------------------------------------------------------------------------------------
# The plan: estimates and "this data does not fit this model" warnings, before extracting.

def make_plan(records: Sequence[Any], sample: Any, fetch: Any = None, device: str = "auto") -> list[Plan]:
    """Per model: cached or not, the estimated time and its basis (:mod:`zoo.estimates`: this machine's
    measurements), what must be downloaded first, and data-fit warnings.

    With a :class:`zoo.fetching.FetchPolicy` that may fetch, the Hub is asked what each absent model's
    loader needs (sizes from its file listing); a model the Hub or zoo refuses gets its ``error`` now."""
    from zoo.estimates import Estimator, resolve_device
    from zoo.features import cache_info, feature_key

    entries = cache_info()  # the sidecars only: enough to know what is cached
    cached_keys = {e["key"] for e in entries if e.get("n") == len(sample)}
    threads = None
    if resolve_device(device) == "cpu":
        from zoo.scores._base import cpu_threads

        threads = cpu_threads()
    estimator = Estimator(device, threads)
    stats = _sample_stats(sample)
    plans = []
    for rec in records:
        try:
            cached = feature_key(rec, sample) in cached_keys
        except ZooError:
            cached = False
        plan = Plan(rec.id, cached, 0.0, fit_warnings(rec, sample, stats),
                    estimate_basis="cached", estimate_detail="features cached for this data: read from disk")
        if sample.modality == "array":  # precomputed features: nothing to extract (was shown as an estimate to make)
            plan.cached, plan.estimate_detail = True, "precomputed features (.npz): nothing to extract"
        if not cached and sample.modality != "array":
            est = estimator.estimate(rec, sample)
            plan.estimate_seconds, plan.estimate_basis, plan.estimate_detail = est.seconds, est.basis, est.detail
            plan.estimate_imports = est.imports
            plan.estimate_import_seconds = est.import_seconds
        if fetch is not None and sample.modality != "array":
            _plan_download(plan, rec, fetch)
        plans.append(plan)
    return plans


def _plan_download(plan: Plan, rec: Any, policy: Any) -> None:
    """Fill the download part of a model's plan (asks the Hub only for models absent here)."""
    from zoo.fetching import FetchError, download_rate
    from zoo.loadable import loadable_reason
    from zoo.weights import hub_repo, local_snapshot

    if hub_repo(rec.weights) is None or local_snapshot(rec.weights) is not None:
        return
    why = loadable_reason(rec)
    if why is not None:
        plan.error = why
        return
    if not policy.active or not policy.reachable():
        return  # said when the model's turn comes: its weights are absent, and why they cannot be fetched
    try:
        fplan = policy.plan(rec)
    except FetchError as e:
        plan.error = str(e)
        return
    if fplan.refused:
        plan.error = fplan.refused
        return
    plan.download_bytes = fplan.download_bytes
    plan.download_estimate_seconds = fplan.download_bytes / download_rate()[0]


def _sample_stats(sample: Any, probe: int = 32) -> dict[str, Any]:
    """Cheap facts about the data: image sizes and modes from file headers, text lengths in words."""
    out: dict[str, Any] = {}
    if sample.modality == "image" and sample.items:
        from PIL import Image

        sizes, gray = [], 0
        for path in sample.items[:probe]:
            try:
                with Image.open(path) as im:
                    sizes.append(max(im.size))
                    gray += im.mode in ("L", "LA", "1", "I", "I;16", "F")
            except OSError:
                continue
        if sizes:
            out["median_side"] = float(sorted(sizes)[len(sizes) // 2])
            out["gray_share"] = gray / len(sizes)
    elif sample.modality == "text" and sample.items:
        words = sorted(len(str(t).split()) for t in sample.items)
        out["p90_words"] = words[int(0.9 * (len(words) - 1))]
    return out


def fit_warnings(record: Any, sample: Any, stats: dict[str, Any]) -> list[str]:
    warnings = []
    if sample.modality == "image" and record.input_size and "median_side" in stats:
        side, want = stats["median_side"], max(record.input_size[-2:])
        if side > 4 * want or side < want / 4:
            warnings.append(f"images are about {side:.0f} px; {record.id} expects {want} px, so they are resized "
                            f"by a factor of {want / side:.2g}")
        channels = record.input_size[0]
        if channels == 3 and stats.get("gray_share", 0) > 0.5:
            warnings.append("grayscale images into an RGB model: the channel is replicated three times")
        if channels == 1 and stats.get("gray_share", 1) < 0.5:
            warnings.append("colour images into a grayscale model: they are converted to grayscale")
    if sample.modality == "text" and record.max_length and "p90_words" in stats:
        tokens = stats["p90_words"] * 1.3  # English words -> word pieces, roughly
        if tokens > record.max_length:
            warnings.append(f"10% of texts are longer than ~{stats['p90_words']} words; {record.id} reads at most "
                            f"{record.max_length} tokens, the rest is cut")
    if sample.modality == "text" and record.modality == "text" and sample.items:
        from zoo.language import language_warning  # memoised per sample: one detection for all models

        w = language_warning(record, sample.items)
        if w:
            warnings.append(w)
    return warnings
