"""``zoo recommend`` and ``zoo explain``: rank backbones for a task, and say why (not) one."""

from __future__ import annotations

import click

from zoo.cli import options as opt
from zoo.cli.render import echo_json, fmt_params, table

COMPONENTS = ("domain_similarity", "domain_match", "quality", "popularity", "size_fit")
SHORT = {"domain_similarity": "sim", "domain_match": "match", "quality": "quality", "popularity": "pop",
         "size_fit": "size"}


def constraint_options(f):
    for deco in reversed([
        opt.modality_option,
        opt.license_class_option,
        opt.max_params_option,
        click.option("--max-latency-ms", type=float, help="At most this CPU latency (batch 1, timm's benchmark)."),
        click.option("--max-input-size", type=int, help="Input resolution at most this many pixels per side."),
        opt.available_option,
        click.option("--allow-unknown", is_flag=True,
                     help="Keep models whose license, size or latency is unknown instead of excluding them."),
        click.option("--candidates", help="Only rank these: ids separated by commas, or a file with one id per line."),
        opt.db_option,
    ]):
        f = deco(f)
    return f


def _api_kwargs(kw: dict) -> dict:
    return {k: kw[k] for k in ("modality", "max_params", "max_latency_ms", "max_input_size", "available",
                               "allow_unknown", "candidates", "db")} | {
        "license_classes": list(kw["license_classes"]) or None}


def _understanding_lines(rec) -> list[str]:
    u = rec.understanding
    lines = [f"Task: {rec.task}", f"Understood as: {u.summary()}"]
    applied = [c for c in rec.constraints if c.name != "modality" or u.modality_given]
    if applied:
        lines.append("Constraints: " + "; ".join(
            f"{c.name}={c.value} (-{c.excluded}" + (f", {c.excluded_unknown} unknown" if c.excluded_unknown else "")
            + ")" for c in applied))
    if rec.excluded_unknown:
        lines.append(f"{rec.excluded_unknown} models excluded only because a constrained value is unknown "
                     "(--allow-unknown keeps them).")
    return lines


@click.command()
@click.argument("task")
@constraint_options
@click.option("--top", "top_k", type=click.IntRange(min=1), default=10, show_default=True, help="How many choices.")
@click.option("--no-group", is_flag=True, help="List every pretrained tag instead of one per architecture.")
@opt.json_option
def recommend(task, top_k, no_group, as_json, **kw) -> None:
    """Rank backbones for a task described in words, with the reasons.

    \b
    Examples:
      zoo recommend "detect pneumonia in chest X-rays"
      zoo recommend "sentiment of tweets" --license-class permissive --max-params 150M --top 5
      zoo recommend "classify product photos" --candidates timm:resnet50.a1_in1k,timm:convnext_tiny.fb_in1k
    """
    from zoo.recommender import recommend as run

    rec = run(task, top_k=top_k, group=not no_group, **_api_kwargs(kw))
    if as_json:
        echo_json(rec)
        return
    for line in _understanding_lines(rec):
        click.echo(line)
    if not rec.candidates:
        click.echo(rec.empty_reason)
        raise SystemExit(1)
    rows = [
        [c.rank, c.id, f"{c.score:.3f}", *(f"{c.components[k]:.2f}" for k in COMPONENTS),
         fmt_params(c.record.params), c.record.license_class, f"+{len(c.variants)}" if c.variants else ""]
        for c in rec.candidates
    ]
    click.echo()
    click.echo(table(["#", "id", "score", *(SHORT[k] for k in COMPONENTS), "params", "license", "tags"], rows))
    click.echo()
    for c in rec.candidates[:3]:
        click.echo(f"{c.rank}. {c.id}: {c.reason}")
    click.echo(f"\n{rec.considered} candidates scored in {rec.seconds:.2f} s. "
               "Components: sim = task vs model card, match = pretraining domain, quality = upstream "
               "accuracy prior, pop = popularity, size = size fit. `zoo explain ID \"task\"` for any model.")


@click.command()
@click.argument("model_id")
@click.argument("task")
@constraint_options
@opt.json_option
def explain(model_id, task, as_json, **kw) -> None:
    """Why (not) this model for a task: its components next to the top pick's.

    \b
    Example:
      zoo explain timm:resnet50.a1_in1k "detect pneumonia in chest X-rays"
    """
    from zoo.recommender import explain as run

    cand, rec = run(model_id, task, **_api_kwargs(kw))
    best = rec.candidates[0] if rec.candidates else None
    if as_json:
        echo_json({"model": cand, "best": best, "understanding": rec.understanding,
                   "constraints": rec.constraints})
        return
    for line in _understanding_lines(rec):
        click.echo(line)
    rows = [[cand.id, f"{cand.score:.3f}", *(f"{cand.components[k]:.2f}" for k in COMPONENTS)]]
    if best is not None and best.id != cand.id:
        rows.insert(0, [best.id + " (top pick)", f"{best.score:.3f}", *(f"{best.components[k]:.2f}" for k in COMPONENTS)])
    click.echo()
    click.echo(table(["id", "score", *(SHORT[k] for k in COMPONENTS)], rows))
    click.echo()
    if cand.failed_constraint:
        click.echo(f"{cand.id} is excluded: {cand.failed_constraint}.")
    elif best is not None and best.id == cand.id:
        click.echo(f"{cand.id} is the top pick: {cand.reason}.")
    elif best is not None:
        gaps = sorted(COMPONENTS, key=lambda k: rec.weights[k] * (cand.components[k] - best.components[k]))
        worst = gaps[0]
        click.echo(f"{cand.id} scores {best.score - cand.score:.3f} below the top pick, mostly on {worst} "
                   f"({cand.components[worst]:.2f} vs {best.components[worst]:.2f}). It: {cand.reason}.")


def register(group: click.Group) -> None:
    group.add_command(recommend)
    group.add_command(explain)
