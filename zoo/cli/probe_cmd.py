"""``zoo probe``: measured accuracy (linear probe or short fine-tune) of given models on the user's data."""

from __future__ import annotations

from typing import Any

import click

from zoo.cli import options as opt
from zoo.cli.render import echo_json, fmt_params, table


@click.command()
@opt.data_option
@click.option("--models", required=True, help="Model ids separated by commas.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Stratified outer cross-validation folds.")
@click.option("--min-folds", type=click.IntRange(min=2),
              help="Fall back to as few as this many folds when a class has fewer samples than --folds "
                   "(without it, that is an error).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the fold assignment (and of the fine-tune).")
@click.option("--grid", default="standard", show_default=True,
              help="Regularisation grid for the inner cross-validation: standard (C = 1e-4 … 1e2, 7 values), "
                   "coarse (1e-3 … 1, 4), wide (1e-6 … 1e4, 11).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where features are extracted and the probe runs.")
@click.option("--max-samples", type=click.IntRange(min=2), default=300, show_default=True,
              help="At most this many samples per class (stratified; the same sample as `zoo score`).")
@opt.column_options
@click.option("--force", is_flag=True,
              help="Probe again even when the registry has this model, data and settings (features still come "
                   "from the cache; `zoo cache clear` drops those).")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fine-tune the last block + a new head for this many epochs instead of a linear probe.")
@click.option("--score", "score_name",
              help="Also compute this transferability score (e.g. logme) and report its rank agreement with the probe.")
@opt.fetch_options
@opt.executor_option
@opt.json_option
@opt.db_option
@click.pass_context
def probe(ctx: click.Context, data: str, models: str, folds: int, min_folds: int | None, seed: int, grid: str,
          device: str, max_samples: int, text_column: str, label_column: str, force: bool, finetune_epochs: int,
          score_name: str | None, as_json: bool, db: str | None, **kw: Any) -> None:
    """Measure each model's accuracy on your labelled sample: a linear probe on its features.

    Multinomial logistic regression on the features (cached, shared with `zoo score`), its
    regularisation chosen by inner cross-validation, evaluated by stratified K-fold; accuracy and
    macro-F1 with a 95% interval over folds. Results are stored in the registry and reused.

    \b
    Examples:
      zoo probe --data ./my_images --models local:cifar_resnet20.c10,local:mobilenet_v2.tv_in1k
      zoo probe --data reviews.csv --models local:all-MiniLM-L6-v2 --folds 3 --score logme --json
      zoo probe --data ./my_images --models local:cifar_resnet20.c10 --finetune-epochs 2
    """
    from zoo.probe import probe as run

    ids = [m.strip() for m in models.split(",") if m.strip()]
    rep = run(data, ids, folds=folds, seed=seed, device=device, force=force, finetune_epochs=finetune_epochs,
              max_samples=max_samples, grid=grid, min_folds=min_folds, text_column=text_column,
              label_column=label_column, db=db, score=score_name,
              progress=lambda line: click.echo(line, err=True), executor=kw.pop("executor", None),
              **opt.fetch_kwargs(kw))
    if as_json:
        echo_json(rep)
    else:
        _render(rep)
    if not rep.results:  # every model failed: the reasons are above
        ctx.exit(1)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _source(r: Any) -> str:
    if r.from_registry:
        return "from registry"
    if r.features_cached is None:
        return "computed"
    return "computed, features cached" if r.features_cached else f"computed, extracted {r.extract_seconds:.1f} s"


def _render(rep: Any) -> None:
    from zoo.probe import FINETUNE, describe_grid

    s = rep.settings
    click.echo(f"Data: {rep.data} ({rep.n} samples, {len(rep.classes)} classes; hash {rep.data_hash})")
    inner = next((r.inner_folds for r in rep.results if r.inner_folds), s.get("inner_folds"))
    if s["method"] == FINETUNE:
        epochs = f"{s['epochs']} epoch" + ("" if s["epochs"] == 1 else "s")
        click.echo(f"Method: fine-tune of the last block + a new head, {epochs}; {s['folds']}-fold "
                   f"stratified outer CV, seed {s['seed']}.")
    else:
        click.echo(f"Method: linear probe (multinomial logistic regression on features standardised inside each "
                   f"fold); C by {inner}-fold inner CV from grid {describe_grid(s['grid'], s['grid_values'])}; "
                   f"{s['folds']}-fold stratified outer CV, seed {s['seed']}.")
    click.echo("Intervals: 95% t-interval over the outer folds.")
    rows = []
    for r in rep.results:
        lo, hi = r.accuracy_ci
        c_col = ",".join(f"{c:g}" for c in r.chosen_c) or "-"
        rows.append([r.model_id, _pct(r.accuracy), f"[{_pct(lo)}, {_pct(hi)}]",
                     f"{_pct(r.macro_f1)} [{_pct(r.macro_f1_ci[0])}, {_pct(r.macro_f1_ci[1])}]",
                     c_col, fmt_params(r.params), f"{r.seconds:.1f}", r.device, _source(r)])
    for mid in rep.failed:
        rows.append([mid, "-", "-", "-", "-", "-", "-", "-", "failed (below)"])
    click.echo(table(["model", "accuracy %", "95% interval", "macro-F1 % [95%]", "C per fold", "params", "seconds",
                      "device", "source"], rows, max_width=60))
    if s["method"] == FINETUNE:
        for r in rep.results:
            if r.note:
                click.echo(f"  {r.model_id}: {r.note}")
    if rep.best:
        click.echo(f"\nBest: {rep.best}.")
        others = [t for t in rep.tied_with_best if t != rep.best]
        click.echo("Tied with the best (intervals overlap): " + (", ".join(others) if others else "none") + ".")
        click.echo(f"Practical pick: {rep.practical_pick}: {rep.practical_reason}.")
    a = rep.score_agreement
    if a is not None:
        if a.spearman is None:
            click.echo(f"Agreement with {a.score}: not defined ({a.n} models with values; a rank correlation needs "
                       "3 or more, and values that differ).")
        else:
            click.echo(f"Agreement with {a.score}: Spearman {a.spearman:.2f}, Kendall {a.kendall:.2f} "
                       f"over {a.n} models.")
    for mid, why in rep.failed.items():
        click.echo(f"Failed: {mid}: {why}")
    for note in rep.notes:
        click.echo(f"Note: {note}")
    click.echo(f"\n{rep.seconds:.1f} s in all.")


def register(group: click.Group) -> None:
    group.add_command(probe)
