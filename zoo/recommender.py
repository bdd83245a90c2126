"""Recommend backbones for a task description: understand the task, apply hard constraints,
score every remaining candidate on named components, fuse them, group near-duplicates.

Components (each shown per candidate; all in [0, 1]):

- ``domain_similarity``: cosine between the task text and the model's domain card
  (``zoo.cards.card_text``), both embedded with the same sentence encoder, min-max scaled over the
  candidates so its spread is comparable with the other components (``cosine`` keeps the raw value);
- ``domain_match``: pretraining-data relevance, the summed confidence of the inferred domain tags
  that the model was pretrained for (a radiology model for an X-ray task);
- ``quality``: the upstream quality prior, the percentile of the model's ImageNet top-1 among the
  candidates of its modality that report one;
- ``popularity``: a weak prior, the percentile of log downloads among candidates that report them;
- ``size_fit``: with ``max_params``, how much of the size budget the model uses (log scale):
  within the budget, bigger usually transfers better.

A prior the model lacks (no ImageNet top-1 for a CIFAR or text model, no downloads offline, no
size budget given) is 0.5, the middle of its scale: it neither helps nor hurts. The fused score is
a fixed weighted sum (``WEIGHTS``), chosen on the dev split of the task-description benchmark
(``benchmarks/bench_recommend.py``), never on its test split.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import UsageError
from zoo.record import ModelRecord
from zoo.registry import Registry
from zoo.threads import one_blas_thread
from zoo.understand import TaskUnderstanding

WEIGHTS: dict[str, float] = {
    "domain_similarity": 0.35,
    "domain_match": 0.35,
    "quality": 0.2,
    "popularity": 0.05,
    "size_fit": 0.05,
}
NEUTRAL = 0.5
# A reason names a component only when it is strong in absolute terms, not because it tops a min-max scaled
# column (the best card of a chest X-ray task among CIFAR ResNets is still far from it). Raw cosines between
# the 1,091 labelled task descriptions (zoo/manifests/task_examples.json) and the catalog's 2,028 cards:
# 95th percentile 0.42, 99th 0.54; the catalog's ImageNet top-1: 75th percentile 84.4 %. Printed by
# benchmarks/card_cosines.py; set from those distributions, not from any benchmark case's outcome.
CARD_CLOSE_COSINE = 0.54  # "card closely matches the task": closer than 99 % of task-card pairs
CARD_RELATED_COSINE = 0.42  # "card is related to the task": closer than 95 % of them
STRONG_TOP1 = 84.4  # "strong ImageNet top-1": at or above the catalog's 75th percentile
# Which record modalities can serve a task of each modality (vision-language models have image towers).
SERVES: dict[str, tuple[str, ...]] = {
    "image": ("image", "multimodal"),
    "text": ("text",),
    "audio": ("audio",),
    "video": ("video", "image"),
    "multimodal": ("multimodal",),
}
# Of those, the ones that are only a stand-in, ranked after every native candidate: an image backbone
# scores single frames of a video and cannot model motion, however high its ImageNet top-1.
FALLBACK: dict[str, tuple[str, ...]] = {"video": ("image",)}


@dataclass
class Constraint:
    """One hard constraint as applied, in the fixed order of :func:`apply_constraints`.
    ``zoo.statements.constraint_text`` says it in words."""

    name: str  # candidates | modality | license_class | max_params | max_latency_ms | max_input_size | available
    value: Any  # as asked: "image", ["permissive"], 150_000_000, ...
    remaining: int  # candidates left after this constraint
    excluded: int  # candidates it removed
    excluded_unknown: int = 0  # of those, excluded because the value is unknown
    # Of those excluded for an unknown value, the ones pretrained for one of the task's inferred domains (best
    # card first, at most 5 named) and how many there were: the models a domain task would miss.
    unknown_in_domain: list[str] = field(default_factory=list)
    unknown_in_domain_count: int = 0


@dataclass
class Candidate:
    """One ranked model of a :class:`Recommendation`.

    - ``id``, ``record``: the model and its :class:`~zoo.record.ModelRecord` (license, params, input size, ...).
    - ``rank``: 1 for the pick. Without data it follows ``score``; with data and ``probe_top`` the first
      ``probe_top`` are ordered by probe accuracy instead (``zoo.statements.order_note`` says so).
    - ``score``: the fused score. Without data, the weighted sum of ``components`` (``Recommendation.weights``);
      with data, ``zoo.fusion``'s mix of the description score and the data scores.
    - ``components``: each part in [0, 1] (``domain_similarity``, ``domain_match``, ``quality``, ``popularity``,
      ``size_fit``) plus ``cosine``, the raw card similarity; with data also ``description``, ``data`` and
      ``size_prior``.
    - ``reason``: why it ranks here, in facts that hold in absolute terms (``reason_for``).
    - ``variants``: the other pretrained tags of the same architecture or weights, grouped under it.
    - ``failed_constraint``: set by :func:`explain` for a model a constraint excluded.
    - With data: ``data_scores`` (raw scorer values), ``data_seconds`` (extraction + scoring),
      ``extract_seconds``, ``data_cached`` (features from the cache), ``data_warnings`` (where the data does
      not fit it), ``data_not_informative`` (scorer -> why it has no value for this candidate: not informative
      on the sample, or no source head), ``weights_commit`` (the Hub commit measured), ``download_bytes`` and
      ``download_seconds`` (fetched for it by this call), ``probe`` (a ``zoo.probe.ProbeResult`` with ``probe_top``), ``plan`` (the
      pick's ``zoo.plan.TransferPlan``) and ``feature_layers``: for a transformer text encoder, the layers whose
      mask-mean-pooled hidden states were averaged into the features zoo scored (``[1, ..., L]``; None: the
      model's own output; ``zoo.backbones.layers``).

    :meth:`load` gives the model ready to fine-tune.
    """

    id: str
    score: float
    components: dict[str, float]
    record: ModelRecord
    reason: str = ""
    variants: list[str] = field(default_factory=list)  # other tags of the same architecture
    rank: int = 0
    failed_constraint: str | None = None  # set by explain() for a model that was excluded
    # With sample data (recommend(..., data=...)): raw transferability scores by scorer name, how long
    # feature extraction took and whether it came from the cache; None/empty without data.
    data_scores: dict[str, float] = field(default_factory=dict)
    data_seconds: float | None = None
    data_cached: bool | None = None
    data_warnings: list[str] = field(default_factory=list)
    weights_commit: str | None = None  # with data: the Hub commit of the weights that were measured
    download_bytes: int = 0  # with data: fetched from the Hub for it by this call
    download_seconds: float = 0.0
    extract_seconds: float | None = None  # with data: the feature-extraction part of data_seconds
    probe: Any = None  # zoo.probe.ProbeResult when the candidate was probed (--probe-top, or a tie)
    # with data: scorer -> why it has no value for this candidate (not informative on the sample, no source head)
    data_not_informative: dict[str, str] = field(default_factory=dict)
    plan: Any = None  # zoo.plan.TransferPlan for the top pick when data was given
    # with data: the transformer layers averaged into the scored features (None: the model's own output)
    feature_layers: list[int] | None = None

    def load(self, num_classes: int | None = None, *, device: str = "auto", plan: bool = False,
             modality: str | None = None, fetch: bool = True):
        """The backbone ready to fine-tune, a ``zoo.backbones.LoadedBackbone``: ``.model`` (a torch module that
        returns pooled features ``(N, feature_dim)``, not logits), ``.head`` (a new
        ``torch.nn.Linear(feature_dim, num_classes)`` when ``num_classes`` is given, else None), ``.preprocess``
        (a PIL image -> a ``(C, H, W)`` tensor for image models; a list of texts -> the model's inputs for text
        models), ``.feature_dim``, ``.trainable`` and ``.note``. One training step::

            x = torch.stack([backbone.preprocess(img) for img in images])
            loss = torch.nn.functional.cross_entropy(backbone.head(backbone.model(x)), labels)

        See ``LoadedBackbone`` for how each library's ``model`` is called (text models take
        ``**preprocess(texts)``). Encoders that cannot be fine-tuned (ONNX, averaged word vectors) have
        ``model=None`` and ``trainable=False``: train the head on ``backbone.features(batch)``.

        ``backbone.features(texts)`` gives the features zoo scored: for a transformer text encoder ranked on
        data, the mean over ``feature_layers`` of the mask-mean-pooled hidden states (``backbone.layers``);
        ``backbone.model`` still returns the model's pooled output, the usual input of a fine-tuning head.

        Weights that are not on this machine are fetched from the Hub first (``fetch=False``: only what is
        on disk; ``WeightsUnavailable`` then names the command that fetches them).
        ``modality`` is the data it will read: for a vision-language (multimodal) candidate it picks the
        tower, ``"image"`` (the default, said in the backbone's ``note``) or ``"text"``.
        ``plan=True`` applies this candidate's transfer plan (``zoo.plan.apply_plan``): frozen and
        unfrozen blocks, optimizer parameter groups with the planned learning rates, LoRA for
        transformers; it returns a ``zoo.plan.PlannedModel``."""
        from zoo.backbones import load_backbone

        layers = list(self.feature_layers) if self.feature_layers else None
        if not plan:
            return load_backbone(self.record, num_classes=num_classes, device=device, modality=modality,
                                 fetch=None if fetch else False, layers=layers)
        if self.plan is None:
            raise UsageError(f"{self.id} has no transfer plan: recommend with data=..., or make one with "
                             f"zoo.plan.plan_for(data, {self.id!r}).")
        if num_classes is None:
            raise UsageError("load(plan=True) needs num_classes: the plan trains a new head.")
        from zoo.plan import apply_plan

        return apply_plan(load_backbone(self.record, num_classes=num_classes, device=device, modality=modality,
                                        fetch=None if fetch else False, layers=layers), self.plan, num_classes)


@dataclass
class Recommendation:
    """What :func:`recommend` returns.

    - ``task``: the description as given; ``understanding``: how it was read (``TaskUnderstanding``: modality
      and where it came from, domain tags with confidences, named datasets, caveats).
    - ``constraints``: each hard constraint applied, in order, with how many it removed (``Constraint``).
    - ``candidates``: the ranked :class:`Candidate` s (the top ``top_k``, one per group of near-duplicates, or
      the whole shortlist); ``best`` is the first.
    - ``considered``: how many models passed the constraints; ``ranked_among``: how many the ranking is over
      (``considered`` without data, those measured on the data with it); ``excluded_unknown``: removed only
      because a constrained value is unknown; ``empty_reason``: why nothing is left, when nothing is.
    - ``weights``: the component weights of the description score; ``embed_model``: the model that read the
      task; ``seconds``: wall time; ``grouped``: near-duplicates grouped.
    - With data: ``data`` (the sample's summary: source, hash, counts, skipped), ``scores`` (scorers computed),
      ``not_scored`` (id -> why a strong candidate could not be scored), ``fusion`` (how description, data and
      size were mixed), ``probe_top`` and ``probe_summary`` (with a probe), ``confidence``
      (:class:`zoo.confidence.RankingConfidence`: the pick's share of first places over resamples of the
      sample and the candidates tied with it; when tied leaders were probed, ``probe_summary["reason"]`` says so).
    - ``run_id``: the stored run's id once saved (``zoo runs``).
    """

    task: str
    understanding: TaskUnderstanding
    constraints: list[Constraint]
    candidates: list[Candidate]
    considered: int  # candidates that passed the constraints (each scored on the description and priors)
    excluded_unknown: int
    empty_reason: str | None
    weights: dict[str, float]
    embed_model: str
    seconds: float
    grouped: bool = True
    # With sample data: what was used and which strong candidates could not be scored (id -> why).
    data: Any = None  # zoo.data summary dict: path, content_hash, modality, task, n, class_counts, skipped
    scores: list[str] = field(default_factory=list)  # scorer names computed on the data
    not_scored: dict[str, str] = field(default_factory=dict)
    fusion: dict[str, Any] | None = None  # with data: the weights of description vs data, the fused scorers
    probe_top: int = 0
    probe_summary: dict[str, Any] | None = None  # with probe_top: best, tied_with_best, practical_pick, agreement
    run_id: str | None = None  # set when the run is stored in the registry (zoo runs)
    # How many candidates the final ranking is over: ``considered`` without data; with data, those measured
    # on it (a rank is "of" this many; zoo.statements.rank_phrase).
    ranked_among: int = 0
    # With labelled data: how sure the ranking is (zoo.confidence.RankingConfidence: how often the pick stays
    # first when the sample is resampled, and the candidates tied with it); None without data or when not measured.
    confidence: Any = None

    @property
    def best(self) -> Candidate:
        if not self.candidates:
            raise UsageError(self.empty_reason or "No candidate satisfies the constraints.")
        return self.candidates[0]


# ---------------------------------------------------------------------------------------------
# Loading state (records, vectors, the understander), cached per process for warm calls.

@dataclass
class _State:
    registry: Registry
    records: list[ModelRecord] | None  # None for a large registry: candidates are retrieved per query
    embedder: Any
    card_index: Any
    understander: Any
    key: tuple
    # Small registries: every record's columns (RecordColumns, near-duplicate group included), its position
    # in ``records`` and its card's row in card_index, so that a warm call does no per-record string work.
    columns: RecordColumns | None = None
    _row: dict[str, int] = field(default_factory=dict)
    _card_rows: np.ndarray | None = None
    # The last query's cosines to every card: a call reads them for the whole pool (modality evidence)
    # and again for the records that pass the constraints.
    _last_scores: tuple[bytes, np.ndarray] | None = None

    def index_records(self) -> None:
        """Precompute what a warm call over every record of a small registry needs."""
        if self.records is None:
            return
        self.columns = RecordColumns(self.records)
        self._row = {r.id: i for i, r in enumerate(self.records)}
        pos = (self.card_index.position(f"card:{r.id}") for r in self.records)
        self._card_rows = np.fromiter((-1 if p is None else p for p in pos), dtype=np.int64, count=len(self.records))

    def columns_and_cosines(self, q: np.ndarray, records: Sequence[ModelRecord]) -> tuple[RecordColumns, np.ndarray]:
        """The records' columns and card cosines to ``q``; ``records`` come from :meth:`pool`."""
        if self.columns is None or self._card_rows is None:  # a large registry: the pool is read per query
            return RecordColumns(records), self.card_index.cosines(q, [f"card:{r.id}" for r in records])
        if records is self.records:
            rows = np.arange(len(records))
        else:  # map() keeps the per-record lookup in C: this runs over every record of the registry
            rows = np.fromiter(map(self._row.__getitem__, map(_ID, records)), dtype=np.int64, count=len(records))
        card_rows = self._card_rows[rows]
        cos = self._scores(q)[card_rows]
        cos[card_rows < 0] = 0.0  # a record without a stored vector
        return self.columns.take(rows), cos

    def _scores(self, q: np.ndarray) -> np.ndarray:
        key = q.tobytes()
        if self._last_scores is None or self._last_scores[0] != key:
            self._last_scores = (key, self.card_index.scores(q))
        return self._last_scores[1]

    def pool(self, q: np.ndarray, ids: list[str] | None) -> list[ModelRecord]:
        """The records to score. Small registries: all of them. Large ones: the cards nearest to the
        task (their text names the domain, pretraining data and modality), or the given shortlist."""
        if self.records is not None:
            return self.records
        if ids is not None:
            return self.registry.get_many(ids)
        near, _ = self.card_index.search(q, POOL_NEAREST)
        return self.registry.get_many([k.removeprefix("card:") for k in near])


_ID = operator.attrgetter("id")
_STATE: dict[tuple, _State] = {}
LARGE_REGISTRY = 50_000  # above this many models, retrieve a candidate pool instead of scoring all
POOL_NEAREST = 300  # enough for a top-10 ranking; each pooled record is read from SQLite per query


def _state_key(reg: Registry, embed_model: str | None) -> tuple:
    def stamp(p: Path | None) -> tuple:
        if p is None or not p.exists():
            return (str(p), None)
        wal = p.with_name(p.name + "-wal")
        # Opening a WAL database creates an empty -wal file: only a non-empty one means new writes,
        # otherwise the first call after load_state would see a "changed" database and reload it all.
        wal_stat = wal.stat() if wal.exists() else None
        return (str(p), p.stat().st_mtime_ns, wal_stat.st_mtime_ns if wal_stat and wal_stat.st_size else None)

    return (stamp(reg.db_path), stamp(reg.catalog_path), embed_model)


def load_state(db: str | Path | None = None, *, embed_model: str | None = None, progress: bool = False) -> _State:
    from zoo.cards import card_text
    from zoo.embed import cache_dir, get_embedder
    from zoo.understand import Understander
    from zoo.vectors import EmbeddingStore, VectorIndex

    reg = Registry(db=db)
    key = _state_key(reg, embed_model)
    if key in _STATE:
        reg.close()
        return _STATE[key]
    embedder = get_embedder(embed_model)
    store = EmbeddingStore(reg)
    records: list[ModelRecord] | None
    if reg.stats_total() <= LARGE_REGISTRY:
        records = list(reg.iter_records())
        vectors = store.ensure([(f"card:{r.id}", card_text(r)) for r in records], embedder, progress=progress)
        index = VectorIndex.build([f"card:{r.id}" for r in records], vectors)
    else:
        # Large registries: cards are embedded when indexed (EmbeddingStore.ensure); the index is built
        # from the stored vectors and its approximate part kept on disk between processes.
        records = None
        keys, _, matrix = store.all_with_prefix("card:", embedder.model_id)
        index = VectorIndex.build(keys, matrix, cache_dir=cache_dir() / "index")
    state = _State(reg, records, embedder, index, Understander(store, embedder), key)
    state.index_records()
    _STATE.clear()  # one registry state per process is plenty
    _STATE[state.key] = state
    return state


# ---------------------------------------------------------------------------------------------
# Constraints

def _parse_candidates(candidates: str | Iterable[str] | None) -> list[str] | None:
    if candidates is None:
        return None
    if isinstance(candidates, str):
        p = Path(candidates)
        try:
            is_file = p.is_file()
        except OSError:  # a long comma-separated list is not a file name
            is_file = False
        if is_file:
            items = [line.split("#")[0].strip() for line in p.read_text().splitlines()]
        else:
            items = candidates.split(",")
    else:
        items = list(candidates)
    ids = [i.strip() for i in items if i and i.strip()]
    if not ids:
        raise UsageError("--candidates is empty; give model ids separated by commas or a file with one id per line.")
    return ids


def apply_constraints(
    records: Sequence[ModelRecord],
    *,
    modality: str,
    license_classes: Sequence[str] | None = None,
    max_params: int | None = None,
    max_latency_ms: float | None = None,
    max_input_size: int | None = None,
    available: bool = False,
    candidate_ids: Sequence[str] | None = None,
    allow_unknown: bool = False,
) -> tuple[list[ModelRecord], list[Constraint], dict[str, str]]:
    """Filter in a fixed order, recording what each constraint removed; returns why each removed id failed."""
    from zoo.weights import is_available

    failed: dict[str, str] = {}
    steps: list[tuple[str, Any, Any]] = []
    if candidate_ids is not None:
        wanted = set(candidate_ids)
        steps.append(("candidates", f"{len(wanted)} ids", lambda r: r.id in wanted))
    serves = SERVES[modality]
    steps.append(("modality", modality, lambda r: r.modality in serves))
    if license_classes:
        allowed = set(license_classes)
        steps.append(("license_class", sorted(allowed),
                      lambda r: None if r.license_class == "unknown" and "unknown" not in allowed
                      else r.license_class in allowed))
    if max_params is not None:
        steps.append(("max_params", max_params, lambda r: None if r.params is None else r.params <= max_params))
    if max_latency_ms is not None:
        steps.append(("max_latency_ms", max_latency_ms,
                      lambda r: None if r.cpu_latency_ms is None else r.cpu_latency_ms <= max_latency_ms))
    if max_input_size is not None:
        steps.append(("max_input_size", max_input_size,
                      lambda r: None if not r.input_size else max(r.input_size[-2:]) <= max_input_size))
    if available:
        steps.append(("available", True, lambda r: is_available(r.weights)))

    current = list(records)
    applied: list[Constraint] = []
    for name, value, test in steps:
        kept, unknown = [], 0
        for r in current:
            ok = test(r)
            if ok is None:  # the model's value is unknown
                if allow_unknown:
                    kept.append(r)
                    continue
                unknown += 1
                failed[r.id] = f"{name}: unknown"
            elif ok:
                kept.append(r)
            else:
                failed[r.id] = f"{name}: fails {value}"
        applied.append(Constraint(name, value, len(kept), len(current) - len(kept), unknown))
        current = kept
    return current, applied, failed


# ---------------------------------------------------------------------------------------------
# Components and fusion

def _percentile(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """Percentile rank in [0, 1] among the known values; unknown (None or NaN) -> NEUTRAL."""
    vals = np.asarray(values, dtype=float)
    out = np.full(len(values), NEUTRAL)
    known = ~np.isnan(vals)
    if known.sum() < 2:
        return out
    srt = np.sort(vals[known])
    lo = np.searchsorted(srt, vals[known], side="left")
    hi = np.searchsorted(srt, vals[known], side="right")
    out[known] = (lo + hi) / 2 / (len(srt) - 1)
    return np.clip(out, 0.0, 1.0)


COMPONENTS = ("domain_similarity", "cosine", "domain_match", "quality", "popularity", "size_fit")


class RecordColumns:
    """The record fields the components read, as arrays (unknown = NaN). Built once per registry state,
    then sliced per query with :meth:`take`, so that ranking thousands of records stays vectorised."""

    def __init__(self, records: Sequence[ModelRecord]):
        self._records: Sequence[ModelRecord] | None = records
        self._parent: RecordColumns | None = None
        self._rows: np.ndarray | None = None
        self._masks: dict[str, np.ndarray] = {}
        self.ids = np.array([r.id for r in records], dtype=str)
        self.modality = np.array([r.modality for r in records], dtype=str)
        self.top1 = np.array([r.imagenet_top1 for r in records], dtype=float)
        self.log_downloads = np.log1p(np.array([r.downloads for r in records], dtype=float))
        self.params = np.array([r.params or None for r in records], dtype=float)
        # near-duplicate groups (group_key) as integers, so that grouping a ranking is array work
        keys = [group_key(r) for r in records]
        self.group = np.unique(np.array(keys, dtype=str), return_inverse=True)[1] if keys else np.zeros(0, int)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> RecordColumns:
        view = object.__new__(RecordColumns)
        view._records, view._parent, view._rows, view._masks = None, self, rows, {}
        for name in ("ids", "modality", "top1", "log_downloads", "params", "group"):
            setattr(view, name, getattr(self, name)[rows])
        return view

    def domain_mask(self, domain: str) -> np.ndarray:
        """Which records carry ``domain`` among their tags."""
        if domain not in self._masks:
            if self._parent is not None:
                self._masks[domain] = self._parent.domain_mask(domain)[self._rows]
            else:
                recs = self._records or ()
                self._masks[domain] = np.fromiter((domain in r.domains for r in recs), dtype=bool, count=len(recs))
        return self._masks[domain]


def component_matrix(
    records: Sequence[ModelRecord] | RecordColumns,
    cosines: np.ndarray,
    understanding: TaskUnderstanding,
    *,
    max_params: int | None = None,
) -> np.ndarray:
    """(records, COMPONENTS) array."""
    cols = records if isinstance(records, RecordColumns) else RecordColumns(records)
    n = len(cols)
    out = np.full((n, len(COMPONENTS)), NEUTRAL)
    if n == 0:
        return out
    lo, hi = float(cosines.min()), float(cosines.max())
    out[:, 0] = (cosines - lo) / (hi - lo) if hi - lo > 1e-9 else NEUTRAL
    out[:, 1] = cosines
    out[:, 2] = 0.0
    for d, c in understanding.domains.items():
        out[:, 2] += c * cols.domain_mask(d)
    for modality in np.unique(cols.modality):
        idx = np.flatnonzero(cols.modality == modality)
        out[idx, 3] = _percentile(cols.top1[idx])
    out[:, 4] = _percentile(cols.log_downloads)
    if max_params:
        has = ~np.isnan(cols.params)
        if has.any():
            lmin, lmax = np.log(cols.params[has].min()), np.log(max_params)
            out[has, 5] = 1.0 if lmax <= lmin else np.clip((np.log(cols.params[has]) - lmin) / (lmax - lmin), 0, 1)
    return out


def components_for(
    records: Sequence[ModelRecord],
    cosines: np.ndarray,
    understanding: TaskUnderstanding,
    *,
    max_params: int | None = None,
) -> list[dict[str, float]]:
    mat = component_matrix(records, cosines, understanding, max_params=max_params)
    return [dict(zip(COMPONENTS, map(float, row), strict=True)) for row in mat]


def fuse(components: dict[str, float], weights: dict[str, float] = WEIGHTS) -> float:
    return float(sum(w * components[name] for name, w in weights.items()))


def reason_for(rec: ModelRecord, comp: dict[str, float], understanding: TaskUnderstanding) -> str:
    """Why this candidate, in facts that hold on their own: its pretraining domain, a card close to the task
    in raw cosine (:data:`CARD_CLOSE_COSINE`, :data:`CARD_RELATED_COSINE`), an ImageNet top-1 at or above
    :data:`STRONG_TOP1`, a license to notice, its size. Nothing is said because of a rank among candidates."""
    parts = []
    if rec.modality in FALLBACK.get(understanding.modality, ()):
        parts.append(f"{rec.modality} backbone for a {understanding.modality} task, after every {understanding.modality} model")
    hits = [d for d in understanding.domains if d in rec.domains]
    if hits:
        parts.append("pretrained for " + ", ".join(hits))
    elif rec.domains:
        parts.append("domain " + ", ".join(rec.domains[:2]))
    cos = comp.get("cosine")
    if cos is not None and cos >= CARD_CLOSE_COSINE:
        parts.append(f"card closely matches the task (cosine {cos:.2f})")
    elif cos is not None and cos >= CARD_RELATED_COSINE:
        parts.append(f"card is related to the task (cosine {cos:.2f})")
    if rec.imagenet_top1 is not None and rec.imagenet_top1 >= STRONG_TOP1:
        parts.append(f"strong ImageNet top-1 {rec.imagenet_top1:.1f}%")
    if rec.license_class in ("non-commercial", "unknown", "restricted"):
        parts.append(f"license {rec.license or 'not stated'} ({rec.license_class})")
    if rec.params:
        parts.append(f"{rec.params / 1e6:.1f}M params")
    return "; ".join(parts)


def group_key(rec: ModelRecord) -> str:
    """Near-duplicates: the same timm architecture with several pretrained tags, or the same weights."""
    if rec.same_weights_as:
        return rec.same_weights_as
    if rec.source == "timm" and rec.architecture:
        return f"timm:{rec.architecture}"
    return rec.id


# ---------------------------------------------------------------------------------------------
# The API

def check_task(task: str) -> None:
    if not task or not any(ch.isalnum() for ch in task):
        raise UsageError('Describe the task in words, e.g. zoo recommend "detect pneumonia in chest X-rays".')


@dataclass
class DescriptionRanking:
    """The description-and-prior ranking of every candidate that passed the constraints, before any data.
    :meth:`ordered` hands the candidates, best first, to a re-ranker (``zoo.data_rank``); :meth:`result`
    makes the :class:`Recommendation` from it or from the re-ranked list."""

    task: str
    understanding: TaskUnderstanding
    constraints: list[Constraint]
    kept: list[ModelRecord]
    empty_reason: str | None
    weights: dict[str, float]
    embed_model: str
    explicit: bool  # a shortlist (candidates=) was given: it is ranked whole
    cols: RecordColumns
    mat: np.ndarray
    fused: np.ndarray
    order: np.ndarray

    def candidate(self, i: int) -> Candidate:
        comp = dict(zip(COMPONENTS, map(float, self.mat[i]), strict=True))
        return Candidate(id=self.kept[i].id, score=float(self.fused[i]), components=comp, record=self.kept[i])

    def ordered(self) -> list[Candidate]:
        """Every candidate, best description score first."""
        return [self.candidate(i) for i in self.order]

    def result(self, *, group: bool, top_k: int, t0: float, scored: list[Candidate] | None = None,
               extra: dict[str, Any] | None = None) -> Recommendation:
        """The recommendation: this ranking, or ``scored`` (a re-ranked subset of :meth:`ordered`, every one
        measured: the ranking is over them) with the ``extra`` fields of the re-ranker."""
        order, kept = self.order, self.kept
        if scored is not None:
            keys = np.array([group_key(c.record) if group else c.id for c in scored], dtype=str)
            out = _group_ranked(np.unique(keys, return_inverse=True)[1], len(scored), scored.__getitem__,
                                lambda pos: scored[pos].id)
        else:
            # Candidates are built only for the groups shown; the rest of the ranking only adds variants.
            out = _group_ranked(self.cols.group[order] if group else np.arange(len(order)),
                                len(order) if self.explicit else top_k,
                                lambda pos: self.candidate(order[pos]), lambda pos: kept[order[pos]].id)
        top = out if self.explicit else out[:top_k]  # a shortlist is ranked whole
        for i, c in enumerate(top, 1):
            c.rank = i
            c.reason = reason_for(c.record, c.components, self.understanding)
        return Recommendation(
            task=self.task, understanding=self.understanding, constraints=self.constraints, candidates=top,
            considered=len(kept), excluded_unknown=sum(c.excluded_unknown for c in self.constraints),
            empty_reason=self.empty_reason, weights=dict(self.weights), embed_model=self.embed_model,
            seconds=time.perf_counter() - t0, grouped=group,
            ranked_among=len(scored) if scored is not None else len(kept), **(extra or {}),
        )


def rank_description(
    task: str,
    *,
    candidates: str | Iterable[str] | None = None,
    modality: str | None = None,
    modality_source: str = "given",
    license_classes: Sequence[str] | None = None,
    max_params: int | None = None,
    max_latency_ms: float | None = None,
    max_input_size: int | None = None,
    available: bool = False,
    allow_unknown: bool = False,
    top_k: int = 10,
    db: str | Path | None = None,
    embed_model: str | None = None,
    weights: dict[str, float] | None = None,
) -> DescriptionRanking:
    """Understand ``task``, apply the hard constraints and score every remaining candidate on the
    description and the priors (module docstring). ``modality_source``: ``"given"`` (by the caller) or
    ``"data"`` (read from a sample by the caller)."""
    from zoo import vocab

    check_task(task)
    if modality is not None and modality not in vocab.MODALITIES:
        raise UsageError(f"Unknown modality {modality!r}; use one of {', '.join(vocab.MODALITIES)}.")
    for c in license_classes or ():
        if c not in vocab.LICENSE_CLASSES:
            raise UsageError(f"Unknown license class {c!r}; use one of {', '.join(vocab.LICENSE_CLASSES)}.")
    if top_k < 1:
        raise UsageError("top_k must be at least 1.")
    weights = weights or WEIGHTS
    ids = _parse_candidates(candidates)
    state = load_state(db, embed_model=embed_model)
    if ids is not None:
        for i in ids:
            state.registry.get(i)  # raises UnknownModel with suggestions

    with one_blas_thread():  # see zoo.threads
        q = state.embedder.encode_query(task, state.understander.matrix)
        pool = state.pool(q, ids)
        und = _understand(state, task, q, pool, modality, modality_source)
        kept, applied, failed = apply_constraints(
            pool, modality=und.modality, license_classes=license_classes, max_params=max_params,
            max_latency_ms=max_latency_ms, max_input_size=max_input_size, available=available, candidate_ids=ids,
            allow_unknown=allow_unknown,
        )
        _name_unknown_in_domain(state, q, pool, failed, applied, und)
        empty_reason = None
        if not kept:
            culprit = next((c for c in applied if c.remaining == 0), applied[-1])
            empty_reason = (
                f"No model satisfies the constraints: '{culprit.name} = {culprit.value}' removed the last "
                f"{culprit.excluded} candidates"
                + (f" ({culprit.excluded_unknown} only because the value is unknown; --allow-unknown keeps them)"
                   if culprit.excluded_unknown else "")
                + ". Relax that constraint."
            )
        cols, cosines = state.columns_and_cosines(q, kept)
        mat = component_matrix(cols, cosines, und, max_params=max_params)
        fused = mat[:, [COMPONENTS.index(name) for name in weights]] @ np.array(list(weights.values()), dtype=float)
        order = np.lexsort((cols.ids, -fused, np.isin(cols.modality, FALLBACK.get(und.modality, ()))))
    return DescriptionRanking(task=task, understanding=und, constraints=applied, kept=kept, empty_reason=empty_reason,
                              weights=dict(weights), embed_model=state.embedder.model_id, explicit=ids is not None,
                              cols=cols, mat=mat, fused=fused, order=order)


def recommend_description(task: str, *, group: bool = True, top_k: int = 10, **options: Any) -> Recommendation:
    """The recommendation from the description and the priors alone (``zoo.recommend`` without data);
    ``options`` are :func:`rank_description`'s."""
    t0 = time.perf_counter()
    return rank_description(task, top_k=top_k, **options).result(group=group, top_k=top_k, t0=t0)


def _name_unknown_in_domain(state: _State, q: np.ndarray, pool: Sequence[ModelRecord], failed: dict[str, str],
                            applied: list[Constraint], und: TaskUnderstanding, shown: int = 5) -> None:
    """Per constraint that left models out because their value is unknown, the ones pretrained for one of the
    task's inferred domains (best card first): a size limit must not silently drop a domain task's models."""
    want = set(und.domains)
    if not want:
        return
    for c in applied:
        if not c.excluded_unknown:
            continue
        tag = f"{c.name}: unknown"
        recs = [r for r in pool if failed.get(r.id) == tag and want.intersection(r.domains)]
        if not recs:
            continue
        _, cos = state.columns_and_cosines(q, recs)
        order = np.argsort(-cos, kind="stable")
        c.unknown_in_domain = [recs[i].id for i in order[:shown]]
        c.unknown_in_domain_count = len(recs)


def _group_ranked(groups: np.ndarray, room: int, lead: Callable[[int], Candidate],
                  member_id: Callable[[int], str]) -> list[Candidate]:
    """Near-duplicates in a ranking: ``groups[pos]`` is the group of the candidate at rank position
    ``pos``; each of the first ``room`` groups is led by its best member (``lead(pos)``) and lists the
    others (``member_id(pos)``) as variants, in rank order."""
    _, first = np.unique(groups, return_index=True)
    leads = np.sort(first)[:room]
    by_group: dict[Any, Candidate] = {}
    out = []
    for pos in leads:
        by_group[groups[pos]] = lead(pos)
        out.append(by_group[groups[pos]])
    members = np.isin(groups, groups[leads])
    members[leads] = False
    for pos in np.flatnonzero(members):
        by_group[groups[pos]].variants.append(member_id(pos))
    return out


def _understand(state: _State, task: str, q: np.ndarray, pool: Sequence[ModelRecord],
                modality: str | None, modality_source: str = "given") -> TaskUnderstanding:
    from zoo.language import description_language
    from zoo.understand import card_evidence, modality_text

    q_mod = None
    if modality is None and (alt := modality_text(task)) is not None:
        q_mod = state.embedder.encode_query(alt, state.understander.matrix)
    cols, cosines = state.columns_and_cosines(q if q_mod is None else q_mod, pool)
    und = state.understander.understand(task, q, modality=modality, cards=card_evidence(cols.modality, cosines),
                                        q_modality=q_mod, modality_source=modality_source)
    und.language = description_language(task, state.embedder.model_id)
    return und


def explain(model_id: str, task: str, **options: Any) -> tuple[Candidate, Recommendation]:
    """Why (not) this model: its components next to the top pick's, and the constraint it failed."""
    rec = recommend_description(task, **{**options, "top_k": 1})
    state = load_state(options.get("db"), embed_model=options.get("embed_model"))
    target = state.registry.get(model_id)
    # Components are relative to the candidate set: score the target inside the constrained pool.
    q = state.embedder.encode_query(task, state.understander.matrix)
    pool = state.pool(q, None)
    if all(r.id != target.id for r in pool):
        pool = [*pool, target]
    pool, _, failed = apply_constraints(
        pool, modality=rec.understanding.modality, license_classes=options.get("license_classes"),
        max_params=options.get("max_params"), max_latency_ms=options.get("max_latency_ms"),
        max_input_size=options.get("max_input_size"), available=options.get("available", False),
        allow_unknown=options.get("allow_unknown", False),
    )
    if target.id in failed:
        pool = [*pool, target]
    comps = components_for(pool, state.card_index.cosines(q, [f"card:{r.id}" for r in pool]), rec.understanding,
                           max_params=options.get("max_params"))
    i = next(i for i, r in enumerate(pool) if r.id == target.id)
    cand = Candidate(id=target.id, score=fuse(comps[i], rec.weights), components=comps[i], record=target,
                     reason=reason_for(target, comps[i], rec.understanding), failed_constraint=failed.get(target.id))
    return cand, rec
