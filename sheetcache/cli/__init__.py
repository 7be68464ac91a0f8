"""The ``sheetcache`` command line: one module per group of commands.

:mod:`sheetcache.cli._app` holds the app; each command module registers its commands on it
when imported, and this package imports them all. Imports run one way: this package ->
command modules -> ``_app`` / ``_ui``; a command module imports ``sheetcache.cli._app``,
never this package.
"""

from __future__ import annotations

# The app first, so it is bound here before any command module is imported.
from sheetcache.cli._app import app

# isort: split
from sheetcache.cli import _core, _demo, _emulator, _migrate, _proxy, _sheets
from sheetcache.cli._explain import explain_command

app.command("explain")(explain_command)

__all__ = ["app", "main"]

_COMMAND_MODULES = (_core, _demo, _emulator, _migrate, _proxy, _sheets)  # imported to register


def main() -> None:
    """Entry point of the ``sheetcache`` console script."""
    app()
