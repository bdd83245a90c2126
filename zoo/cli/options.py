"""Options shared by every command: one name for one thing across the CLI."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from zoo import vocab

_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMbBgG]?)\s*$")
_MULT = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


class ParamCount(click.ParamType):
    """A parameter count: 25000000, 25M, 1.5B, 300k."""

    name = "COUNT"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        m = _SIZE_RE.match(str(value))
        if not m:
            self.fail(f"{value!r} is not a parameter count; write e.g. 25M, 1.5B or 300k.", param, ctx)
        return int(float(m.group(1)) * _MULT[m.group(2).lower()])


PARAM_COUNT = ParamCount()


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for programs instead of a table.")(f)


def _remember_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.meta["zoo.db"] = value  # meta is shared with the group: its error handler names this file
    return value


def db_option(f: Callable) -> Callable:
    return click.option(
        "--db", type=click.Path(dir_okay=False), envvar="ZOO_DB", callback=_remember_db,
        help="User database (default: ZOO_DB or the user data dir). The shipped catalog is attached read-only.",
    )(f)


def modality_option(f: Callable) -> Callable:
    return click.option("--modality", type=click.Choice(list(vocab.MODALITIES)), help="Only this modality.")(f)


def license_class_option(f: Callable) -> Callable:
    return click.option(
        "--license-class", "license_classes", multiple=True, type=click.Choice(list(vocab.LICENSE_CLASSES)),
        help="Allowed license classes (repeatable).",
    )(f)


def domain_option(f: Callable) -> Callable:
    return click.option(
        "--domain", "domains", multiple=True, type=click.Choice(list(vocab.DOMAINS)),
        help="Any of these domain tags (repeatable).",
    )(f)


def max_params_option(f: Callable) -> Callable:
    return click.option("--max-params", type=PARAM_COUNT, help="At most this many parameters (e.g. 25M).")(f)


def available_option(f: Callable) -> Callable:
    return click.option("--available", is_flag=True, help="Only models whose weights are on this machine.")(f)


DATA_HELP = "Image folder root/<class>/..., CSV/TSV/JSONL with text and label columns, or .npz (x, y)."


def data_option(f: Callable) -> Callable:
    """The labelled sample a command works on (required)."""
    return click.option("--data", "data", required=True, type=click.Path(), help=DATA_HELP)(f)


def column_options(f: Callable) -> Callable:
    """Which columns of a CSV/TSV/JSONL sample hold the text and the label."""
    f = click.option("--label-column", default="label", show_default=True, help="Label column of a CSV/TSV/JSONL file.")(f)
    return click.option("--text-column", default="text", show_default=True, help="Text column of a CSV/TSV/JSONL file.")(f)


def fetch_options(f: Callable) -> Callable:
    """Whether and how much a command may download: weights not on this machine are fetched from the Hub."""
    f = click.option("--allow-pickle", is_flag=True,
                     help="Accept repos that hold only pickled weights (.bin), read with weights_only=True.")(f)
    f = click.option("--max-download", metavar="SIZE", envvar="ZOO_MAX_DOWNLOAD",
                     help="Download at most this much in this command (e.g. 10GB, 500MB, none; default "
                          "ZOO_MAX_DOWNLOAD or 10GB).")(f)
    return click.option("--no-fetch", is_flag=True,
                        help="Use only weights already on this machine; never download.")(f)


def executor_option(f: Callable) -> Callable:
    """Where the candidates run: here one after another, or one Ray task each (zoo.executor)."""
    return click.option("--executor", type=click.Choice(["local", "ray"]), envvar="ZOO_EXECUTOR",
                        help="local: here, one candidate after another (the default); ray: one Ray task per "
                             "candidate on the cluster at RAY_ADDRESS, or a local one (pip install 'zoo[ray]'). "
                             "Default ZOO_EXECUTOR or local.")(f)


def fetch_kwargs(kw: dict) -> dict:
    """The API's fetch arguments from :func:`fetch_options`' values (removed from ``kw``)."""
    return {"fetch": not kw.pop("no_fetch", False), "max_download": kw.pop("max_download", None),
            "allow_pickle": kw.pop("allow_pickle", False)}
