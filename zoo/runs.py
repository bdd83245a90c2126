"""Stored runs: every recommendation kept in the user database (``zoo runs``), so a selection can be
reviewed, reported (``zoo report``) and compared with a later one.

A run is one row of the ``runs`` table (migration ``m004_runs``): the inputs as columns for listing
(task, data, data hash, options, versions, top pick, time) and the whole result as JSON. The JSON
round-trips into ``StoredRun``, which holds everything the report needs, so a report written months
later from a stored run reads like the one written when the recommendation was made.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import __version__
from zoo.errors import UsageError
from zoo.recommender import Constraint
from zoo.record import RECORD_FIELDS, ModelRecord
from zoo.registry import Registry
from zoo.understand import TaskUnderstanding

if TYPE_CHECKING:
    from zoo.recommender import Recommendation

FORMAT = 1  # version of the stored result JSON; from_dict reads older ones with defaults
LATEST = ("latest", "last")  # run-id aliases for the newest stored run
# Options that say where things are on this machine rather than what was asked: not stored.
_LOCAL_OPTIONS = {"db"}


# ---------------------------------------------------------------------------------------------
# JSON


def jsonable(obj: Any) -> Any:
    """Plain JSON values for anything a recommendation holds: dataclasses (public fields only),
    dicts, sequences, numpy values, paths. NaN and infinities become ``None``, because they are not
    JSON and a report must read the file back with any parser."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.name.startswith("_")}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [jsonable(v) for v in items]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        return jsonable(obj.tolist())
    if callable(obj):
        return None
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(jsonable(obj), sort_keys=False, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# The stored form


@dataclass
class StoredCandidate:
    """One ranked candidate as stored: ``Candidate`` with its record as plain fields."""

    id: str
    rank: int
    score: float
    components: dict[str, float]
    reason: str
    record: dict[str, Any]  # ModelRecord fields at run time (the registry may change later)
    variants: list[str] = field(default_factory=list)
    data_scores: dict[str, float] = field(default_factory=dict)
    data_seconds: float | None = None
    data_cached: bool | None = None
    data_warnings: list[str] = field(default_factory=list)
    weights_commit: str | None = None  # the Hub commit of the weights measured (None: not a Hub repo, or no data)
    probe: dict[str, Any] | None = None  # zoo.probe.ProbeResult's fields
    plan: dict[str, Any] | None = None  # zoo.plan.TransferPlan's fields
    feature_layers: list[int] | None = None  # the transformer layers averaged into the scored features

    def model_record(self) -> ModelRecord:
        """The ``ModelRecord`` as it was at run time (fields unknown to this zoo are dropped)."""
        return ModelRecord(**{k: v for k, v in self.record.items() if k in RECORD_FIELDS})

    def load(self, num_classes: int | None = None, *, device: str = "auto", modality: str | None = None,
             fetch: bool = True) -> Any:
        """The backbone ready to fine-tune, like ``Candidate.load`` (``modality`` picks a vision-language tower;
        absent weights are fetched unless ``fetch=False``; ``features()`` averages ``feature_layers`` as scored)."""
        from zoo.backbones import load_backbone

        return load_backbone(self.model_record(), num_classes=num_classes, device=device, modality=modality,
                             fetch=None if fetch else False,
                             layers=list(self.feature_layers) if self.feature_layers else None)


@dataclass
class StoredRun:
    """A recommendation as stored: enough to list it, compare it and write its report again."""

    id: str | None  # None for a recommendation that was not stored
    created_at: str | None
    task: str
    understanding: TaskUnderstanding
    constraints: list[Constraint]
    candidates: list[StoredCandidate]
    options: dict[str, Any] = field(default_factory=dict)  # the keyword arguments given to zoo.recommend
    considered: int = 0  # candidates that passed the constraints
    ranked_among: int = 0  # how many the ranking is over (with data: those measured on it); 0 in older runs
    excluded_unknown: int = 0
    empty_reason: str | None = None
    weights: dict[str, float] = field(default_factory=dict)
    embed_model: str = ""
    seconds: float = 0.0
    grouped: bool = True
    data: dict[str, Any] | None = None  # zoo.data summary: path, content_hash, modality, n, class_counts, skipped
    scores: list[str] = field(default_factory=list)
    not_scored: dict[str, str] = field(default_factory=dict)
    probe_top: int = 0
    fusion: dict[str, Any] | None = None  # with data: {"description": 1 - w, "data": w, "fused_scores": [...]}
    # with labelled data: zoo.confidence.RankingConfidence as a dict (top, stays_first, tied, n_boot, probe_note...)
    confidence: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)  # zoo, registry, python, platform, libraries
    format: int = FORMAT

    @property
    def best(self) -> StoredCandidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def data_hash(self) -> str | None:
        return (self.data or {}).get("content_hash")

    @property
    def data_path(self) -> str | None:
        d = self.data or {}
        path = d.get("source") or d.get("path") or self.options.get("data")
        return str(path) if path else None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoredRun:
        """Read a stored result; missing keys (an older format) take their defaults."""
        und = d.get("understanding") or {}
        source = und.get("modality_source") or ""
        if not source and und.get("modality_given") and d.get("data") and not (d.get("options") or {}).get("modality"):
            source = "data"  # a run stored before modality_source: the data fixed it, not --modality
        understanding = TaskUnderstanding(
            text=und.get("text", d.get("task", "")), modality=und.get("modality", ""),
            modality_confidence=float(und.get("modality_confidence") or 0.0),
            modality_given=bool(und.get("modality_given")) and source != "data", domains=dict(und.get("domains") or {}),
            modality_scores=dict(und.get("modality_scores") or {}), domain_scores=dict(und.get("domain_scores") or {}),
            datasets=list(und.get("datasets") or []), out_of_scope=und.get("out_of_scope"),
            language=und.get("language"), modality_source=source,
        )
        cons = [Constraint(c["name"], c.get("value"), int(c.get("remaining") or 0), int(c.get("excluded") or 0),
                           int(c.get("excluded_unknown") or 0), list(c.get("unknown_in_domain") or []),
                           int(c.get("unknown_in_domain_count") or 0)) for c in d.get("constraints") or []]
        known = {f.name for f in dataclasses.fields(StoredCandidate)}
        cands = [StoredCandidate(**{k: v for k, v in c.items() if k in known}) for c in d.get("candidates") or []]
        simple = {f.name for f in dataclasses.fields(cls)} - {"understanding", "constraints", "candidates"}
        return cls(understanding=understanding, constraints=cons, candidates=cands,
                   **{k: d[k] for k in simple if k in d and d[k] is not None})

    @classmethod
    def from_recommendation(
        cls,
        rec: Recommendation,
        *,
        options: dict[str, Any] | None = None,
        registry_version: str | None = None,
        created_at: str | None = None,
    ) -> StoredRun:
        """The stored form of ``rec``. Without ``options`` they are read back from its constraints."""
        if options is None:
            options = options_from_constraints(rec.constraints)
            # What a Recommendation itself says about the call: how many were asked for is at least
            # how many came back (a shortlist is ranked whole), and whether tags were grouped.
            if rec.candidates and not any(c.name == "candidates" for c in rec.constraints):
                options["top_k"] = len(rec.candidates)
            options["group"] = rec.grouped
        cands = []
        for c in rec.candidates:
            probe, plan = jsonable(c.probe), jsonable(c.plan)
            cands.append(StoredCandidate(
                id=c.id, rank=c.rank, score=float(c.score), components=jsonable(c.components), reason=c.reason,
                record=jsonable(c.record), variants=list(c.variants), data_scores=jsonable(c.data_scores),
                data_seconds=c.data_seconds, data_cached=c.data_cached, data_warnings=list(c.data_warnings),
                weights_commit=c.weights_commit, probe=probe if isinstance(probe, dict) else None, plan=plan if isinstance(plan, dict) else None,
                feature_layers=list(c.feature_layers) if getattr(c, "feature_layers", None) else None,
            ))
        data = jsonable(rec.data)
        if data is not None and not isinstance(data, dict):
            data = {"source": str(data)}
        return cls(
            id=rec.run_id, created_at=created_at, task=rec.task, understanding=rec.understanding,
            constraints=list(rec.constraints), candidates=cands,
            options={k: v for k, v in jsonable(options).items() if k not in _LOCAL_OPTIONS},
            considered=rec.considered, ranked_among=int(getattr(rec, "ranked_among", 0) or 0),
            excluded_unknown=rec.excluded_unknown, empty_reason=rec.empty_reason,
            weights=dict(rec.weights), embed_model=rec.embed_model, seconds=float(rec.seconds), grouped=rec.grouped,
            data=data, scores=list(rec.scores), not_scored=dict(rec.not_scored), probe_top=int(rec.probe_top or 0),
            fusion=jsonable(getattr(rec, "fusion", None)), confidence=jsonable(getattr(rec, "confidence", None)),
            versions=environment_versions(registry_version),
        )


def options_from_constraints(constraints: list[Constraint]) -> dict[str, Any]:
    """The options a recommendation was made with, as far as its constraints tell (no top_k, no ids)."""
    names = {"license_class": "license_classes"}
    out: dict[str, Any] = {}
    for c in constraints:
        if c.name in ("candidates", "modality"):
            continue  # the shortlist's ids are not in the constraint; modality may be inferred
        out[names.get(c.name, c.name)] = c.value
    return out


def as_run(run_or_rec: StoredRun | Recommendation, *, options: dict[str, Any] | None = None) -> StoredRun:
    """A ``StoredRun`` for either kind of input (the report and ``compare`` read only this form)."""
    if isinstance(run_or_rec, StoredRun):
        return run_or_rec
    db = (options or {}).get("db")
    if run_or_rec.run_id:
        # Already stored (save_run): report exactly what `zoo report RUN_ID` would.
        try:
            return get_run(run_or_rec.run_id, db=db)
        except UsageError:
            pass  # stored in another database than the one given: build it from the object
    return StoredRun.from_recommendation(run_or_rec, options=options, registry_version=registry_version(db))


# ---------------------------------------------------------------------------------------------
# Versions


def registry_version(db: str | Path | None = None, *, registry: Registry | None = None) -> str:
    """What the ranking was computed from: the shipped catalog's ``catalog_version`` and, when the
    user database holds models of its own, their count and a hash of (count, latest indexed_at) —
    indexing changes it, re-indexing unchanged models does not (they keep their indexed_at)."""
    reg = registry or Registry(db=db)
    try:
        version = reg.meta("catalog_version", schema="catalog") or "no catalog"
        n, latest = 0, None  # no user database yet: nothing of the user's to count
        if "main" in reg._schemas():
            n, latest = reg.conn.execute("SELECT count(*), max(indexed_at) FROM main.models").fetchone()
        if n:
            stamp = hashlib.sha256(f"{n}|{latest}".encode()).hexdigest()[:8]
            version += f" + {n} user models ({stamp})"
        return version
    finally:
        if registry is None:
            reg.close()


def environment_versions(registry: str | None = None) -> dict[str, str]:
    """Versions that can change a result. Libraries are reported only when already imported, so
    storing a run never imports torch."""
    out = {"zoo": __version__, "registry": registry or "", "python": platform.python_version(),
           "platform": platform.platform(terse=True)}
    for name in ("numpy", "torch", "timm", "transformers", "sentence_transformers", "sklearn"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            out[name] = str(mod.__version__)
    return out


# ---------------------------------------------------------------------------------------------
# Writing and reading


@dataclass
class RunSummary:
    """One line of ``zoo runs list``."""

    id: str
    created_at: str
    task: str
    data: str | None
    data_hash: str | None
    top_id: str | None
    top_score: float | None
    candidates: int
    seconds: float | None
    zoo_version: str
    registry_version: str
    options: dict[str, Any]


def _new_id(now: datetime) -> str:
    # Seconds for people, then the fraction of the second in 16 us steps as 4 hex digits: ids sort in
    # time order and two runs in the same second still differ (a clash is bumped, see save_run).
    return now.strftime("%Y%m%d-%H%M%S") + f"-{now.microsecond >> 4:04x}"


def save_run(rec: Recommendation, *, options: dict[str, Any], db: str | Path | None = None) -> str:
    """Store ``rec`` as a run in the user database and return its id (also set on ``rec.run_id``).

    ``options``: the keyword arguments ``zoo.recommend`` was called with (minus the task), JSON-able;
    they are what ``zoo runs compare`` reports as changed inputs.
    """
    now = datetime.now(timezone.utc)
    existed = Registry(db=db).db_path.exists()
    with Registry(db=db, create=True) as reg:
        stamp_before = _state_stamp(reg) if existed else None
        version = registry_version(registry=reg)
        run = StoredRun.from_recommendation(rec, options=options, registry_version=version,
                                            created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        base = _new_id(now)
        with reg.transaction() as conn:
            run_id = base
            for bump in range(1, 1 << 16):
                if not conn.execute("SELECT 1 FROM main.runs WHERE id = ?", [run_id]).fetchone():
                    break
                run_id = f"{base[:-4]}{(int(base[-4:], 16) + bump) % (1 << 16):04x}"
            run.id = run_id
            best = run.best
            conn.execute(
                "INSERT INTO main.runs (id, created_at, task, data, data_hash, options, zoo_version, "
                "registry_version, top_id, seconds, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, run.created_at, run.task, run.data_path, run.data_hash, _dumps(run.options),
                 __version__, version, best.id if best else None, run.seconds, _dumps(run)],
            )
        if stamp_before is not None:
            _keep_warm_state(stamp_before, _state_stamp(reg))
    rec.run_id = run_id
    return run_id


def _state_stamp(reg: Registry) -> tuple:
    from zoo.recommender import _state_key

    return _state_key(reg, None)[:2]  # the files' part of the key; the embed model is the rest


def _keep_warm_state(before: tuple, after: tuple) -> None:
    """The recommender caches its loaded state keyed by the databases' mtimes, so writing a run would
    make the next ``recommend`` in this process reload everything (~1 s). A run touches only the
    ``runs`` table, which the state does not read: re-key the state that was current before the write."""
    from zoo.recommender import _STATE

    for key in [k for k in _STATE if k[:2] == before]:
        state = _STATE.pop(key)
        state.key = after + key[2:]
        _STATE[state.key] = state


def _open_existing(db: str | Path | None) -> Registry | None:
    """The user database for reading runs, or None when it does not exist yet (no runs stored)."""
    reg = Registry(db=db)
    state = reg._user_db_state()
    if state == "empty":
        reg.conn  # noqa: B018 - warns that the file is empty (0 bytes) rather than saying nothing
        reg.close()
    return reg if state == "present" else None


def list_runs(limit: int | None = 20, db: str | Path | None = None) -> list[RunSummary]:
    """Stored runs, newest first."""
    reg = _open_existing(db)
    if reg is None:
        return []
    with reg:
        sql = ("SELECT id, created_at, task, data, data_hash, top_id, seconds, zoo_version, registry_version, "
               "options, json_extract(result, '$.candidates[0].score') AS top_score, "
               "json_array_length(result, '$.candidates') AS n FROM main.runs ORDER BY id DESC")
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = reg.conn.execute(sql, params).fetchall()  # SQLite errors come out as zoo's (zoo.registry)
    return [RunSummary(id=r["id"], created_at=r["created_at"], task=r["task"], data=r["data"],
                       data_hash=r["data_hash"], top_id=r["top_id"], top_score=r["top_score"],
                       candidates=int(r["n"] or 0), seconds=r["seconds"], zoo_version=r["zoo_version"],
                       registry_version=r["registry_version"], options=json.loads(r["options"] or "{}"))
            for r in rows]


def get_run(run_id: str, db: str | Path | None = None) -> StoredRun:
    """The stored run ``run_id``: an exact id, a unique prefix of one, or ``latest``."""
    reg = _open_existing(db)
    if reg is None:
        raise UsageError(f"No runs are stored in {Registry(db=db).db_path} yet; every `zoo recommend` stores one "
                         "(then `zoo runs list`).")
    with reg:
        conn = reg.conn
        row = None
        if run_id.strip().lower() in LATEST:
            row = conn.execute("SELECT id, result FROM main.runs ORDER BY id DESC LIMIT 1").fetchone()
        else:
            row = conn.execute("SELECT id, result FROM main.runs WHERE id = ?", [run_id]).fetchone()
            if row is None and run_id:
                # A unique prefix is enough (ids start with the date, so people type the front).
                rows = conn.execute("SELECT id, result FROM main.runs WHERE substr(id, 1, ?) = ? LIMIT 2",
                                    [len(run_id), run_id]).fetchall()
                if len(rows) == 1:
                    row = rows[0]
                elif len(rows) > 1:
                    raise UsageError(f"Run id {run_id!r} is ambiguous; give more of it (`zoo runs list`).")
        if row is None:
            ids = [r[0] for r in conn.execute("SELECT id FROM main.runs ORDER BY id DESC")]
    if row is None:
        if not ids:
            raise UsageError(f"Unknown run id {run_id!r}: no runs are stored yet; every `zoo recommend` stores one.")
        close = difflib.get_close_matches(run_id, ids, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else f" The latest is {ids[0]}."
        raise UsageError(f"Unknown run id {run_id!r}.{hint} `zoo runs list` shows the stored runs.")
    run = StoredRun.from_dict(json.loads(row["result"]))
    run.id = row["id"]
    return run


# ---------------------------------------------------------------------------------------------
# Comparing two runs


@dataclass
class InputChange:
    """One input that differs between two runs."""

    what: str  # "task", "option max_params", "data hash", "registry version", ...
    a: Any
    b: Any


@dataclass
class RankChange:
    id: str
    change: str  # "moved", "entered", "left", "same"
    rank_a: int | None
    rank_b: int | None
    score_a: float | None
    score_b: float | None
    component: str | None = None  # for a model in both: the component whose weighted contribution changed most
    component_a: float | None = None
    component_b: float | None = None
    why: str = ""


@dataclass
class RunComparison:
    a: str
    b: str
    top_a: str | None
    top_b: str | None
    inputs: list[InputChange]
    ranking: list[RankChange]  # B's order, then the models that left
    summary: str

    @property
    def moved(self) -> list[RankChange]:
        return [r for r in self.ranking if r.change == "moved"]

    @property
    def entered(self) -> list[RankChange]:
        return [r for r in self.ranking if r.change == "entered"]

    @property
    def left(self) -> list[RankChange]:
        return [r for r in self.ranking if r.change == "left"]


def _unset(v: Any) -> bool:
    # An option left at its default and one not given at all mean the same run.
    return v is None or v is False or v == [] or v == {} or v == ""


def _input_changes(a: StoredRun, b: StoredRun) -> list[InputChange]:
    out: list[InputChange] = []

    def add(what: str, va: Any, vb: Any) -> None:
        if not (_unset(va) and _unset(vb)) and va != vb:
            out.append(InputChange(what, va, vb))

    add("task", a.task, b.task)
    ua, ub = a.understanding, b.understanding
    add("understood modality", ua.modality, ub.modality)
    add("understood domains", sorted(ua.domains), sorted(ub.domains))
    for key in sorted(set(a.options) | set(b.options)):
        add(f"option {key}", a.options.get(key), b.options.get(key))
    add("data", a.data_path, b.data_path)
    add("data hash", a.data_hash, b.data_hash)
    add("scores", a.scores, b.scores)
    add("weights", a.weights, b.weights)
    add("fusion", a.fusion, b.fusion)
    add("embedding model", a.embed_model, b.embed_model)
    add("registry version", a.versions.get("registry"), b.versions.get("registry"))
    add("zoo version", a.versions.get("zoo"), b.versions.get("zoo"))
    return out


def _failed_constraint(cand: StoredCandidate, run: StoredRun) -> str | None:
    """Which of ``run``'s constraints excludes ``cand`` (None when it passes them all)."""
    from zoo.recommender import _parse_candidates, apply_constraints

    o = run.options
    try:
        ids = _parse_candidates(o.get("candidates"))
        _, _, failed = apply_constraints(
            [cand.model_record()], modality=run.understanding.modality or cand.record.get("modality", "image"),
            license_classes=o.get("license_classes"), max_params=o.get("max_params"),
            max_latency_ms=o.get("max_latency_ms"), max_input_size=o.get("max_input_size"),
            available=bool(o.get("available")), candidate_ids=ids, allow_unknown=bool(o.get("allow_unknown")),
        )
    except (UsageError, KeyError, TypeError, ValueError):
        return None  # options this zoo cannot replay: say nothing rather than guess
    return failed.get(cand.id)


def contributions(run: StoredRun, cand: StoredCandidate) -> dict[str, float]:
    """How much each component adds to ``cand``'s final score. Description only: weight x component.
    With data (``run.fusion``): ``data`` and ``size_prior`` add their weight x their component and
    ``description`` the rest (the description score is min-max scaled over the scored candidates before it is weighted,
    so its share is read off the final score rather than recomputed)."""
    fusion = run.fusion or {}
    if "data" in fusion and "data" in cand.components:
        data = float(fusion["data"]) * cand.components["data"]
        size = float(fusion.get("size_prior", 0.0)) * cand.components.get("size_prior", 0.0)
        out = {"description": cand.score - data - size, "data": data}
        return {**out, "size_prior": size} if "size_prior" in fusion else out
    return {k: w * cand.components.get(k, 0.0) for k, w in run.weights.items()}


def _biggest_component(ra: StoredRun, ca: StoredCandidate, rb: StoredRun,
                       cb: StoredCandidate) -> tuple[str | None, float | None, float | None]:
    # Contributions, not raw components, because that is what moves the final score.
    xa, xb = contributions(ra, ca), contributions(rb, cb)
    best, delta = None, 0.0
    for k in sorted(set(xa) | set(xb)):
        d = xb.get(k, 0.0) - xa.get(k, 0.0)
        if abs(d) > abs(delta):
            best, delta = k, d
    if best is None:
        return None, None, None
    return best, ca.components.get(best), cb.components.get(best)


def compare_runs(a: str | StoredRun, b: str | StoredRun, db: str | Path | None = None) -> RunComparison:
    """What changed in the ranking from run ``a`` to run ``b``, and why."""
    ra = a if isinstance(a, StoredRun) else get_run(a, db)
    rb = b if isinstance(b, StoredRun) else get_run(b, db)
    inputs = _input_changes(ra, rb)
    in_a = {c.id: c for c in ra.candidates}
    in_b = {c.id: c for c in rb.candidates}
    ranking: list[RankChange] = []
    n_left = sum(1 for c in ra.candidates if c.id not in in_b)
    for cb in rb.candidates:
        ca = in_a.get(cb.id)
        if ca is None:
            failed = _failed_constraint(cb, ra)
            why = f"excluded in {ra.id} by {failed}" if failed else f"was below {ra.id}'s top {len(ra.candidates)}"
            if not failed and n_left:
                why += f"; moved up as {n_left} model(s) above it left"
            ranking.append(RankChange(cb.id, "entered", None, cb.rank, None, cb.score, why=why))
            continue
        comp, va, vb = _biggest_component(ra, ca, rb, cb)
        moved = ca.rank != cb.rank
        if abs(cb.score - ca.score) < 5e-4:
            why = f"score unchanged ({cb.score:.3f})" + ("; others moved around it" if moved else "")
        else:
            why = f"score {ca.score:.3f} -> {cb.score:.3f}"
            if comp is not None:
                why += f", mostly {comp} ({_fmt(va)} -> {_fmt(vb)})"
        ranking.append(RankChange(cb.id, "moved" if moved else "same", ca.rank, cb.rank, ca.score, cb.score,
                                  comp, va, vb, why))
    for ca in ra.candidates:
        if ca.id not in in_b:
            failed = _failed_constraint(ca, rb)
            why = f"excluded by {failed}" if failed else f"below {rb.id}'s top {len(rb.candidates)}"
            ranking.append(RankChange(ca.id, "left", ca.rank, None, ca.score, None, why=why))
    top_a = ra.best.id if ra.best else None
    top_b = rb.best.id if rb.best else None
    counts = {k: sum(r.change == k for r in ranking) for k in ("moved", "entered", "left")}
    parts = [f"Top pick unchanged: {top_a}." if top_a == top_b else f"Top pick changed: {top_a} -> {top_b}."]
    parts.append(f"{counts['moved']} moved, {counts['entered']} entered, {counts['left']} left.")
    if inputs:
        parts.append("Changed inputs: " + "; ".join(f"{i.what} ({_fmt(i.a)} -> {_fmt(i.b)})" for i in inputs) + ".")
    elif any(counts.values()):
        parts.append("No recorded input changed; the difference comes from something not recorded "
                     "(e.g. the user database's embeddings or files on disk).")
    else:
        parts.append("Same inputs, same ranking.")
    return RunComparison(a=ra.id or "a", b=rb.id or "b", top_a=top_a, top_b=top_b, inputs=inputs,
                         ranking=ranking, summary=" ".join(parts))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v)) or "-"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return str(v)
