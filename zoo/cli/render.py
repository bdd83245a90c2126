"""Rendering: tables for people, JSON for programs. Commands never format data themselves."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import click

from zoo.format import fmt_params as fmt_params  # re-exported: the commands import it from here


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(to_jsonable(obj), indent=2, sort_keys=False, default=str))


def echo_extraction_plan(plan: Sequence[Any]) -> None:
    """Said before any extraction (``zoo score``, ``zoo recommend --data``): what must be downloaded,
    how many models need features, a rough time estimate, and where the data does not fit a model."""
    from zoo.fetching import download_rate, fmt_bytes

    runnable = [p for p in plan if not getattr(p, "error", None)]
    todo = [p for p in runnable if not p.cached]
    total = sum(p.estimate_seconds for p in todo)
    fetch = [p for p in runnable if getattr(p, "download_bytes", 0)]
    if fetch:
        nbytes = sum(p.download_bytes for p in fetch)
        secs = sum(p.download_estimate_seconds for p in fetch)
        click.echo(f"Downloading {fmt_bytes(nbytes)} for {len(fetch)} model(s) first: about {secs:.0f} s at "
                   f"{download_rate()[1]}.", err=True)
    basis = _estimate_basis(todo)
    click.echo(f"Extracting features for {len(todo)} of {len(runnable)} models ({len(runnable) - len(todo)} cached)"
               + (f"; estimate {_secs(total)} ({basis})." if todo else "."), err=True)
    for p in plan:
        if getattr(p, "error", None):
            click.echo(f"  not scored: {p.id}: {p.error}", err=True)
            continue
        if not p.cached and getattr(p, "estimate_detail", ""):
            click.echo(f"  estimate: {p.id}: {_secs(p.estimate_seconds)}, {p.estimate_detail}", err=True)
        for w in p.warnings:
            click.echo(f"  warning: {p.id}: {w}", err=True)


def _secs(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def _estimate_basis(todo: Sequence[Any]) -> str:
    """How the estimates were made, counted: "2 from their own measured speed here; 1 from a cost model ..."."""
    from zoo.estimates import Estimate, summary

    return summary([Estimate(p.estimate_seconds, getattr(p, "estimate_basis", "") or "default", "",
                             getattr(p, "estimate_import_seconds", 0.0), list(getattr(p, "estimate_imports", [])))
                    for p in todo])


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v) or "-"
    return str(v)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 48) -> str:
    cells = [[str(h) for h in headers]] + [[clip(str(c), max_width) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


TASK_WIDTH = 300  # a pasted project brief is echoed only this far; the stored run keeps all of it


def clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
