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
    id: str
    scores: dict[str, float]
    n: int
    feature_dim: int
    extract_seconds: float
    score_seconds: dict[str, float]
    cached: bool
    device: str
    error: str | None = None  # why this model could not be scored (weights absent, modality mismatch)
    skipped: dict[str, str] = field(default_factory=dict)  # scorer -> why it does not apply (LEEP without a head)


@dataclass
class Plan:
    """What ``score`` is about to do for one model, said before any extraction starts."""

    id: str
    cached: bool
    estimate_seconds: float  # rough: from this model's last measured speed, else from its size
    warnings: list[str] = field(default_factory=list)


@dataclass
class ScoreReport:
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
) -> ScoreReport:
    """Transferability of each model's features for the labelled sample at ``data``."""
    from zoo import scores as scorers
    from zoo.data import load_sample
    from zoo.registry import Registry

    t0 = time.perf_counter()
    names = list(scores or DEFAULT_SCORES)
    for n in names:
        scorers.get_score(n)  # an unknown scorer fails before any data is read
    sample = load_sample(data, text_column=text_column, label_column=label_column,
                         max_samples_per_class=max_samples)
    check_scorable(sample, names)
    with Registry(db=db) as reg:
        records = reg.get_many(models)
    report = score_sample(sample, records, names, device=device, progress=progress, on_plan=on_plan)
    report.data = str(data)
    report.seconds = time.perf_counter() - t0
    return report


def check_scorable(sample: Any, names: Sequence[str]) -> None:
    """Refuse data the scorers cannot use, saying what to do instead."""
    if sample.labels is None or sample.task == "unlabelled":
        raise UsageError(f"{sample.source} has no labels: transferability scores need labelled samples "
                         "(an image folder root/<class>/..., or a label column).")
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
) -> ScoreReport:
    """Score already-loaded ``records`` on an already-loaded, checked ``sample`` (the recommender's entry)."""
    from zoo import scores as scorers
    from zoo.features import extract

    t0 = time.perf_counter()
    fns = {n: scorers.get_score(n) for n in names}
    needs_src = any(getattr(fn, "requires_source_probs", False) for fn in fns.values())
    report = ScoreReport(data=sample.source, data_hash=sample.content_hash, task=sample.task, n=len(sample),
                         classes=list(sample.classes), skipped=len(sample.skipped), scores=list(names))
    report.plan = make_plan(records, sample)
    if on_plan:
        on_plan(report.plan)
    for rec in records:
        if progress:
            progress(rec.id)
        try:
            feats = extract(rec, sample, device=device, progress=progress_bars, with_source_probs=needs_src)
        except ZooError as e:
            report.models.append(ModelScore(rec.id, {}, len(sample), rec.feature_dim or 0, 0.0, {}, False, "-",
                                            error=str(e)))
            continue
        values: dict[str, float] = {}
        timings: dict[str, float] = {}
        skipped: dict[str, str] = {}
        for name, fn in fns.items():
            kw: dict[str, Any] = {}
            if getattr(fn, "requires_source_probs", False):
                if feats.source_probs is None:  # no source head (a text encoder...): LEEP/NCE do not apply
                    skipped[name] = feats.source_note or f"{rec.id} has no source classification head"
                    continue
                kw["source_probs"] = feats.source_probs
            t = time.perf_counter()
            values[name] = float(fn(feats.features, sample.labels, **kw))
            timings[name] = time.perf_counter() - t
        report.models.append(ModelScore(rec.id, values, feats.features.shape[0], feats.features.shape[1],
                                        feats.seconds, timings, feats.cached, feats.device, skipped=skipped))
    report.seconds = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------------------------------------
# The plan: estimates and "this data does not fit this model" warnings, before extracting.

_FALLBACK_PARAM_RATE = 5e8  # samples/s ~ this / parameters on 2 CPU cores (ResNet-50: ~20 images/s)


def make_plan(records: Sequence[Any], sample: Any) -> list[Plan]:
    from zoo.features import cache_info, feature_key

    entries = cache_info()  # the sidecars only: enough to know what is cached and how fast it was made
    cached_keys = {e["key"] for e in entries if e.get("n") == len(sample)}
    speeds: dict[str, float] = {}
    for entry in entries:  # the last measured speed of each model
        secs = entry.get("seconds") or 0
        if secs > 0 and entry.get("n"):
            speeds[entry["model_id"]] = entry["n"] / secs
    stats = _sample_stats(sample)
    plans = []
    for rec in records:
        try:
            cached = feature_key(rec, sample) in cached_keys
        except ZooError:
            cached = False
        rate = speeds.get(rec.id) or (_FALLBACK_PARAM_RATE / rec.params if rec.params else 20.0)
        plans.append(Plan(rec.id, cached, 0.0 if cached else len(sample) / rate, fit_warnings(rec, sample, stats)))
    return plans


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
