"""The Typer app the command modules register on, and how a failure reaches the user.

A command raises what it raises; :class:`_Group` turns the expected failures (a
:class:`~sheetcache.SheetcacheError`, a store that can't be reached, a file that can't be
read) into one ``error:`` line and exit status 1. ``--debug`` (or ``$SHEETCACHE_DEBUG``)
lets the traceback through instead.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.exceptions import Abort, Exit, TyperException

import sheetcache.cli._ui as _ui
from sheetcache._errors import SheetcacheError

__all__ = ["app"]

# Store clients whose errors mean "the store can't be reached or refused us", not a bug.
_CLIENT_MODULES = {"redis", "requests", "urllib3", "google", "gspread", "httpx", "httpcore"}


def _describe(exc: BaseException) -> str:
    """One line for an expected failure, with what to check."""
    target = _ui.current_target
    where = f" {target.shown}" if target else ""
    if isinstance(exc, SheetcacheError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:  # a local file, not the store
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, sqlite3.Error):
        doctor = ["sheetcache", "doctor"] + (["--url", target.url] if target else [])
        return (
            f"cannot read{where}: {type(exc).__name__}: {exc}. This checks the file and says "
            f"what to do:\n  {_ui.command_line(doctor)}"
        )
    root = type(exc).__module__.split(".", 1)[0]
    if isinstance(exc, OSError) or root in _CLIENT_MODULES:
        return (
            f"cannot use the store{where}: {type(exc).__name__}: {str(exc).rstrip('.')}. "
            "Check that the server "
            "is running and reachable, and that the URL (host, port, credentials) is right"
        )
    return ""


_METAVARS = {"int": "N", "float": "NUMBER", "path": "PATH"}


def _shown_as(text: str | None) -> Callable[[Any], str | None]:
    """A help-text type column that shows ``text`` (None: nothing)."""

    def display_type(ctx: Any) -> str | None:
        return text

    return display_type


class _Group(TyperGroup):
    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        for param in getattr(command, "params", ()):
            if isinstance(param, TyperArgument):
                # The argument's name says what it is ("KEY", "FILE"): no "<str>" beside it.
                setattr(param, "display_type_rich", _shown_as(None))  # noqa: B010 - an instance override
            elif isinstance(param, TyperOption) and param.metavar is None and param.name:
                shown = param.display_type_rich(ctx)
                if shown and "|" not in shown:  # keep the choices of --format <jsonl|csv>
                    # "--port N", as most tools write it, not "--port <int>".
                    name = _METAVARS.get(shown.split(" ")[0].strip("<>"), param.name.upper())
                    setattr(param, "display_type_rich", _shown_as(name))  # noqa: B010
        return command

    def invoke(self, ctx: Any) -> Any:
        _ui.state.reset()
        _ui.current_target = None
        try:
            return super().invoke(ctx)
        except (Exit, Abort, TyperException):
            raise
        except BrokenPipeError:
            # The reader went away (`sheetcache export | head`): stop quietly, like cat does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise Exit(0) from None
        except Exception as exc:
            if _ui.state.debug:
                raise
            message = _describe(exc)
            if not message:
                message = (
                    f"unexpected {type(exc).__name__}: {exc}. This looks like a bug in "
                    "sheetcache: run again with --debug and report the traceback"
                )
            _ui.err(f"error: {message}")
            _ui.err("(run with --debug for the traceback)")
            raise Exit(1) from None


app = typer.Typer(
    name="sheetcache",
    cls=_Group,
    help="Stop paying for the same LLM call twice. Inspect and manage a sheetcache cache.\n\n"
    "Every command that uses a store takes --url; the default is $SHEETCACHE_URL, else "
    "SQLite in the user cache dir.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # The plain help formatter: no "<bool>" beside every flag, and metavars as written.
    rich_markup_mode=None,
)


def _package_version() -> str:
    try:
        return version("sheetcache")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"sheetcache {_package_version()}")
        raise Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a failure.")
    ] = False,
) -> None:
    """Stop paying for the same LLM call twice. Inspect and manage a sheetcache cache."""
    if debug:
        _ui.state.debug = True
