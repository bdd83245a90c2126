"""What zoo says about a recommendation, in one place: how the modality was decided, what each constraint
left out, how many candidates a rank is out of, why a column is not in rank order. Every sentence is built
from the fields of what ran (a ``zoo.recommender.Recommendation`` or a stored ``zoo.runs.StoredRun``: both
have ``understanding``, ``constraints``, ``candidates``, ``considered``, ``ranked_among``, ``data`` and
``probe_top``), and the command line, ``zoo runs show`` and the review report all render them from here.
"""

from __future__ import annotations

from typing import Any

from zoo.format import fmt_params

# What a model that fails each constraint is, in words ("N larger models left out").
_FAILS = {
    "candidates": "models not in the shortlist",
    "modality": "models of other modalities",
    "license_class": "models under other licenses",
    "max_params": "larger models",
    "max_latency_ms": "slower models",
    "max_input_size": "models with larger inputs",
    "available": "models whose weights are not on this machine",
}
# ... and one whose value is unknown.
_UNKNOWN = {
    "license_class": "whose license is unknown",
    "max_params": "whose size is unknown",
    "max_latency_ms": "with no published CPU latency",
    "max_input_size": "whose input size is unknown",
}


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" if n != 1 else f"1 {what.replace('models', 'model', 1)}"


def constraint_head(c: Any, understanding: Any = None) -> str:
    """The constraint as asked: "modality image (from the data)", "at most 150M parameters"."""
    v = c.value
    if c.name == "modality":
        if understanding is None:
            return f"modality {v}"
        how = ("inferred, " if understanding.modality_source == "inferred" else "") + understanding.modality_how()
        return f"modality {v} ({how})"
    if c.name == "candidates":
        return f"shortlist of {v}"
    if c.name == "license_class":
        return "license class " + (" or ".join(v) if isinstance(v, (list, tuple)) else str(v))
    if c.name == "max_params":
        return f"at most {fmt_params(int(v)) if isinstance(v, (int, float)) else v} parameters"
    if c.name == "max_latency_ms":
        return f"CPU latency at most {v:g} ms" if isinstance(v, (int, float)) else f"CPU latency at most {v} ms"
    if c.name == "max_input_size":
        return f"input at most {v} px per side"
    if c.name == "available":
        return "weights on this machine"
    return f"{c.name}={v}"


def constraint_text(c: Any, understanding: Any = None) -> str:
    """One constraint and what it left out, readable on its own:
    "modality image (inferred, 97%): 106 models of other modalities left out"."""
    unknown = int(getattr(c, "excluded_unknown", 0) or 0)
    failed = int(c.excluded) - unknown
    parts = []
    if failed or not unknown:
        parts.append(_count(failed, _FAILS.get(c.name, "models")))
    if unknown:
        parts.append(f"{unknown:,} {_UNKNOWN.get(c.name, 'whose value is unknown')}")
    text = f"{constraint_head(c, understanding)}: {' and '.join(parts)} left out"
    named = list(getattr(c, "unknown_in_domain", None) or [])
    if named:
        total = int(getattr(c, "unknown_in_domain_count", 0) or len(named))
        more = f" and {total - len(named)} more" if total > len(named) else ""
        domains = " or ".join(getattr(understanding, "domains", None) or ()) or "this task's domain"
        text += (f" (of those, {total} {'are' if total != 1 else 'is'} pretrained for {domains}: "
                 f"{', '.join(named)}{more}; --allow-unknown keeps them)")
    elif unknown:
        text += " (--allow-unknown keeps those)"
    return text


def constraints_line(rec: Any) -> str | None:
    """``Constraints: ...`` for the command line: every constraint applied, the inferred modality included
    (it leaves models out too), each with what it left out."""
    if not rec.constraints:
        return None
    return "Constraints: " + "; ".join(constraint_text(c, rec.understanding) for c in rec.constraints) + "."


def ranked_among(rec: Any) -> int:
    """How many candidates the final ranking is over: those measured on the data when data was given, else
    every candidate that passed the constraints (each was scored on the description and priors)."""
    n = getattr(rec, "ranked_among", None)
    if n:
        return int(n)
    if rec.data:  # a run stored before ranked_among: the candidates it kept that were measured
        return sum(1 for c in rec.candidates if c.data_scores or c.data_seconds is not None)
    return int(rec.considered)


def rank_phrase(rec: Any, rank: int = 1) -> str:
    """ "rank 1 of 10 candidates scored on your data" / "rank 1 of 1,922 candidates"."""
    n = ranked_among(rec)
    if rec.data:
        return f"rank {rank} of {n:,} candidate{'s' if n != 1 else ''} scored on your data"
    return f"rank {rank} of {n:,} candidate{'s' if n != 1 else ''}"


def scope_sentence(rec: Any, seconds: float | None = None) -> str:
    """How many candidates were scored, and on what."""
    took = f" in {seconds:.2f} s" if seconds is not None else ""
    if not rec.data:
        return (f"{rec.considered:,} candidates passed the constraints and were scored on the task description and "
                f"priors{took}.")
    n = ranked_among(rec)
    shown = len(rec.candidates)
    grouped = sum(len(c.variants) for c in rec.candidates if c.data_scores or c.data_seconds is not None)
    also = ""
    if shown < n:
        also = f"; {shown} shown" + (
            f": {grouped} near-duplicate{'s' if grouped != 1 else ''} grouped under the best of {'their' if grouped != 1 else 'its'} "
            "group (the tags column; --no-group lists each)" if grouped else " (--top)")
    return (f"{rec.considered:,} candidates passed the constraints and were ranked on the task description; "
            f"{n:,} of them {'were' if n != 1 else 'was'} scored on your data ({rec.data.get('n', '?')} samples)"
            f"{took}{also}.")


def order_note(rec: Any) -> str | None:
    """Why the score column is not in rank order after a probe, or None when it is."""
    k = int(getattr(rec, "probe_top", 0) or 0)
    probed = [c for c in rec.candidates[:k] if c.probe]
    if not k or not probed:
        return None
    scores = [c.score for c in rec.candidates]
    in_order = all(a >= b for a, b in zip(scores, scores[1:], strict=False))
    # the probe was asked for (--probe-top), or run by zoo on tied leaders (data_rank.probe_tied_leaders sets a reason)
    why = ("the tied leaders, probed within --probe-budget" if (getattr(rec, "probe_summary", None) or {}).get("reason")
           else f"--probe-top {k}")
    return (f"Ranks 1-{min(k, len(rec.candidates))} are ordered by linear-probe accuracy on your data ({why}), "
            "not by score" + ("; the score column is the fused score from before the probe, so it is out of order "
                              "there" if not in_order else "; here the two orders agree") + ".")


# A model id inside a reason: the bare name, or it behind a source or organisation (``hf:org/name``,
# ``timm/name.tag``), as a whole token.
_BEFORE, _PREFIX, _AFTER = r"(?<![\w:/.\-])", r"(?:[\w.\-]+[:/])*", r"(?![\w:/\-]|\.\w)"


def group_reasons(reasons: dict[str, str]) -> list[tuple[str, list[str]]]:
    """``[(reason with the id written ID, [ids])]``, most shared first: candidates whose reasons differ only
    by their own id (with or without its source prefix, or as the Hub repo it names) share one entry."""
    import re

    groups: dict[str, list[str]] = {}
    for mid, why in reasons.items():
        name = mid.split(":", 1)[-1]
        template = re.sub(_BEFORE + _PREFIX + re.escape(name) + _AFTER, "ID", why) if len(name) >= 3 else why
        groups.setdefault(template, []).append(mid)
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))
