"""``zoo plan``: how to adapt one model to the user's data (strategy, learning rates, risks, the rules behind them)."""

from __future__ import annotations

import click

from zoo.cli import options as opt
from zoo.cli.render import echo_json, table


def _lr(v: float | None) -> str:
    return "-" if not v else f"{v:g}"


def _signal(v: object) -> str:
    if v is None:
        return "not measured"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


@click.command()
@opt.data_option
@click.option("--model", "model_id", required=True, help="The model to plan for (an id from zoo search / recommend).")
@opt.column_options
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the domain shift is measured.")
@opt.fetch_options
@opt.json_option
@opt.db_option
def plan(data, model_id, text_column, label_column, device, as_json, db, **kw) -> None:
    """Plan the transfer of MODEL to your data: linear probe, partial or full fine-tune, or LoRA.

    The plan comes from your data budget (examples per class) and the measured domain shift, through
    rules documented in zoo/plan_rules.py; it lists the rules that fired and the signals behind them.

    \b
    Example:
      zoo plan --data ./my_images --model local:cifar_resnet20.c10
    """
    from zoo.fetching import FetchPolicy, using
    from zoo.plan import plan_for

    fkw = opt.fetch_kwargs(kw)
    policy = FetchPolicy.make(fkw["fetch"], max_download=fkw["max_download"], allow_pickle=fkw["allow_pickle"],
                              progress=not as_json)
    with using(policy):  # the plan's measurements load the model: fetched under this command's budget
        p = plan_for(data, model_id, db=db, device=device, text_column=text_column, label_column=label_column)
    if as_json:
        echo_json(p)
        return
    click.echo(f"Plan for {p.model_id} on {data}: {p.strategy.replace('_', ' ')}")
    click.echo(f"  {p.summary()}")
    click.echo(f"  why: {p.why}")
    rows = [
        ["strategy", p.strategy],
        ["blocks to unfreeze", "none (LoRA adapters in every block)" if p.strategy == "lora" else
         f"{p.unfreeze_fraction:.0%} of the blocks (counted when applied)" if p.blocks_to_unfreeze is None else
         f"{p.blocks_to_unfreeze} of {p.n_blocks if p.n_blocks is not None else '?'}"],
        ["lr head / backbone", f"{_lr(p.lr_head)} / {_lr(p.lr_backbone)}" + (" (adapters)" if p.strategy == "lora" else "")],
        ["layer-wise decay", "-" if p.layer_decay is None or p.strategy in ("lora", "linear_probe") else
         f"x{p.layer_decay:.3f} per block down"],
        ["optimizer", f"{p.optimizer}, weight decay {p.weight_decay:g}, {p.schedule} schedule, "
                      f"warm-up {p.warmup_ratio:.0%}, batch {p.batch_size}"],
        ["epochs", f"{p.epochs} (early stopping: {p.early_stopping['monitor']}, patience {p.early_stopping['patience']})"],
    ]
    if p.lora:
        rows.append(["LoRA", f"rank {p.lora['rank']}, alpha {p.lora['alpha']}, dropout {p.lora['dropout']}, "
                             f"targets {', '.join(p.lora['target_modules'] or ['found when applied'])}"])
    click.echo("\n" + table(["setting", "value"], rows, max_width=100))
    click.echo("\n" + table(["risk", "level", "signal"], [[r.kind, r.level, r.signal] for r in p.risks], max_width=100))
    if p.augmentation:
        click.echo("\nAugmentation: " + "; ".join(p.augmentation))
    click.echo("\nRules fired:")
    for rid in p.rules_fired:
        click.echo(f"  {rid}  [{p.sources.get(rid, '')[:110]}]")
    shown = ("per_class", "min_per_class", "n_classes", "n_total", "shift", "shift_method", "score_gap", "probe_acc",
             "finetune_acc", "finetunable", "transformer", "params", "n_blocks", "modality")
    click.echo("\nSignals: " + ", ".join(f"{k} {_signal(p.signals.get(k))}" for k in shown if k in p.signals))
    for note in p.notes:
        click.echo(f"Note: {note}")
    click.echo("\nApply it: Candidate.load(num_classes=K, plan=True) or zoo.plan.apply_plan(load_backbone(record), plan, K).")


def register(group: click.Group) -> None:
    group.add_command(plan)
