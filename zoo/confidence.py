"""How sure is a data-aware ranking? Resampling the user's sample (NumPy only, no I/O, no extraction).

:func:`bootstrap_ranking` draws stratified half-samples of the sample's rows (half of every class, without
replacement: every class stays present and the scorers stay defined), recomputes the fused scorers on the
*cached* features of every candidate and the fused score of :mod:`zoo.fusion` (the description score and
the size prior do not depend on the rows, so they are held fixed), and reports:

- ``stays_first``: the share of resamples in which the full-sample top pick is still first (a resample
  where k candidates share the first score gives each 1/k);
- ``first_share``: the same share for every candidate;
- ``tied``: the candidates *statistically tied* with the top. The rule: the top's fused-score lead over a
  candidate, recomputed on every resample, has a two-sided 95 % percentile interval that contains 0
  (its 2.5th percentile is <= 0). A candidate first in at least 2.5 % of the resamples is therefore tied;
  identical candidates always are (their lead is 0 on every resample).

Why half-samples and not the textbook bootstrap (n rows drawn with replacement): a bootstrap resample
repeats rows, and the scorers are not made for repeated rows. A leave-one-out kNN finds a row's own copy
as its nearest neighbour (measured on 200 x 100 noise with 5 classes: 0.29 -> 0.56 accuracy), and LogME
and H-score see a matrix of rank ~0.63 n, which moves them towards their n < d regime. A half-sample
without replacement has none of that, and for a mean its variance is exactly that of the full-sample
estimate ((1/m - 1/n) s^2 with m = n/2: McCarthy's half-sampling, 1969), so no rescaling is needed; each
eigendecomposition is on half the rows (~8x cheaper). Every candidate's replicates are centred on its
full-sample fused score (see :func:`bootstrap_ranking`), since scorers computed on fewer rows are biased,
high-dimensional ones most.

Large samples: the eigendecompositions are cubic in the rows, so a resample holds at most :data:`MAX_ROWS`
rows (m-out-of-n subsampling, Politis, Romano & Wolf 1999) and its spread is rescaled to the full sample's
by ``sqrt(m / (n - m))`` (exact for a mean: ``Var = s^2 (1/m - 1/n)``; 1 for half-samples).

The scores are proxies: the fused score is only an estimate of how well a model fine-tunes, and resampling the
rows measures only the sampling noise of that estimate, not how far it is from the truth. ``proxy_sd`` (default
:data:`PROXY_SD`) adds that second error: on every resample each candidate's fused score gets independent
N(0, proxy_sd^2) noise (from a generator of its own, so the half-samples are the same for every ``proxy_sd``)
before the first place and the tie rule are taken. ``proxy_sd`` is on the fused score's [0, 1] scale and is a zoo
constant like the fusion weights, chosen by the rule written in ``benchmarks/bench_ranking.py``
(``PREREGISTERED_PROXY``; ``benchmarks/calibrate_proxy.py`` applies it).

Cost: the scorers run as they are, ``n_boot`` times per candidate. When the estimated work is larger than
:data:`BOOT_BUDGET_FLOPS` fewer resamples are drawn (never fewer than :data:`MIN_BOOT`); ``n_boot`` is the
number drawn and ``n_boot_asked`` what was asked, and :meth:`RankingConfidence.sentence` says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo import fusion
from zoo.errors import UsageError

# The tie rule's interval: two-sided, 95 % (the top's lead is "not shown to be positive" below its 2.5th percentile).
TIE_LEVEL = 0.95
# Resamples are capped at about 2e10 floating-point operations as _cost estimates them (eigendecompositions and Gram
# products; LogME's fixed-point steps, vectorised over classes, take a few ms per candidate and are not counted),
# never below MIN_BOOT: 10 candidates x 500 rows of 50-2,048 dimensions are estimated at 4.6e9 per resample and hit
# the floor, 50 resamples (benchmarks/bench_confidence.py; its seconds, before and after LogME was vectorised, are in
# BENCHMARKS.md "Ranking confidence"). A flop count, not seconds: making the code faster does not raise it.
BOOT_BUDGET_FLOPS = 2e10
MIN_BOOT = 50
# At most this many rows per resample (half of a 500-row sample): beyond it, resamples are m-out-of-n subsamples.
MAX_ROWS = 250
# The fused score's typical error against fine-tuned accuracy (module docstring), added to every resample as
# N(0, PROXY_SD^2). 0: the confidence measures the sampling noise only (PREREGISTERED_PROXY's rule adopted no value).
PROXY_SD = 0.0


@dataclass
class RankingConfidence:
    """What :func:`bootstrap_ranking` found; ``sentence()`` says it in words."""

    top: str  # the full-sample top pick
    stays_first: float  # share of resamples in which ``top`` stays first
    first_share: dict[str, float]  # per candidate: share of resamples in which it is first
    tied: list[str]  # candidates statistically tied with ``top`` (see the module docstring), best first
    n_boot: int  # resamples drawn
    n_boot_asked: int = 0  # resamples asked for (more than ``n_boot`` when the budget capped them)
    lead_interval: dict[str, tuple[float, float]] = field(default_factory=dict)  # top's lead: 2.5-97.5th pct
    scorers: list[str] = field(default_factory=list)  # the scorers recomputed and fused on every resample
    seconds: float = 0.0
    rule: str = ""  # the tie rule, in words
    probe_note: str = ""  # with tied leaders: whether they were probed and what decided (zoo.data_rank)
    proxy_sd: float = 0.0  # the SD of the noise added to every fused score on every resample (0: none)

    @property
    def is_tied(self) -> bool:
        return bool(self.tied)

    def sentence(self) -> str:
        """ "X stays first in 87 % of 200 resamples of your sample; tied with it: A, B." """
        capped = f" ({self.n_boot_asked} asked; capped to bound the time)" if self.n_boot_asked > self.n_boot else ""
        error = ", each with the scores' typical error added" if self.proxy_sd > 0 else ""
        head = (f"{self.top} stays first in {100 * self.stays_first:.0f} % of {self.n_boot} resamples of your "
                f"sample{error}{capped}")
        if self.tied:
            return f"{head}; tied with it: {', '.join(self.tied)}."
        return f"{head}; no candidate is tied with it."


def _strata(labels: np.ndarray) -> list[np.ndarray]:
    _, inv = np.unique(labels, return_inverse=True)
    return [np.flatnonzero(inv.reshape(-1) == k) for k in range(int(inv.max()) + 1)]


def half_sample(strata: Sequence[np.ndarray], rng: np.random.Generator, fraction: float = 0.5) -> np.ndarray:
    """One stratified subsample: ``fraction`` (a half by default) of every class's rows (at least 2, kNN's
    minimum), drawn without replacement, in row order."""
    picks = [rows if len(rows) <= 2 else rng.choice(rows, max(2, int(len(rows) * fraction)), replace=False)
             for rows in strata]
    return np.sort(np.concatenate(picks))


_GRAM = ("logme", "hscore", "shrinkage_hscore", "transrate")  # an eigendecomposition per call


def _cost(m: int, dims: Sequence[int], scorers: Sequence[str]) -> float:
    """Floating-point operations of one half-sample of ``m`` rows (eigendecompositions ~9 k^3 with
    k = min(m, d), Gram products 2 m k d)."""
    gram = sum(s in _GRAM for s in scorers)
    return float(sum(gram * (9 * min(m, d) ** 3 + 2 * m * min(m, d) * d) + 2 * m * m * d for d in dims)) + 1.0


def _check(features: Mapping[str, Any], labels: Any) -> tuple[list[str], np.ndarray, int]:
    ids = list(features)
    if not ids:
        raise UsageError("bootstrap_ranking needs at least one candidate's features.")
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iub":
        raise UsageError("bootstrap_ranking needs integer class labels, one per row (classification only).")
    for m in ids:
        shape = np.shape(features[m])
        if len(shape) != 2 or shape[0] != len(y):
            raise UsageError(f"features of {m} have shape {shape}; expected ({len(y)}, d): one row per label.")
    classes, inv = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise UsageError("bootstrap_ranking needs at least 2 classes.")
    return ids, inv.reshape(-1).astype(np.intp), int(classes.size)


def usable_scorers(features: Mapping[str, Any], labels: np.ndarray, scorers: Sequence[str],
                   source_probs: Mapping[str, Any] | None) -> tuple[list[str], dict[str, str]]:
    """The scorers that can be fused over these candidates, and why each other one cannot: one that needs a
    source head some candidate lacks, or one that is not informative on this sample for some candidate
    (:func:`zoo.scores.regime.not_informative`)."""
    from zoo import scores as registry
    from zoo.scores.regime import not_informative

    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1]
    keep, dropped = [], {}
    for s in scorers:
        fn = registry.get_score(s)
        if getattr(fn, "requires_source_probs", False):
            lacking = [m for m in features if source_probs is None or source_probs.get(m) is None]
            if lacking:
                dropped[s] = f"needs a source head; {', '.join(lacking[:3])}{' …' if len(lacking) > 3 else ''} has none"
                continue
        why = next((r for m in features if (r := not_informative(s, len(y), np.shape(features[m])[1], counts))), None)
        if why:
            dropped[s] = why
            continue
        keep.append(s)
    return keep, dropped


@dataclass
class Replicates:
    """The fused scores of every resample (:func:`resample_fused`), before :func:`summarise` adds any proxy error."""

    ids: list[str]
    top: str  # the full-sample top pick
    fused: np.ndarray  # (resamples, candidates): centred on the full-sample fused scores
    n_boot_asked: int
    scorers: list[str]
    seed: int
    seconds: float


def bootstrap_ranking(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    description: Mapping[str, float],
    size: Mapping[str, float] | None,
    scorers: Sequence[str] = fusion.FUSED_SCORES,
    n_boot: int = 200,
    seed: int = 0,
    source_probs: Mapping[str, np.ndarray] | None = None,
    weight: float = fusion.DATA_WEIGHT,
    size_weight: float = fusion.SIZE_WEIGHT,
    full_scores: Mapping[str, Mapping[str, float]] | None = None,
    max_flops: float = BOOT_BUDGET_FLOPS,
    proxy_sd: float | None = None,
) -> RankingConfidence:
    """How often the fused ranking's top pick stays first when the sample's rows are resampled (module docstring).

    ``features``: ``{candidate: (n, d) features}`` on the same ``labels`` rows (the cached features; nothing is
    extracted). ``description``: the description-and-prior score of each candidate (as :func:`zoo.fusion.fuse_scores`
    takes it); ``size``: :func:`zoo.fusion.size_component` over the same candidates, or None for no size prior.
    ``scorers``: the scorers fused; those that cannot be fused over these candidates (:func:`usable_scorers`) are
    left out, as the product leaves them out. ``full_scores``: the full-sample raw scores when already computed
    (``{candidate: {scorer: value}}``), else they are computed here. ``weight``/``size_weight``: the fusion's.
    ``proxy_sd``: the SD of the proxy error added to every fused score on every resample (None: :data:`PROXY_SD`)."""
    sd = _proxy_sd(proxy_sd)
    reps = resample_fused(features, labels, description=description, size=size, scorers=scorers, n_boot=n_boot,
                          seed=seed, source_probs=source_probs, weight=weight, size_weight=size_weight,
                          full_scores=full_scores, max_flops=max_flops)
    return summarise(reps, sd)


def _proxy_sd(proxy_sd: float | None) -> float:
    sd = PROXY_SD if proxy_sd is None else proxy_sd
    if not (isinstance(sd, (int, float)) and math.isfinite(sd) and sd >= 0):
        raise UsageError(f"proxy_sd must be a finite number >= 0 (on the fused score's [0, 1] scale), got {sd!r}.")
    return float(sd)


def resample_fused(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    description: Mapping[str, float],
    size: Mapping[str, float] | None,
    scorers: Sequence[str] = fusion.FUSED_SCORES,
    n_boot: int = 200,
    seed: int = 0,
    source_probs: Mapping[str, np.ndarray] | None = None,
    weight: float = fusion.DATA_WEIGHT,
    size_weight: float = fusion.SIZE_WEIGHT,
    full_scores: Mapping[str, Mapping[str, float]] | None = None,
    max_flops: float = BOOT_BUDGET_FLOPS,
) -> Replicates:
    """The fused scores of every resample, centred on the full-sample ones (arguments: :func:`bootstrap_ranking`).
    Apart from :func:`bootstrap_ranking`, ``benchmarks/calibrate_proxy.py`` calls it once and :func:`summarise`
    once per proxy SD (the same half-samples for every SD)."""
    from zoo import scores as registry
    from zoo.scores._base import blas_threads

    t0 = time.perf_counter()
    ids, y, n_classes = _check(features, labels)
    if n_boot < 1:
        raise UsageError("n_boot must be at least 1.")
    used, _ = usable_scorers(features, y, scorers, source_probs)
    fns = {s: registry.get_score(s) for s in used}

    def fuse(per_model: Mapping[str, Mapping[str, float]]) -> np.ndarray:
        data = fusion.data_component(per_model, used)
        final = fusion.fuse_scores(description, data, weight, size, size_weight)
        return np.array([final[m] for m in ids])

    needs_probs = {s: getattr(fns[s], "requires_source_probs", False) for s in used}
    probs = {m: np.asarray(source_probs[m]) for m in ids} if source_probs and any(needs_probs.values()) else {}

    def score(s: str, m: str, x: np.ndarray, y_rows: np.ndarray, rows: np.ndarray | None = None) -> float:
        """Scorer ``s`` on candidate ``m``'s features ``x`` (its source probabilities on the same ``rows``)."""
        kw = {"source_probs": probs[m] if rows is None else probs[m][rows]} if needs_probs[s] else {}
        return float(fns[s](x, y_rows, **kw))

    with blas_threads():
        full = {m: {s: float(full_scores[m][s]) if full_scores and s in full_scores.get(m, {}) else
                    score(s, m, features[m], y) for s in used} for m in ids}
        point = fuse(full)
        top = ids[int(np.lexsort((np.array(ids), -point))[0])]  # rank_with_data's order: score, then id
        strata = _strata(y)
        n = len(y)
        # Large samples: a subsample of MAX_ROWS rows rather than half (the cost is cubic in the rows); its spread is
        # rescaled to the full sample's by sqrt(m / (n - m)) (for a mean, Var = s^2 (1/m - 1/n): 1 at m = n/2).
        fraction = min(0.5, MAX_ROWS / n)
        m_rows = sum(len(r) if len(r) <= 2 else max(2, int(len(r) * fraction)) for r in strata)
        scale = math.sqrt(m_rows / (n - m_rows)) if m_rows < n else 1.0
        per = _cost(m_rows, [int(np.shape(features[m])[1]) for m in ids], used)
        n_used = int(min(n_boot, max(MIN_BOOT, max_flops // per)))
        rng = np.random.default_rng(seed)
        arrays = {m: np.asarray(features[m], dtype=np.float64) for m in ids}
        fused = np.empty((n_used, len(ids)))
        for b in range(n_used):
            rows = half_sample(strata, rng, fraction)
            y_rows = y[rows]
            per_model = {}
            for m in ids:
                sub = arrays[m][rows]  # one copy per candidate and resample, not one per scorer
                per_model[m] = {s: score(s, m, sub, y_rows, rows) for s in used}
            fused[b] = fuse(per_model)
    # Half the rows is less information, and in the n < d regimes the scorers climb on less information
    # (measured: LogME and the shrinkage H-score of 2,048-dim features rise on half-samples, those of 64-dim
    # features barely): every candidate's fused score is biased on half-samples, the high-dimensional ones most.
    # Each candidate's replicates are therefore centred on its full-sample score (a bias-corrected resampling):
    # the half-samples give the spread, the sample gives the centre.
    fused = point + (fused - fused.mean(axis=0)) * scale
    return Replicates(ids=ids, top=top, fused=fused, n_boot_asked=n_boot, scorers=list(used), seed=seed,
                      seconds=time.perf_counter() - t0)


def summarise(reps: Replicates, proxy_sd: float | None = None) -> RankingConfidence:
    """The pick's share of first places and the candidates tied with it over ``reps``, each resample's fused scores
    first moved by N(0, proxy_sd^2) noise per candidate (None: :data:`PROXY_SD`; 0: none)."""
    t0 = time.perf_counter()
    sd = _proxy_sd(proxy_sd)
    ids, top, fused = reps.ids, reps.top, reps.fused
    if sd > 0:
        # Its own generator ([seed, 1], not the half-samples' seed): every SD sees the same half-samples.
        fused = fused + np.random.default_rng([reps.seed, 1]).normal(0.0, sd, fused.shape)
    n_used = fused.shape[0]
    best = fused.max(axis=1, keepdims=True)
    first = np.isclose(fused, best, rtol=0.0, atol=1e-12)
    share = (first / first.sum(axis=1, keepdims=True)).mean(axis=0)  # k candidates first together: 1/k each
    t = ids.index(top)
    lo_q, hi_q = 100 * (1 - TIE_LEVEL) / 2, 100 * (1 + TIE_LEVEL) / 2
    interval, tied = {}, []
    for j, m in enumerate(ids):
        if j == t:
            continue
        lead = fused[:, t] - fused[:, j]
        lo, hi = float(np.percentile(lead, lo_q)), float(np.percentile(lead, hi_q))
        interval[m] = (lo, hi)
        if lo <= 1e-12:
            tied.append(m)
    tied.sort(key=lambda m: (-share[ids.index(m)], interval[m][0], m))
    rule = (f"tied: the top's fused-score lead over it has a {100 * TIE_LEVEL:.0f} % bootstrap percentile interval "
            f"that contains 0")
    if sd > 0:
        rule += (f"; on every resample each fused score also moved by N(0, {sd:g}^2), the scores' typical error "
                 "against fine-tuned accuracy on zoo's ranking benchmark")
    return RankingConfidence(top=top, stays_first=float(share[t]), first_share=dict(zip(ids, map(float, share), strict=True)),
                             tied=tied, n_boot=n_used, n_boot_asked=reps.n_boot_asked, lead_interval=interval,
                             scorers=list(reps.scorers), seconds=reps.seconds + time.perf_counter() - t0, rule=rule,
                             proxy_sd=sd)
