"""``zoo score``: transferability scores of given models on the user's labelled sample."""

from __future__ import annotations

import click

from zoo.cli import options as opt
from zoo.cli.render import echo_extraction_plan, echo_json, table


@click.command()
@opt.data_option
@click.option("--models", required=True, help="Model ids separated by commas.")
@click.option("--scores", help="Scorers separated by commas (default: logme,hscore,shrinkage_hscore,transrate,knn).")
@click.option("--max-samples", type=click.IntRange(min=2), default=300, show_default=True,
              help="At most this many samples per class (stratified).")
@opt.column_options
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where features are extracted.")
@opt.fetch_options
@opt.executor_option
@opt.json_option
@opt.db_option
def score(data, models, scores, max_samples, text_column, label_column, device, as_json, db, **kw) -> None:
    """Score models on your labelled sample: features (cached on disk) and transferability scores.

    \b
    Example:
      zoo score --data ./my_images --models local:cifar_resnet20.c10,local:mobilenet_v2.tv_in1k
    """
    from zoo.scoring import score as run

    ids = [m.strip() for m in models.split(",") if m.strip()]
    names = [s.strip() for s in scores.split(",")] if scores else None

    rep = run(data, ids, scores=names, max_samples=max_samples, text_column=text_column, label_column=label_column,
              device=device, db=db, progress=lambda mid: click.echo(f"scoring {mid} …", err=True),
              on_plan=None if as_json else echo_extraction_plan, executor=kw.pop("executor", None),
              **opt.fetch_kwargs(kw))
    if as_json:
        echo_json(rep)
        return
    click.echo(f"Data: {rep.data} ({rep.n} samples, {len(rep.classes)} classes, {rep.skipped} skipped; "
               f"hash {rep.data_hash})")
    rows = []
    for m in rep.models:
        if m.error:
            rows.append([m.id, *["-"] * len(rep.scores), "-", "-", m.error[:60]])
            continue
        rows.append([m.id, *(_cell(m, s) for s in rep.scores), f"{m.extract_seconds:.1f}",
                     "yes" if m.cached else "no", f"{m.feature_dim}-d on {m.device}{_layers(m.layers)}"])
    click.echo(table(["model", *rep.scores, "extract s", "cached", "features"], rows, max_width=60))
    notes = [f"{m.id}, {s}: {why}" for m in rep.models for s, why in {**m.skipped, **m.not_informative}.items()
             if s in rep.scores]
    if notes:
        click.echo("\nNo value (n/i: not informative on this sample, n/a: does not apply):")
        for line in notes:
            click.echo(f"  {line}")
    click.echo(f"\n{rep.seconds:.1f} s in all. Scores are comparable across models for the same data and scorer; "
               "higher is better.")


def register(group: click.Group) -> None:
    group.add_command(score)


def _layers(layers: list[int] | None) -> str:
    """``, mean of layers 1-6`` for a transformer text encoder's layer-mean features (zoo.backbones.layers)."""
    if not layers:
        return ""
    from zoo.backbones.layers import describe

    return f", {describe(layers)}"


def _cell(m, s: str) -> str:
    if s in m.scores:
        return f"{m.scores[s]:.3f}"
    return "n/i" if s in m.not_informative else "n/a"
