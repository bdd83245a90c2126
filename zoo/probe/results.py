"""The quick-probe's vocabulary and bookkeeping: its constants and error, the result dataclasses, the
registry store of results (``probe_results``) and the summary of a report (best, ties, practical pick,
agreement with a score). See :mod:`zoo.probe`."""


from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UsageError
from zoo.format import fmt_params
from zoo.probe.solver import _EIG_FLOOR, _MAX_ITER, _TOL

if TYPE_CHECKING:

    from zoo.record import ModelRecord
    from zoo.registry import Registry


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

# Fine-tune recipe (benchmarks/ground_truth.py uses the same optimiser and schedule).
FINETUNE_LR = {"image": 1e-3, "text": 5e-5}
FINETUNE_BATCH = 32
FINETUNE_HEAD_LR_MULT = 10.0
FINETUNE_WEIGHT_DECAY = 0.01


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
    ``weights_commit``, the solver's ``iterations``, a ``note`` and, for a linear probe of a transformer text
    encoder, the layers its features averaged (``feature_layers``, as scored; None: the model's own output)."""

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
    feature_layers: list[int] | None = None  # linear probe: the transformer layers averaged (zoo.backbones.layers)


def features_match(res: ProbeResult, record: ModelRecord, modality: str) -> bool:
    """A stored linear probe measured the features zoo extracts now: a transformer text encoder's layer mean
    (issue 20 item 1) or every other model's own output. A probe stored before the layer mean was adopted
    measured the pooled output of a text encoder, so it is probed again. A fine-tune reads no features."""
    from zoo.backbones.layers import scoring_layers

    if res.method != LINEAR:
        return True
    return bool(res.feature_layers) == (scoring_layers(record, modality) is not None)


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
