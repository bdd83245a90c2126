"""What the report derives from a run: probe intervals (read tolerantly: a probe result may be a
dataclass or a dict, with ``accuracy_lo``/``accuracy_hi`` or a ``ci`` pair), license and size flags,
the statistically tied alternatives, the Pareto front of quality against size, the agreement of the
scores with the probe, and the commands that reproduce or extend the run."""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass
from typing import Any

from zoo.runs import StoredCandidate, StoredRun


def get(obj: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` that ``obj`` (dict or object) has and is not None."""
    if obj is None:
        return default
    for n in names:
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if v is not None:
            return v
    return default


def as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        from zoo.runs import jsonable

        return jsonable(obj)
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else {}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class Interval:
    value: float
    lo: float | None = None
    hi: float | None = None

    @property
    def scale(self) -> float:
        # Probe metrics come as fractions (0.91) or percents (91.0); show both as percents.
        return 100.0 if max(abs(x) for x in (self.value, self.lo or 0.0, self.hi or 0.0)) <= 1.0 else 1.0

    def pct(self) -> tuple[float, float | None, float | None]:
        s = self.scale
        return (self.value * s, None if self.lo is None else self.lo * s, None if self.hi is None else self.hi * s)

    def text(self) -> str:
        v, lo, hi = self.pct()
        if lo is None or hi is None:
            return f"{v:.1f}%"
        return f"{v:.1f}% [{lo:.1f}, {hi:.1f}]"

    def overlaps(self, other: Interval) -> bool:
        if None in (self.lo, self.hi, other.lo, other.hi):
            return False
        return self.lo <= other.hi and other.lo <= self.hi  # type: ignore[operator]


def probe_metric(probe: Any, metric: str = "accuracy") -> Interval | None:
    """``metric`` with its interval from a probe result, whatever shape it has."""
    raw = get(probe, metric, *(("acc", "mean_accuracy") if metric == "accuracy" else ()))
    lo = _num(get(probe, f"{metric}_lo", f"{metric}_low", f"{metric}_lower"))
    hi = _num(get(probe, f"{metric}_hi", f"{metric}_high", f"{metric}_upper"))
    if isinstance(raw, dict):  # {"mean": .9, "lo": .88, "hi": .93}
        lo = _num(get(raw, "lo", "low", "lower")) if lo is None else lo
        hi = _num(get(raw, "hi", "high", "upper")) if hi is None else hi
        raw = get(raw, "mean", "value", "estimate")
    value = _num(raw)
    if value is None:
        return None
    if lo is None or hi is None:
        ci = get(probe, f"{metric}_ci", *(("ci", "interval") if metric == "accuracy" else ()))
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            lo, hi = _num(ci[0]), _num(ci[1])
    return Interval(value, lo, hi)


# ---------------------------------------------------------------------------------------------
# Flags


def flags_for(c: StoredCandidate, options: dict[str, Any]) -> list[str]:
    """What a review should notice about a candidate before building on it."""
    r = c.record
    out: list[str] = []
    lc, lic = r.get("license_class"), r.get("license")
    if lc == "non-commercial":
        out.append(f"non-commercial license ({lic or 'not stated'})")
    elif lc == "restricted":
        out.append(f"restricted license: custom terms ({lic or 'not stated'})")
    elif lc == "unknown" or not lc:
        out.append("unknown license" + (f" ({lic})" if lic else ": none stated"))
    params, budget = r.get("params"), options.get("max_params")
    if params is None:
        out.append("parameter count unknown")
    elif budget and params > budget:
        out.append(f"over size budget ({params / 1e6:.1f}M > {budget / 1e6:.1f}M params)")
    lat, lat_budget = r.get("cpu_latency_ms"), options.get("max_latency_ms")
    if lat_budget and lat is None:
        out.append("CPU latency unknown")
    elif lat_budget and lat > lat_budget:
        out.append(f"over latency budget ({lat:.1f} > {lat_budget:g} ms)")
    if r.get("gated"):
        out.append("gated weights: accept the terms on the model page first")
    return out  # data-fit warnings are not license or size flags: the report files them under "Data fit"


# ---------------------------------------------------------------------------------------------
# Ties


@dataclass
class Ties:
    pick: StoredCandidate | None
    tied: list[tuple[StoredCandidate, str]]  # (candidate, why it counts as tied)
    method: str  # how ties were judged, or why they could not be
    judged: bool  # False without probe intervals
    best_probe: StoredCandidate | None = None  # the highest probe accuracy, when it is not the pick


def ties(run: StoredRun) -> Ties:
    """Alternatives statistically indistinguishable from the pick: their probe accuracy intervals
    overlap the pick's (or the probe marked them tied). Without a probe there is no statistic to
    judge a tie by, and the report says so instead of guessing from the description score."""
    pick = run.best
    if pick is None:
        return Ties(None, [], "no candidate", False)
    probed = [(c, probe_metric(c.probe)) for c in run.candidates if c.probe]
    probed = [(c, m) for c, m in probed if m is not None]
    best_probe = max(probed, key=lambda t: t[1].value)[0] if probed else None
    mine = probe_metric(pick.probe)
    if mine is None or mine.lo is None or mine.hi is None:
        why = ("the pick was not probed" if probed else "no probe was run")
        return Ties(pick, [], f"not judged: {why}", False,
                    best_probe if best_probe is not None and best_probe.id != pick.id else None)
    tied = []
    for c, m in probed:
        if c.id == pick.id:
            continue
        marked = get(c.probe, "tied_with_best", "tied")
        if marked is True or (marked is None and m.overlaps(mine)):
            tied.append((c, f"probe accuracy {m.text()} overlaps the pick's {mine.text()}"))
    return Ties(pick, tied, "probe accuracy intervals overlap the pick's", True,
                best_probe if best_probe is not None and best_probe.id != pick.id else None)


# ---------------------------------------------------------------------------------------------
# Pareto front and agreement


def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Ids not dominated by another point with fewer (or equal) parameters and a higher (or equal)
    value; ``points`` are (id, params, value). Returned smallest first."""
    front, best = [], -math.inf
    for pid, _params, value in sorted(points, key=lambda p: (p[1], -p[2], p[0])):
        if value > best:
            front.append(pid)
            best = value
    return front


def spearman(x: list[float], y: list[float]) -> float | None:
    """Rank correlation (ties get their average rank); None when either side is constant or n < 3."""
    import numpy as np
    from scipy.stats import rankdata

    if len(x) < 3:
        return None
    rx, ry = rankdata(x), rankdata(y)
    if np.std(rx) == 0 or np.std(ry) == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def agreement(run: StoredRun) -> dict[str, dict[str, Any]]:
    """Per score (each data score, and the fused ``score``): the probed candidates' values against
    their probe accuracy, and the rank correlation between them."""
    rows = [(c, probe_metric(c.probe)) for c in run.candidates]
    rows = [(c, m) for c, m in rows if m is not None]
    names = list(dict.fromkeys([*run.scores, *(k for c, _ in rows for k in c.data_scores)]))
    out: dict[str, dict[str, Any]] = {}
    for name in [*names, "score"]:
        pts = []
        for c, m in rows:
            v = c.score if name == "score" else _num(c.data_scores.get(name))
            if v is not None:
                pts.append((c.id, v, m.pct()[0]))
        if len(pts) >= 2:
            out[name] = {"points": pts, "spearman": spearman([p[1] for p in pts], [p[2] for p in pts])}
    return out


# ---------------------------------------------------------------------------------------------
# Seeds, devices, commands


def seeds_and_devices(run: StoredRun) -> tuple[list[Any], list[str]]:
    """Every seed and device the run recorded: options, the data summary, probe results, the plan."""
    sources = [run.options, run.data or {}] + [c.probe for c in run.candidates if c.probe] + [
        c.plan for c in run.candidates if c.plan]
    seeds = list(dict.fromkeys(s for s in (get(o, "seed") for o in sources) if s is not None))
    # "auto" is what was asked for, not a device: the probe results say which one ran.
    devices = list(dict.fromkeys(str(d) for d in (get(o, "device") for o in sources) if d and d != "auto"))
    return seeds, devices


_FLAG_NAMES = {"license_classes": "--license-class", "top_k": "--top", "group": "--no-group"}
# API-only keywords (no CLI flag) and ones that say how to run rather than what to compute.
_NOT_CLI = {"db", "embed_model", "weights", "seed", "progress", "on_plan", "data_weight", "fused_scores"}
_COMMA_LISTS = {"candidates", "scores"}  # the CLI takes these as one comma-separated value
_DEFAULTS = {"top_k": 10, "max_samples": 300, "score_top": 10, "text_column": "text", "label_column": "label",
             "device": "auto"}
_ORDER = ["data", "modality", "license_classes", "max_params", "max_latency_ms", "max_input_size", "available",
          "allow_unknown", "candidates", "scores", "probe_top", "top_k", "group"]


def recommend_command(run: StoredRun, **override: Any) -> str:
    """The ``zoo recommend`` command line for the run's options (``override`` adds or replaces some),
    in the CLI's names: the API's keyword ``max_params`` is ``--max-params``."""
    opts = {**run.options, **override}
    if opts.get("probe_top") in (None, 0) and run.probe_top:
        opts["probe_top"] = run.probe_top
    args = ["zoo", "recommend", run.task]
    for key in sorted(opts, key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k)):
        v = opts[key]
        if key == "group":
            if v is False:
                args.append("--no-group")
            continue
        if key in _NOT_CLI or v is None or v is False or v == [] or v == "" or (key == "probe_top" and not v):
            continue
        if key in _DEFAULTS and v == _DEFAULTS[key]:
            continue
        flag = _FLAG_NAMES.get(key, "--" + key.replace("_", "-"))
        if v is True:
            args.append(flag)
        elif isinstance(v, (list, tuple)):
            if key in _COMMA_LISTS:
                args += [flag, ",".join(map(str, v))]
            else:
                for x in v:
                    args += [flag, str(x)]
        else:
            args += [flag, str(v)]
    return " ".join(shlex.quote(a) for a in args)


def api_call(run: StoredRun, model_id: str) -> str:
    """``zoo.recommend(...)`` pinned to ``model_id`` through ``candidates``, so the snippet loads the
    chosen backbone even after the registry has changed."""
    return f"rec = zoo.recommend({run.task!r}, candidates=[{model_id!r}])"
