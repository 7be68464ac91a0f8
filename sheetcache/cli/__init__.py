"""The ``sheetcache`` command line: one module per group of commands.

Each ``_*.py`` module registers its commands on :data:`app` when imported, so adding a
command group is one import line here.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="sheetcache",
    help="Stop paying for the same LLM call twice. Inspect and manage a sheetcache cache.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules register themselves on `app`; keep these imports below `app`.
from sheetcache.cli import _core  # noqa: E402,F401
from sheetcache.cli import _emulator  # noqa: E402,F401
from sheetcache.cli import _sheets  # noqa: E402,F401
from sheetcache.cli import _migrate  # noqa: E402,F401
from sheetcache.cli import _proxy  # noqa: E402,F401
from sheetcache.cli._explain import explain_command  # noqa: E402

app.command("explain")(explain_command)


def main() -> None:
    """Entry point of the ``sheetcache`` console script."""
    app()
