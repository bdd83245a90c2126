"""``zoo runs list|show|compare`` (the history of recommendations) and ``zoo report RUN_ID --out DIR``."""

from __future__ import annotations

import click

from zoo.cli import options as opt
from zoo.cli.render import TASK_WIDTH, clip, echo_json, fmt_params, table

RUN_ID_HELP = "RUN_ID is an id from `zoo runs list`, a unique prefix of one, or `latest`."


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


@click.group()
def runs() -> None:
    """The history of recommendations: every `zoo recommend` is stored as a run.

    \b
    Examples:
      zoo runs list
      zoo runs show latest
      zoo runs compare 20261122-181503-ab12 latest
    """


@runs.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs, newest first.")
@opt.db_option
@opt.json_option
def list_cmd(limit: int, db: str | None, as_json: bool) -> None:
    """List stored runs, newest first: id, time, task, top pick."""
    from zoo.runs import list_runs

    items = list_runs(limit=limit, db=db)
    if as_json:
        echo_json(items)
        return
    if not items:
        click.echo('No runs stored yet; every `zoo recommend "task"` stores one.')
        return
    rows = [[r.id, r.created_at.replace("T", " ").rstrip("Z"), r.task, r.top_id or "(none)", _f(r.top_score),
             r.candidates, "yes" if r.data else "-", r.registry_version] for r in items]
    click.echo(table(["id", "created (UTC)", "task", "top pick", "score", "n", "data", "registry"], rows, max_width=40))
    click.echo(f"\n`zoo runs show ID`, `zoo runs compare A B`, `zoo report ID --out DIR`. {RUN_ID_HELP}")


@runs.command("show")
@click.argument("run_id")
@opt.db_option
@opt.json_option
def show_cmd(run_id: str, db: str | None, as_json: bool) -> None:
    """Show one stored run: the task as understood, constraints, ranking, versions.

    \b
    RUN_ID is an id from `zoo runs list`, a unique prefix of one, or `latest`.
    """
    from zoo.cli.recommend_cmd import COMPONENTS, SHORT
    from zoo.report.analysis import probe_metric
    from zoo.runs import get_run
    from zoo.statements import constraints_line, order_note, scope_sentence

    run = get_run(run_id, db=db)
    if as_json:
        echo_json(run)
        return
    u = run.understanding
    click.echo(f"Run {run.id} ({run.created_at})")
    click.echo(f"Task: {clip(run.task, TASK_WIDTH)}")
    click.echo(f"Understood as: {u.summary()}")
    for line in u.notes():
        click.echo(line)
    line = constraints_line(run)
    if line:
        click.echo(line)
    if run.data:
        click.echo(f"Data: {run.data_path} (hash {run.data_hash}, {run.data.get('n', '?')} samples)")
    click.echo(f"Versions: zoo {run.versions.get('zoo', '?')}, registry {run.versions.get('registry') or '?'}; "
               f"{run.seconds:.2f} s")
    if not run.candidates:
        click.echo(run.empty_reason or "No candidate satisfied the constraints.")
        return
    comps = [k for k in COMPONENTS if any(k in c.components for c in run.candidates)]
    scores = list(dict.fromkeys(k for c in run.candidates for k in c.data_scores))
    probed = any(c.probe for c in run.candidates)
    rows = []
    for c in run.candidates:
        m = probe_metric(c.probe) if probed else None
        rows.append([c.rank, c.id, f"{c.score:.3f}", *(_f(c.components.get(k), 2) for k in comps),
                     *(_f(c.data_scores.get(s)) for s in scores), *([m.text() if m else "-"] if probed else []),
                     fmt_params(c.record.get("params")), c.record.get("license_class") or "?"])
    click.echo()
    click.echo(table(["#", "id", "score", *(SHORT[k] for k in comps), *scores, *(["probe"] if probed else []),
                      "params", "license"], rows))
    note = order_note(run)
    if note:
        click.echo(note)
    click.echo(scope_sentence(run))
    click.echo()
    for c in run.candidates[:3]:
        click.echo(f"{c.rank}. {c.id}: {c.reason}")
    measured = [c for c in run.candidates if c.weights_commit]
    if measured:
        click.echo("\nWeights measured (Hub commits):")
        for c in measured:
            repo = str(c.record.get("weights") or "").removeprefix("hf:").split("@", 1)[0]
            click.echo(f"  {c.id}: {repo}@{c.weights_commit}")
    click.echo(f"\nReport: zoo report {run.id} --out DIR")


@runs.command("compare")
@click.argument("a")
@click.argument("b")
@opt.db_option
@opt.json_option
def compare_cmd(a: str, b: str, db: str | None, as_json: bool) -> None:
    """What changed in the ranking from run A to run B, and why.

    \b
    Lists the inputs that differ (options, data hash, registry and zoo versions) and, per model,
    whether it moved, entered or left, with the score component that changed most.
    A and B are ids from `zoo runs list`, unique prefixes, or `latest`.
    """
    from zoo.runs import compare_runs

    cmp = compare_runs(a, b, db=db)
    if as_json:
        echo_json(cmp)
        return
    click.echo(f"A = {cmp.a}, B = {cmp.b}")
    click.echo(cmp.summary)
    if cmp.inputs:
        click.echo()
        click.echo(table(["input", "A", "B"], [[i.what, _text(i.a), _text(i.b)] for i in cmp.inputs]))
    changed = [r for r in cmp.ranking if r.change != "same"]
    click.echo()
    if not changed:
        click.echo("The ranking is the same.")
        return
    rows = [[r.id, r.change, f"{r.rank_a or '-'} -> {r.rank_b or '-'}", f"{_f(r.score_a)} -> {_f(r.score_b)}", r.why]
            for r in cmp.ranking]
    click.echo(table(["id", "change", "rank A -> B", "score A -> B", "why"], rows, max_width=60))


def _text(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "-"
    return str(v)


@click.command("report")
@click.argument("run_id")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for report.html, report.md and report.json (created if missing).")
@opt.db_option
@opt.json_option
def report(run_id: str, out_dir: str, db: str | None, as_json: bool) -> None:
    """Write the model-selection review of a stored run: HTML, Markdown and JSON.

    \b
    The HTML is self-contained (styles and figures inside), so it can be mailed or opened
    with no network. RUN_ID is an id from `zoo runs list`, a unique prefix of one, or `latest`.
    Example:
      zoo report latest --out review/
    """
    from zoo.report import write_report
    from zoo.runs import get_run

    paths = write_report(get_run(run_id, db=db), out_dir)
    if as_json:
        echo_json(paths)
        return
    click.echo(f"Wrote {paths.html}")
    click.echo(f"      {paths.markdown} (figures in {paths.markdown.parent / 'report_files'})")
    click.echo(f"      {paths.json}")


def register(group: click.Group) -> None:
    group.add_command(runs)
    group.add_command(report)
