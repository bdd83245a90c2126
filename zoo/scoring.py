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
) -> ScoreReport:
    """Transferability of each model's features for the labelled sample at ``data``."""
    from zoo import scores as scorers
    from zoo.data import load_sample
    from zoo.features import extract
    from zoo.registry import Registry

    t0 = time.perf_counter()
    names = list(scores or DEFAULT_SCORES)
    fns = {n: scorers.get_score(n) for n in names}
    sample = load_sample(data, text_column=text_column, label_column=label_column,
                         max_samples_per_class=max_samples)
    if sample.labels is None or sample.task == "unlabelled":
        raise UsageError(f"{data} has no labels: transferability scores need labelled samples "
                         "(an image folder root/<class>/..., or a label column).")
    if sample.task == "multilabel":
        raise UsageError("Multi-label data is not supported by the scorers yet; score one label at a time.")
    if sample.task == "regression":
        unsupported = [n for n in names if n != "logme"]
        if unsupported:
            raise UsageError(f"Regression targets: only logme applies; drop {', '.join(unsupported)} "
                             "(--scores logme).")
    with Registry(db=db) as reg:
        records = reg.get_many(models)
    report = ScoreReport(data=str(data), data_hash=sample.content_hash, task=sample.task, n=len(sample),
                         classes=list(sample.classes), skipped=len(sample.skipped), scores=names)
    for rec in records:
        if progress:
            progress(rec.id)
        try:
            feats = extract(rec, sample, device=device)
        except ZooError as e:
            report.models.append(ModelScore(rec.id, {}, len(sample), rec.feature_dim or 0, 0.0, {}, False, "-",
                                            error=str(e)))
            continue
        values: dict[str, float] = {}
        timings: dict[str, float] = {}
        for name, fn in fns.items():
            t = time.perf_counter()
            values[name] = float(fn(feats.features, sample.labels, **_extra(fn, rec)))
            timings[name] = time.perf_counter() - t
        report.models.append(ModelScore(rec.id, values, feats.features.shape[0], feats.features.shape[1],
                                        feats.seconds, timings, feats.cached, feats.device))
    report.seconds = time.perf_counter() - t0
    return report


def _extra(fn: Any, record: Any) -> dict[str, Any]:
    if getattr(fn, "requires_source_probs", False):
        raise UsageError(f"{fn.score_name} needs the source model's class probabilities, which zoo does not "
                         f"extract yet for {record.id}; use the label-only scorers.")
    return {}
