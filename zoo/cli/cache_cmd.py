"""``zoo cache show`` / ``zoo cache clear``: the on-disk cache of extracted features (zoo.features)."""

from __future__ import annotations

import click

from zoo.cli import options as opt
from zoo.cli.render import echo_json, table


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


@click.group("cache")
def cache() -> None:
    """Features extracted from your sample data, cached per model and data (ZOO_CACHE_DIR/features)."""


@cache.command("show")
@opt.json_option
def show(as_json: bool) -> None:
    """List cached feature sets: model, data hash, size, when they were made."""
    from zoo import features

    entries = features.cache_info()
    total = sum(int(e["bytes"] or 0) for e in entries)
    if as_json:
        echo_json({"dir": str(features.features_dir()), "entries": entries, "count": len(entries),
                   "total_bytes": total})
        return
    if not entries:
        click.echo(f"No cached features in {features.features_dir()}.")
        return
    from zoo.backbones.layers import describe

    rows = [[e["model_id"] or "?", e["data_hash"] or "?", f"{e['n']}×{e['d']}",
             describe(e["layers"]) if e.get("layers") else "model output", _mb(int(e["bytes"] or 0)),
             e["created"] or "-"] for e in entries]
    click.echo(table(["model", "data hash", "n×d", "features", "MB", "created"], rows))
    click.echo(f"total: {len(entries)} feature set(s), {_mb(total)} MB in {features.features_dir()}")


@cache.command("clear")
@click.option("--model", "model_id", help="Only this model's cached features (default: all).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def clear(model_id: str | None, yes: bool) -> None:
    """Remove cached features (they are recomputed when needed)."""
    from zoo import features

    entries = features.cache_info()
    if model_id is not None:
        want = features._normalise_id(model_id)
        entries = [e for e in entries if e["model_id"] in (want, model_id)]
    what = f"cached features of {model_id}" if model_id else "all cached features"
    if not yes:
        size = sum(int(e["bytes"] or 0) for e in entries)
        click.confirm(f"Remove {what} ({len(entries)} set(s), {_mb(size)} MB)?", abort=True)
    removed = features.clear_cache(model_id)
    click.echo(f"Removed {removed} cached feature set(s).")


def register(group: click.Group) -> None:
    group.add_command(cache)
