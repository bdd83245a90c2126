"""The data-aware half of ``recommend(task, data=...)``: pick which candidates to score, score them
on the user's sample (cached features, :mod:`zoo.scoring`) and fuse (:mod:`zoo.fusion`).

Which candidates: with ``candidates=`` every one of them (of the data's modality); otherwise the best
``score_top`` description-and-prior candidates of the whole catalog that zoo can load, one per group of
near-duplicates, fetching from the Hub those whose weights are not on this machine (:mod:`zoo.fetching`;
not when fetching is off, offline or the Hub is unreachable). Stronger candidates that had to be passed
over, and candidates that could not be fetched or loaded, are reported in ``Recommendation.not_scored``
with the reason.
Only scored candidates are ranked: a model nobody measured is not placed above or below one that was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

# The data decides the modality; these sample kinds map onto registry modalities.
_SAMPLE_MODALITY = {"image": "image", "text": "text"}


def load_checked_sample(data: str | Path, scores: Sequence[str] | None, *, modality: str | None, max_samples: int,
                        text_column: str, label_column: str) -> tuple[Any, str | None]:
    """The sample, checked for the scorers, and the task modality it implies."""
    from zoo import scores as scorers
    from zoo.data import load_sample
    from zoo.scoring import DEFAULT_SCORES, check_scorable

    names = list(scores or DEFAULT_SCORES)
    for n in names:
        scorers.get_score(n)  # an unknown scorer fails before any data is read
    sample = load_sample(data, text_column=text_column, label_column=label_column, max_samples_per_class=max_samples)
    if sample.task != "unlabelled":  # unlabelled data ranks by the label-free domain-shift signal instead
        check_scorable(sample, names)
    implied = _SAMPLE_MODALITY.get(sample.modality)
    if modality is not None and implied is not None and modality != implied:
        raise UsageError(f"--modality {modality} but {data} holds {sample.modality} data; drop --modality or "
                         "give data of that modality.")
    return sample, modality or implied


def data_summary(sample: Any) -> dict[str, Any]:
    from zoo.data import describe

    reasons: dict[str, int] = {}
    for _, why in sample.skipped:
        reasons[why] = reasons.get(why, 0) + 1
    return {"source": sample.source, "content_hash": sample.content_hash, "modality": sample.modality,
            "task": sample.task, "n": len(sample), "classes": list(sample.classes),
            "class_counts": sample.class_counts(), "available": dict(sample.available),
            "max_samples_per_class": sample.max_samples_per_class, "skipped": len(sample.skipped),
            "skipped_reasons": reasons, "skipped_examples": [list(s) for s in sample.skipped[:5]],
            "description": describe(sample)}


def at_train_size(record: Any, train_size: int | None) -> Any:
    """The record with its image input size capped at ``train_size`` (the features' cache key follows)."""
    import dataclasses

    if not train_size or record.modality != "image" or not record.input_size:
        return record
    c, h, w = (int(v) for v in record.input_size)
    if max(h, w) <= train_size:
        return record
    return dataclasses.replace(record, input_size=[c, min(h, train_size), min(w, train_size)])


# Without a shortlist, candidates that cannot be fetched (404, gated, refused, over budget) are skipped and the
# next ones fill their places; this bounds how many the Hub is asked about before zoo settles for fewer, and
# how many of the passed-over candidates are reported.
MIN_HUB_LOOKUPS = 50
HUB_LOOKUPS_PER_PICK = 10


def select(scored: Sequence[Any], *, explicit: bool, group: bool, score_top: int) -> tuple[list[Any], dict[str, str]]:
    """Candidates to score and the stronger ones passed over (id -> why).

    Without a shortlist: the best ``score_top`` description-ranked candidates, one per group of
    near-duplicates, that zoo can load and whose weights are here or can be fetched now under the
    command's :class:`zoo.fetching.FetchPolicy` (the Hub is asked about each: files, size, refusals,
    and the sizes add up within ``--max-download``). The stronger ones passed over are reported with
    the reason, and the next candidates take their places."""
    from zoo.fetching import FetchError, current_policy, fmt_bytes
    from zoo.loadable import loadable_reason
    from zoo.recommender import group_key
    from zoo.weights import hub_repo, is_available

    if explicit:
        return list(scored), {}
    policy = current_policy()
    chosen: list[Any] = []
    passed: dict[str, str] = {}
    groups: set[str] = set()
    lookups, planned_bytes = 0, 0
    max_lookups = max(MIN_HUB_LOOKUPS, HUB_LOOKUPS_PER_PICK * score_top)
    for cand in scored:
        key = group_key(cand.record) if group else cand.id
        if key in groups:
            continue
        rec = cand.record
        why = loadable_reason(rec)
        if why is None and not is_available(rec.weights):
            if hub_repo(rec.weights) is None:
                why = f"weights not on this machine ({rec.weights})"
            elif not (policy.active and policy.reachable()):
                why = f"weights not on this machine ({rec.weights}), and {policy.why_not(rec)}"
            elif lookups >= max_lookups:
                why = (f"weights not on this machine; not looked up on the Hub ({max_lookups} candidates above it "
                       "were); `zoo fetch` it, or name it in --candidates")
            else:
                lookups += 1
                try:
                    fplan = policy.plan(rec)
                except FetchError as e:
                    why = str(e)
                else:
                    left = policy.left
                    if fplan.refused:
                        why = fplan.refused
                    elif left is not None and planned_bytes + fplan.download_bytes > left:
                        why = (f"fetching it would download {fmt_bytes(fplan.download_bytes)}, past this command's "
                               f"--max-download ({fmt_bytes(policy.max_bytes or 0)}) with the candidates above it")
                        policy.discard(rec.id)
                    else:
                        planned_bytes += fplan.download_bytes
        if why is not None:
            if len(passed) < max_lookups:  # offline, the whole catalog above the last pick would be listed
                passed[cand.id] = why
            continue
        groups.add(key)
        chosen.append(cand)
        if len(chosen) >= score_top:
            break
    return chosen, passed


def rank_with_data(
    scored: Sequence[Any],
    sample: Any,
    *,
    explicit: bool,
    group: bool,
    scores: Sequence[str] | None,
    score_top: int,
    device: str,
    data_weight: float | None,
    size_weight: float | None = None,
    fused_scores: Sequence[str] | None,
    progress: bool,
    on_plan: Callable[[list[Any]], None] | None,
    train_size: int | None = None,
    executor: str | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Re-rank the description-ranked ``scored`` candidates with data scores; returns the candidates and
    the extra ``Recommendation`` fields. ``train_size`` caps image models' input size for the scoring:
    features at the resolution the user will fine-tune at, not the model's native one."""
    from zoo import fusion
    from zoo.model_size import comparable_size
    from zoo.scoring import DEFAULT_SCORES, score_sample

    if score_top < 1:
        raise UsageError("score_top must be at least 1.")
    names = list(scores or DEFAULT_SCORES)
    chosen, not_scored = select(scored, explicit=explicit, group=group, score_top=score_top)
    if sample.task == "unlabelled":
        return _rank_by_shift(chosen, not_scored, sample, device=device, progress=progress)
    # LEEP/NCE join the fusion (fusion.FUSE_SOURCE_HEAD_SCORES) only where every candidate may have a source head
    heads = _source_head_scores(chosen) if fused_scores is None else []
    names += [h for h in heads if h not in names]
    report = score_sample(sample, [at_train_size(c.record, train_size) for c in chosen], names, device=device,
                          on_plan=on_plan, progress_bars=progress, executor=executor)
    by_id = {m.id: m for m in report.models}
    measured = []
    for cand in chosen:
        m = by_id[cand.id]
        if m.error:
            not_scored[cand.id] = m.error
            continue
        cand.data_scores = dict(m.scores)
        cand.data_seconds = m.extract_seconds + sum(m.score_seconds.values())
        cand.data_cached = m.cached
        cand.weights_commit = m.weights_commit
        cand.download_bytes, cand.download_seconds = m.download_bytes, m.download_seconds
        cand.extract_seconds = m.extract_seconds
        cand.data_not_informative = {**m.skipped, **m.not_informative}
        cand.feature_layers = m.layers  # Candidate.load() hands over the same features
        measured.append(cand)
    for plan in report.plan:
        if plan.warnings and plan.id in {c.id for c in measured}:
            next(c for c in measured if c.id == plan.id).data_warnings = list(plan.warnings)
    fused_names = ([n for n in (fused_scores or fusion.FUSED_SCORES) if n in names] or names) + \
        [h for h in heads if h not in (fused_scores or fusion.FUSED_SCORES)]
    weight = fusion.DATA_WEIGHT if data_weight is None else float(data_weight)
    data_comp = fusion.data_component({c.id: c.data_scores for c in measured}, fused_names)
    sizes = {c.id: comparable_size(c.record, fusion.SIZE_BASIS) for c in measured}
    size = fusion.size_component({m: n for m, (n, _) in sizes.items()})
    size_w = fusion.SIZE_WEIGHT if size_weight is None else float(size_weight)
    final = fusion.fuse_scores({c.id: c.score for c in measured}, data_comp, weight, size, size_w)
    for cand in measured:
        cand.components = {**cand.components, "description": cand.score, "data": data_comp[cand.id],
                           "size_prior": size[cand.id]}
        cand.score = final[cand.id]
    measured.sort(key=lambda c: (-c.score, c.id))
    keep = 1 - size_w
    per_model = {c.id: c.data_scores for c in measured}
    used = fusion.fusable(per_model, fused_names)
    # a fused scorer that some candidate lacks is not fused at all (zoo.fusion.fusable): say for which and why
    not_fused = {s: next((f"{c.id}: {c.data_not_informative[s]}" for c in measured if s in c.data_not_informative),
                         "no value for some candidate") for s in fused_names if s not in used and measured}
    extra = {"data": data_summary(sample), "scores": names, "not_scored": not_scored,
             "fusion": {"description": keep * (1 - weight), "data": keep * weight, "size_prior": size_w,
                        "fused_scores": used if measured else fused_names, "not_fused": not_fused,
                        "size_basis": fusion.SIZE_BASIS, "sizes": {m: list(v) for m, v in sizes.items()},
                        "train_size": train_size}}
    return measured, extra


def _source_head_scores(chosen: Sequence[Any]) -> list[str]:
    """``fusion.SOURCE_HEAD_SCORES`` when they are to be fused and no candidate is known to lack a source head
    (a timm checkpoint is known only once loaded: the fusion then drops them if one turns out headless)."""
    from zoo import fusion
    from zoo.source_heads import source_head_status

    if not fusion.FUSE_SOURCE_HEAD_SCORES or not chosen:
        return []
    if any(source_head_status(c.record).has_head is False for c in chosen):
        return []
    return list(fusion.SOURCE_HEAD_SCORES)


# When the leaders are tied and no --probe-top was asked, the tied leaders are linear-probed if the estimate
# fits this many seconds (--probe-budget): a minute of probing to settle what the estimates cannot.
PROBE_BUDGET_SECONDS = 60.0


def ranking_confidence(rec: Any, measured: Sequence[Any], sample: Any, *, train_size: int | None) -> Any:
    """:func:`zoo.confidence.bootstrap_ranking` over the measured candidates, from their cached features (read
    back from the feature cache; nothing is extracted again). None when it does not apply (no labels, fewer
    than two candidates, regression) or the features are no longer cached."""
    from zoo.confidence import bootstrap_ranking
    from zoo.features import cached

    if sample.task != "classification" or len(measured) < 2 or rec.fusion is None:
        return None
    feats, probs = {}, {}
    for c in measured:
        got = cached(at_train_size(c.record, train_size), sample)
        if got is None:
            return None
        feats[c.id], probs[c.id] = got
    fusion_info = rec.fusion
    keep = 1 - fusion_info["size_prior"]
    weight = fusion_info["data"] / keep if keep > 0 else 0.0
    return bootstrap_ranking(
        feats, sample.labels, description={c.id: c.components["description"] for c in measured},
        size={c.id: c.components["size_prior"] for c in measured}, scorers=fusion_info["fused_scores"],
        source_probs=probs if all(p is not None for p in probs.values()) else None, weight=weight,
        size_weight=fusion_info["size_prior"], full_scores={c.id: c.data_scores for c in measured})


def probe_tied_leaders(rec: Any, *, budget: float | None, max_samples: int, text_column: str, label_column: str,
                       device: str, db: str | Path | None, executor: str | None = None) -> None:
    """The leaders are tied (``rec.confidence.tied``): linear-probe the top pick and the tied candidates (the
    ranking's first places down to the last tied one) when the estimate fits ``budget`` seconds, and let the
    measured accuracy order them (:func:`probe_top`). Either way ``rec.probe_summary["reason"]`` (or, when not
    probed, ``rec.confidence.probe_note``) says what was done and why."""
    from zoo.estimates import probe_seconds

    conf = rec.confidence
    budget = PROBE_BUDGET_SECONDS if budget is None else float(budget)
    ids = [c.id for c in rec.candidates]
    tied = [t for t in conf.tied if t in ids]
    if not tied:
        return
    k = max(ids.index(t) for t in tied) + 1
    n, classes = rec.data["n"], len(rec.data["classes"])
    est = sum(probe_seconds(n, c.record.feature_dim or 768, classes) for c in rec.candidates[:k])
    if budget <= 0 or est > budget:
        conf.probe_note = (f"the tied leaders were not probed: about {est:.0f} s estimated, over --probe-budget "
                           f"{budget:g} s" if budget > 0 else "the tied leaders were not probed (--probe-budget 0)")
        return
    probe_top(rec, k, max_samples=max_samples, text_column=text_column, label_column=label_column, device=device,
              db=db, executor=executor)
    if rec.probe_summary is not None:
        best = rec.candidates[0].id
        conf.probe_note = (f"tied leaders probed ({k} candidates, about {est:.0f} s estimated, within --probe-budget "
                           f"{budget:g} s): the measured probe accuracy decides among them, so {best} is the pick")
        rec.probe_summary["reason"] = conf.probe_note


# Unlabelled data: the weight of the shift signal against the description. Not fitted: the ranking benchmark
# has no label-free ground truth, so this is a deliberately modest prior (the description still leads).
SHIFT_WEIGHT = 0.3


def _rank_by_shift(chosen: list[Any], not_scored: dict[str, str], sample: Any, *, device: str,
                   progress: bool) -> tuple[list[Any], dict[str, Any]]:
    """Without labels, the data says only how far it is from each model's pretraining data (zoo.shift)."""
    from zoo import fusion
    from zoo.errors import ZooError
    from zoo.shift import domain_shift

    measured, closeness = [], {}
    for i, cand in enumerate(chosen, 1):
        if progress:
            import click

            click.echo(f"[{i}/{len(chosen)}] domain shift of {cand.id} …", err=True)
        try:
            res = domain_shift(cand.record, sample, device=device)
        except ZooError as e:
            not_scored[cand.id] = str(e)
            continue
        cand.data_scores = {"shift": res.value} if res.value is not None else {}
        cand.data_seconds, cand.data_cached = res.seconds, res.cached
        if res.value is None:
            cand.data_warnings = [f"no domain-shift measure: {res.reason}"]
        closeness[cand.id] = 0.5 if res.value is None else 1.0 - res.value
        measured.append(cand)
    final = fusion.fuse_scores({c.id: c.score for c in measured}, closeness, SHIFT_WEIGHT)
    for cand in measured:
        cand.components = {**cand.components, "description": cand.score, "data": closeness[cand.id]}
        cand.score = final[cand.id]
    measured.sort(key=lambda c: (-c.score, c.id))
    return measured, {"data": data_summary(sample), "scores": ["shift"], "not_scored": not_scored,
                      "fusion": {"description": 1 - SHIFT_WEIGHT, "data": SHIFT_WEIGHT, "fused_scores": ["shift"],
                                 "note": "unlabelled data: data = 1 - domain shift (zoo.shift); weight not fitted"}}


def probe_top(rec: Any, k: int, *, max_samples: int, text_column: str, label_column: str, device: str,
              db: str | Path | None, progress: Callable[[str], None] | None = None,
              executor: str | None = None) -> None:
    """Linear-probe the top ``k`` scored candidates on the same sample (their features are cached), then
    re-order those ``k`` by probe accuracy; the rest keep their places. Fills ``Candidate.probe`` and
    ``Recommendation.probe_summary``."""
    from zoo.probe import probe

    if rec.data is None:
        raise UsageError("--probe-top needs --data: the probe trains on your labelled sample.")
    top = rec.candidates[:k]
    if not top:
        return
    report = probe(rec.data["source"], [c.id for c in top], max_samples=max_samples, text_column=text_column,
                   label_column=label_column, device=device, db=db, scores={c.id: c.score for c in top},
                   progress=progress, executor=executor)
    results = {r.model_id: r for r in report.results}
    for c in top:
        c.probe = results.get(c.id)
    probed = [c for c in top if c.probe is not None]
    unprobed = [c for c in top if c.probe is None]
    # The probe's own best (its tie-breaks: macro-F1, then the smaller model) leads; the others by accuracy.
    probed.sort(key=lambda c: (c.id != report.best, -c.probe.accuracy, -c.score, c.id))
    rec.candidates[:k] = probed + unprobed
    for i, c in enumerate(rec.candidates, 1):
        c.rank = i
    rec.probe_top = k
    agreement = report.score_agreement
    rec.probe_summary = {
        "best": report.best, "tied_with_best": list(report.tied_with_best), "practical_pick": report.practical_pick,
        "practical_reason": report.practical_reason, "failed": dict(report.failed), "settings": report.settings,
        "agreement_spearman": agreement.spearman if agreement else None,
        "agreement_kendall": agreement.kendall if agreement else None, "seconds": report.seconds,
        "notes": list(report.notes),
    }
