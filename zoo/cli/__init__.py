"""The ``zoo`` command. Commands parse options, call the Python API and render; nothing else.

Only click and zoo's light modules are imported here, so ``zoo --help`` starts fast.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import warnings

import click

from zoo import __version__
from zoo.errors import ZooError, ZooWarning


def debugging() -> bool:
    """``--debug`` or ``ZOO_DEBUG=1``: show tracebacks (and what one failed candidate raised)."""
    return os.environ.get("ZOO_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' hook
    """zoo's warnings as one ``warning:`` line on stderr (no file and line of source); PIL's decompression-bomb
    warning is dropped, because the sample's description already names the large images (zoo.data)."""
    if issubclass(category, ZooWarning):
        click.secho(f"warning: {message}", fg="yellow", err=True)
    elif category.__name__ == "DecompressionBombWarning":
        return
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOWWARNING = warnings.showwarning


class ZooGroup(click.Group):
    """Turns zoo's typed errors into one clear line and a non-zero exit, never a traceback (unless --debug)."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except sqlite3.Error as e:  # a path that missed zoo.registry's translation: the same message all the same
            if debugging():
                raise
            from zoo.config import user_db_path
            from zoo.connection import translate_sqlite_error

            err = translate_sqlite_error(e, ctx.meta.get("zoo.db") or user_db_path())
            click.secho(f"Error: {err}", fg="red", err=True)
            ctx.exit(err.exit_code)
        except ZooError as e:
            if debugging():
                raise
            click.secho(f"Error: {e}", fg="red", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing was written.", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise  # click's own: a usage error, a declined confirmation ("Aborted!")
        except Exception as e:
            if debugging():
                raise
            click.secho(f"Error: {type(e).__name__}: {e}. This is a bug in zoo or in a library it called; rerun with "
                        "--debug (or ZOO_DEBUG=1) for the traceback and report it.", fg="red", err=True)
            ctx.exit(1)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.option("--debug", is_flag=True, help="Show tracebacks, and why each failed candidate failed (ZOO_DEBUG=1).")
def cli(debug: bool) -> None:
    """zoo: which pre-trained backbone should I start from?

    A registry of pre-trained models (timm, Hugging Face Hub, local folders, curated manifests)
    and a recommender that ranks them for your task.
    """
    if debug:
        os.environ["ZOO_DEBUG"] = "1"
    if debugging():
        import logging

        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("zoo").setLevel(logging.DEBUG)


from zoo.cli import (  # noqa: E402
    cache_cmd,
    fetch_cmd,
    index_cmd,
    plan_cmd,
    probe_cmd,
    recommend_cmd,
    registry_cmd,
    report_cmd,
    score_cmd,
)

recommend_cmd.register(cli)
score_cmd.register(cli)
fetch_cmd.register(cli)
probe_cmd.register(cli)
plan_cmd.register(cli)
report_cmd.register(cli)
cache_cmd.register(cli)
registry_cmd.register(cli)
index_cmd.register(cli)


def main() -> None:
    cli(prog_name="zoo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
