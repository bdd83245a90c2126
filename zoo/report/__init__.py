"""The model-selection review report: one document for the meeting where a team picks its backbone.

``write_report(run_or_rec, out_dir)`` writes, from a ``Recommendation`` or a stored run
(``zoo.runs.get_run``):

- ``report.html``: self-contained (inline CSS, figures as base64 PNG data URIs, a content security
  policy that forbids any fetch), readable with no network;
- ``report.md``: the same blocks as Markdown, figures as files in ``report_files/`` beside it;
- ``report.json``: the run itself plus what the report derived (flags, ties, Pareto front,
  agreement), for programs.

matplotlib is imported only while figures are drawn, never by ``import zoo.report``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError, ZooError
from zoo.runs import StoredRun, as_run, jsonable

if TYPE_CHECKING:
    from zoo.recommender import Recommendation

FILES_DIR = "report_files"
JSON_FORMAT = 1


@dataclass
class ReportPaths:
    """Where :func:`write_report` wrote: the ``directory``, ``html`` (self-contained), ``markdown``, ``json``,
    and the Markdown's ``figures`` (PNG files beside it)."""

    directory: Path
    html: Path
    markdown: Path
    json: Path
    figures: list[Path] = field(default_factory=list)  # the PNGs beside the Markdown


def write_report(
    run_or_rec: StoredRun | Recommendation,
    out_dir: str | Path,
    *,
    options: dict[str, Any] | None = None,
) -> ReportPaths:
    """Write ``report.html``, ``report.md`` and ``report.json`` (and the Markdown's figures) into
    ``out_dir``, creating it; existing report files there are replaced.

    ``options`` (the keyword arguments given to ``zoo.recommend``) is used only for a
    ``Recommendation`` that was not stored; a stored run carries its own.
    """
    from zoo.report.content import build
    from zoo.report.doc import to_html, to_markdown

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory for the report (it is created if missing).")
    run = as_run(run_or_rec, options=options)
    built = build(run)
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = out / FILES_DIR
        files.mkdir(exist_ok=True)
        figures = []
        for img in built.doc.images():
            p = files / img.name
            p.write_bytes(img.png)
            figures.append(p)
        paths = ReportPaths(out, out / "report.html", out / "report.md", out / "report.json", figures)
        paths.html.write_text(to_html(built.doc), encoding="utf-8")
        paths.markdown.write_text(to_markdown(built.doc, FILES_DIR), encoding="utf-8")
        payload = {
            "format": JSON_FORMAT,
            "title": built.doc.title,
            "sections": [s.title for s in built.doc.sections],
            "figures": [f"{FILES_DIR}/{p.name}" for p in figures],
            "derived": jsonable(built.summary),
            "run": run.to_dict(),
        }
        paths.json.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise ZooError(f"Cannot write the report to {out}: {e.strerror or e}. Choose another --out directory.") from None
    return paths


__all__ = ["ReportPaths", "write_report"]
