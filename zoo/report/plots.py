"""The report's figures as PNG bytes. matplotlib is imported here only, and through its object API
(``Figure`` + the Agg canvas): no pyplot global state, no display, the same pixels on every machine."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

PICK = "#1f5fbf"
OTHER = "#8a96aa"
FRONT = "#d9730d"
TIED = "#4c9a5b"
DPI = 110


def short(model_id: str, n: int = 38) -> str:
    return model_id if len(model_id) <= n else model_id[: n - 1] + "…"


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def components_plot(rows: list[tuple[str, dict[str, float]]], legend: dict[str, str]) -> bytes:
    """Stacked horizontal bars: each candidate's final score split into what each component adds
    (``rows``: id -> {component: contribution}; ``legend``: component -> its label)."""
    fig = _figure(8.5, 0.42 * len(rows) + 1.4)
    ax = fig.add_subplot()
    labels = [short(i) for i, _ in rows][::-1]
    left = [0.0] * len(rows)
    palette = ["#1f5fbf", "#4c9a5b", "#d9730d", "#9b59b6", "#c0392b", "#16a085", "#7f8c8d", "#f1c40f"]
    for k, (name, label) in enumerate(legend.items()):
        vals = [max(0.0, parts.get(name, 0.0)) for _, parts in rows][::-1]
        ax.barh(labels, vals, left=left, color=palette[k % len(palette)], label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("score = sum of what each component adds")
    ax.set_xlim(0, max([1e-9, *left]) * 1.05)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(3, len(legend)), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def probe_plot(rows: list[tuple[str, float, float | None, float | None, str]]) -> bytes:
    """Probe accuracy (percent) with its interval per candidate; ``kind`` is pick / tied / other."""
    fig = _figure(8.5, 0.45 * len(rows) + 1.2)
    ax = fig.add_subplot()
    colors = {"pick": PICK, "tied": TIED, "other": OTHER}
    for y, (_label, v, lo, hi, kind) in enumerate(reversed(rows)):
        err = None if lo is None or hi is None else [[v - lo], [hi - v]]
        ax.errorbar([v], [y], xerr=err, fmt="o", color=colors.get(kind, OTHER), capsize=4, markersize=7, lw=2)
        ax.annotate(f"{v:.1f}", (v, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [short(r[0]) for r in reversed(rows)])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("probe accuracy (%) with interval")
    ax.grid(axis="x", alpha=0.3)
    handles = [ax.plot([], [], "o", color=c)[0] for c in (PICK, TIED, OTHER)]
    ax.legend(handles, ["recommendation", "statistically tied", "other"], fontsize=8, loc="lower center",
              bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    return _png(fig)


def pareto_plot(points: list[tuple[str, float, float]], front: list[str], pick: str | None, ylabel: str) -> bytes:
    """Value against parameter count (log), the Pareto front (no smaller model does better) joined."""
    fig = _figure(8.5, 4.6)
    ax = fig.add_subplot()
    on_front = set(front)
    for pid, x, y in points:
        color = FRONT if pid in on_front else OTHER
        ax.scatter([x], [y], s=80 if pid == pick else 40, color=color, edgecolors=PICK if pid == pick else "none",
                   linewidths=2, zorder=3)
        ax.annotate(short(pid, 28), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    by_id = {p[0]: p for p in points}
    fx = [by_id[i][1] for i in front]
    fy = [by_id[i][2] for i in front]
    if len(front) > 1:
        ax.step(fx, fy, where="post", color=FRONT, lw=1.5, alpha=0.8, zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    handles = [ax.plot([], [], "o", color=c)[0] for c in (FRONT, OTHER)]
    handles.append(ax.plot([], [], "o", mfc="white", mec=PICK, mew=2)[0])
    ax.legend(handles, ["Pareto front", "dominated", "recommendation"], fontsize=8, loc="best")
    return _png(fig)


def agreement_plot(series: dict[str, dict[str, Any]]) -> bytes:
    """Each score, min-max scaled over the probed candidates, against probe accuracy; rho in the legend."""
    fig = _figure(8.5, 4.6)
    ax = fig.add_subplot()
    markers = "osD^v<>PX*"
    for k, (name, s) in enumerate(series.items()):
        xs = [p[1] for p in s["points"]]
        lo, hi = min(xs), max(xs)
        scaled = [(x - lo) / (hi - lo) if hi > lo else 0.5 for x in xs]
        rho = s.get("spearman")
        label = f"{name} (Spearman {rho:+.2f})" if rho is not None else f"{name} (rho n/a)"
        ax.scatter(scaled, [p[2] for p in s["points"]], marker=markers[k % len(markers)], s=45, label=label,
                   alpha=0.85)
    ax.set_xlabel("score, min-max scaled over the probed candidates")
    ax.set_ylabel("probe accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def class_counts_plot(counts: dict[str, int], limit: int = 30) -> bytes:
    items = list(counts.items())[:limit]
    fig = _figure(8.5, 0.28 * len(items) + 1.2)
    ax = fig.add_subplot()
    ax.barh([short(str(k), 30) for k, _ in items][::-1], [v for _, v in items][::-1], color=PICK)
    ax.set_xlabel("samples used")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def thumbnail(path: str | Path, size: int = 112) -> bytes:
    """A small PNG of an image file (RGB, aspect kept)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return buf.getvalue()
