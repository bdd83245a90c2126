"""Registry commands: search, show, stats."""

from __future__ import annotations

import click

from zoo.cli import options as opt
from zoo.cli.render import echo_json, fmt, fmt_params, table
from zoo.ids import SOURCES
from zoo.registry import SORTS


@click.command()
@click.argument("query", required=False)
@opt.modality_option
@opt.domain_option
@opt.license_class_option
@opt.max_params_option
@click.option("--min-params", type=opt.PARAM_COUNT, help="At least this many parameters.")
@click.option("--min-top1", type=float, help="At least this ImageNet top-1 (%).")
@click.option("--source", type=click.Choice(SOURCES), help="Only models from this source (its id prefix).")
@opt.available_option
@click.option("--sort", type=click.Choice(["relevance", *SORTS]), help="Order (default: relevance with a query, else top1).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many rows.")
@opt.json_option
@opt.db_option
def search(query, modality, domains, license_classes, max_params, min_params, min_top1, source, available, sort,
           limit, as_json, db) -> None:
    """Search the registry: full text over names and cards, plus filters.

    \b
    Examples:
      zoo search "chest x-ray" --modality image
      zoo search --modality image --license-class permissive --max-params 30M --sort top1
      zoo search --source local
    """
    from zoo import api

    res = api.search(
        query, modality=modality, domains=domains, license_classes=license_classes, max_params=max_params,
        min_params=min_params, min_top1=min_top1, source=source, available=available, sort=sort, limit=limit, db=db,
    )
    if as_json:
        echo_json(res)
        return
    rows = [
        [r.id, r.modality, fmt(r.domains), fmt_params(r.params), fmt(r.imagenet_top1), r.license or "?", r.license_class]
        for r in res.records
    ]
    click.echo(table(["id", "modality", "domains", "params", "top1", "license", "class"], rows))
    more = "more than " if res.total_is_lower_bound else ""
    click.echo(f"\n{len(res.records)} of {more}{res.total:,} matching models shown.")


@click.command()
@click.argument("model_id")
@opt.json_option
@opt.db_option
def show(model_id, as_json, db) -> None:
    """Show everything the registry knows about one model.

    \b
    Example:
      zoo show timm:resnet50.a1_in1k
    """
    from zoo import api
    from zoo.weights import resolve

    rec = api.show(model_id, db=db)
    local = resolve(rec.weights)
    if as_json:
        d = rec.to_dict()
        d["available"] = local is not None
        d["local_path"] = str(local) if local else None
        echo_json(d)
        return
    for key, value in rec.to_dict().items():
        if key == "description" or value in (None, [], {}, ""):
            continue
        if key == "params":
            value = f"{value:,} ({fmt_params(value)})"
        click.echo(f"{key:>16}: {fmt(value, 3) if not isinstance(value, dict) else value}")
    click.echo(f"{'available':>16}: {'yes, ' + str(local) if local else 'no (weights not on this machine)'}")
    if rec.description:
        click.echo("\n" + rec.description)


@click.command()
@opt.json_option
@opt.db_option
def stats(as_json, db) -> None:
    """Counts by source, modality, license class and domain."""
    from zoo import api

    s = api.stats(db=db)
    if as_json:
        echo_json(s)
        return
    click.echo(f"{s.total} models  (catalog: {s.catalog or 'none'}, version {s.catalog_version or '?'}; "
               f"user db: {s.user_db})")
    click.echo(f"{s.loadable} of {s.total} can be loaded by zoo (fetched from the Hub when not on this machine); "
               f"not loadable: " + (", ".join(f"{n} {why}" for why, n in s.not_loadable.items()) or "none") + ".")
    for title, counts in (("source", s.by_source), ("modality", s.by_modality),
                          ("license class", s.by_license_class), ("domain", s.by_domain)):
        click.echo(f"\n{title}:")
        click.echo(table([title, "models"], list(counts.items())))


def register(group: click.Group) -> None:
    for cmd in (search, show, stats):
        group.add_command(cmd)
