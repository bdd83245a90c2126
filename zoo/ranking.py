"""``zoo.recommend``: the description ranking (:mod:`zoo.recommender`, which knows nothing of data) composed
with the data half (:mod:`zoo.data_rank`, which consumes its output): score the candidates on the user's
sample, fuse, say how sure the ranking is (:mod:`zoo.confidence`), probe the tied leaders, plan the pick.

The dependency is one-way: this module imports both, ``zoo.data_rank`` imports ``zoo.recommender``, and
``zoo.recommender`` imports neither (tests/test_layout.py checks it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import UsageError
from zoo.recommender import Recommendation, check_task, rank_description

__all__ = ["recommend"]


def recommend(
    task: str,
    data: str | Path | None = None,
    *,
    candidates: str | Iterable[str] | None = None,
    modality: str | None = None,
    license_classes: Sequence[str] | None = None,
    max_params: int | None = None,
    max_latency_ms: float | None = None,
    max_input_size: int | None = None,
    available: bool = False,
    allow_unknown: bool = False,
    group: bool = True,
    top_k: int = 10,
    db: str | Path | None = None,
    embed_model: str | None = None,
    weights: dict[str, float] | None = None,
    scores: Sequence[str] | None = None,
    max_samples: int = 300,
    score_top: int = 10,
    text_column: str = "text",
    label_column: str = "label",
    device: str = "auto",
    data_weight: float | None = None,
    size_weight: float | None = None,
    fused_scores: Sequence[str] | None = None,
    probe_top: int = 0,
    train_size: int | None = None,
    progress: bool = False,
    on_plan: Any = None,
    fetch: bool | Any = True,
    max_download: str | int | None = None,
    allow_pickle: bool = False,
    executor: str | None = None,
    probe_budget: float | None = None,
) -> Recommendation:
    """Rank registry models for ``task``; see :mod:`zoo.recommender` for the description components.

    With ``data``, candidates whose weights are not on this machine are fetched from the Hub before they
    are scored (``fetch=False``: only those on disk), within ``max_download`` for the whole call (default
    ``ZOO_MAX_DOWNLOAD`` or 10 GB); one that cannot be fetched is listed in ``not_scored`` with the reason.
    ``executor="ray"`` scores (and probes) each candidate in a Ray task (:mod:`zoo.executor`; default
    ``ZOO_EXECUTOR`` or ``"local"``). With labelled classification data the ranking's confidence is measured
    (``Recommendation.confidence``); when the leaders are tied and ``probe_top`` is 0, the tied leaders are
    linear-probed when the estimate fits ``probe_budget`` seconds (default
    :data:`zoo.data_rank.PROBE_BUDGET_SECONDS`; 0: never), and the measured accuracy orders them."""
    import contextlib

    t0 = time.perf_counter()
    check_task(task)
    if probe_top and data is None:
        raise UsageError("--probe-top needs --data: the probe trains on your labelled sample.")
    if probe_top < 0:
        raise UsageError("probe_top must be 0 (no probe) or more.")
    if probe_budget is not None and probe_budget < 0:
        raise UsageError("probe_budget must be 0 (never probe the tied leaders) or more seconds.")
    if data is not None:
        from zoo.executor import resolve_executor

        executor = resolve_executor(executor)  # a missing extra is said before any data is read
    sample = None
    modality_source = "given"  # a fixed modality: passed by the caller, or set below by the data
    if data is not None:
        from zoo.data_rank import load_checked_sample

        if modality is None:
            modality_source = "data"
        sample, modality = load_checked_sample(
            data, scores, modality=modality, max_samples=max_samples, text_column=text_column,
            label_column=label_column)
    desc = rank_description(
        task, candidates=candidates, modality=modality, modality_source=modality_source,
        license_classes=license_classes, max_params=max_params, max_latency_ms=max_latency_ms,
        max_input_size=max_input_size, available=available, allow_unknown=allow_unknown, top_k=top_k, db=db,
        embed_model=embed_model, weights=weights)
    if sample is None:
        return desc.result(group=group, top_k=top_k, t0=t0)

    from zoo import data_rank
    from zoo.fetching import FetchPolicy, using

    with contextlib.ExitStack() as stack:
        policy = FetchPolicy.make(fetch, max_download=max_download, allow_pickle=allow_pickle, progress=progress)
        stack.enter_context(using(policy))  # scoring, probing and the plan fetch under one budget
        scored, extra = data_rank.rank_with_data(
            desc.ordered(), sample, explicit=desc.explicit, group=group, scores=scores, score_top=score_top,
            device=device, data_weight=data_weight, size_weight=size_weight, fused_scores=fused_scores,
            progress=progress, on_plan=on_plan, train_size=train_size, executor=executor)
        result = desc.result(group=group, top_k=top_k, t0=t0, scored=scored, extra=extra)
        result.confidence = data_rank.ranking_confidence(result, scored, sample, train_size=train_size)
        probe_kw = {"max_samples": max_samples, "text_column": text_column, "label_column": label_column,
                    "device": device, "db": db, "executor": executor}
        if probe_top:
            data_rank.probe_top(result, probe_top, **probe_kw)
        elif result.confidence is not None and result.confidence.tied:
            data_rank.probe_tied_leaders(result, budget=probe_budget, **probe_kw)
        result.seconds = time.perf_counter() - t0
        if result.candidates and sample.task in ("classification", "multilabel"):
            from zoo.errors import ZooError
            from zoo.plan import plan_for_sample

            best = result.candidates[0]
            try:
                best.plan = plan_for_sample(best.record, sample, candidates=result.candidates, probe=best.probe,
                                            device=device)
            except ZooError as e:  # a plan that cannot be made must not cost the ranking
                best.data_warnings.append(f"no transfer plan: {e}")
            result.seconds = time.perf_counter() - t0
    return result
