"""``zoo fetch``: download what models' loaders need from the Hugging Face Hub into its cache."""

from __future__ import annotations

import click

from zoo.cli import options as opt
from zoo.cli.render import echo_json, table


def _echo_plan(plans) -> None:
    """Said before any download: how much, for how many models, and about how long."""
    from zoo.fetching import FetchError, download_rate, fmt_bytes

    ok = [p for p in plans if not isinstance(p, FetchError) and not p.refused and p.repo]
    todo = [p for p in ok if p.download_bytes]
    need = sum(p.download_bytes for p in todo)
    if need:
        rate, basis = download_rate()
        click.echo(f"To download: {fmt_bytes(need)} for {len(todo)} model(s), about {need / rate:.0f} s at {basis}; "
                   f"{len(ok) - len(todo)} already cached.", err=True)
    else:
        click.echo("Nothing to download.", err=True)


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--max-download", metavar="SIZE", envvar="ZOO_MAX_DOWNLOAD",
              help="Download at most this much in all (e.g. 10GB, 500MB, none; default ZOO_MAX_DOWNLOAD or 10GB).")
@click.option("--allow-pickle", is_flag=True,
              help="Accept repos that hold only pickled weights (.bin), read with weights_only=True.")
@click.option("--dry-run", is_flag=True, help="Say what would be downloaded, and download nothing.")
@opt.json_option
@opt.db_option
def fetch(ids, max_download, allow_pickle, dry_run, as_json, db) -> None:
    """Download models' weights, config and tokenizer or processor files into the Hugging Face cache
    (HF_HOME / HF_HUB_CACHE), safetensors first. A rerun downloads nothing; an interrupted download
    resumes. Commands that need weights (score, probe, plan, recommend --data) fetch by themselves;
    this is for doing it ahead of time, or on a connected machine before copying the cache.

    \b
    Examples:
      zoo fetch timm:convnext_tiny.fb_in1k hf:microsoft/rad-dino
      zoo fetch timm:vit_base_patch16_224.augreg_in21k --dry-run
    """
    from zoo.fetching import fetch as run
    from zoo.fetching import fmt_bytes

    rep = run(list(ids), max_download=max_download, allow_pickle=allow_pickle, progress=not as_json, db=db,
              dry_run=dry_run, on_plan=None if as_json else _echo_plan,
              say=None if as_json else (lambda s: click.echo(s, err=True)))
    if as_json:
        echo_json(rep)
    else:
        rows = [[r.id, r.status, fmt_bytes(r.bytes) if r.bytes else "-", fmt_bytes(r.total_bytes) if r.total_bytes else "-",
                 f"{r.seconds:.1f}" if r.bytes else "-", (r.commit or "")[:12] or "-", r.path or ""]
                for r in rep.results]
        click.echo(table(["model", "status", "downloaded", "size", "seconds", "commit", "where"], rows, max_width=90))
        for r in rep.failed:
            click.echo(f"\n{r.id} ({r.status}): {r.error}")
        click.echo(f"\n{fmt_bytes(rep.downloaded_bytes)} downloaded in {rep.seconds:.1f} s from {rep.endpoint}; "
                   f"{len(rep.results) - len(rep.failed)} of {len(rep.results)} ready.")
    if rep.failed:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(fetch)
