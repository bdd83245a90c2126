"""``zoo index SOURCE``: add models to the user database, one transaction per run."""

from __future__ import annotations

import click

from zoo.cli import options as opt
from zoo.cli.render import echo_json, table


def _run(source: str, as_json: bool, db: str | None, total: int | None = None, **options) -> None:
    from tqdm import tqdm

    from zoo import api

    with tqdm(total=total, desc=f"index {source}", unit="model", disable=None, leave=False) as bar:
        summary = api.index(source, db=db, progress=bar.update, **options)
    if as_json:
        echo_json(summary)
        return
    click.echo(table(["source", "added", "updated", "unchanged", "failed", "seconds"],
                     [[source, summary.added, summary.updated, summary.unchanged, summary.failed,
                       f"{summary.seconds:.1f}"]]))
    for mid, reason in summary.failures[:20]:
        click.echo(f"  failed: {mid}: {reason}", err=True)


@click.group("index")
def index() -> None:
    """Add models from a source to your registry (your user database).

    Each run is one transaction: an interrupted or failed run leaves the previous state intact.
    """


@index.command("timm")
@click.option("--name", "names", multiple=True, help="Only these pretrained tags (repeatable; default: all).")
@opt.json_option
@opt.db_option
def index_timm(names, as_json, db) -> None:
    """Every pretrained tag of the installed timm (offline; counts parameters on the meta device)."""
    _run("timm", as_json, db, names=list(names) or None)


@index.command("hf")
@click.option("--task", help="Hub pipeline tag, e.g. image-feature-extraction.")
@click.option("--library", help="Hub library, e.g. timm, transformers, sentence-transformers.")
@click.option("--author", help="Hub user or organisation.")
@click.option("--search", help="Substring of the repo id.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most this many models.")
@click.option("--id", "ids", multiple=True, help="Index exactly these repos (repeatable).")
@click.option("--endpoint", envvar="HF_ENDPOINT", help="Hub endpoint (default: HF_ENDPOINT or huggingface.co).")
@opt.json_option
@opt.db_option
def index_hf(task, library, author, search, limit, ids, endpoint, as_json, db) -> None:
    """Models from the Hugging Face Hub (needs the network; unchanged models are not re-fetched)."""
    _run("hf", as_json, db, task=task, library=library, author=author, search=search, limit=limit,
         ids=list(ids) or None, endpoint=endpoint)


@index.command("local")
@click.argument("path", type=click.Path())
@click.option("--id", "model_id", help="Id for a single model folder or file (local:NAME).")
@opt.json_option
@opt.db_option
def index_local(path, model_id, as_json, db) -> None:
    """Models in a folder: HF config.json folders, sentence-transformers folders, timm checkpoints, ONNX."""
    _run("local", as_json, db, path=path, id=model_id)


@index.command("manifest")
@click.argument("path", type=click.Path())
@opt.json_option
@opt.db_option
def index_manifest(path, as_json, db) -> None:
    """Curated records from a YAML or JSON manifest (validated; nothing in it is executed)."""
    _run("manifest", as_json, db, path=path)


def register(group: click.Group) -> None:
    group.add_command(index)
