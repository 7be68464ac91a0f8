"""``init`` and ``doctor`` for every store, and the URL rules of the Sheets commands.

The Sheets-specific work lives in :mod:`sheetcache.cli._sheets`; a URL of another store
(SQLite, Redis, memory) comes here: ``init`` creates the store, ``doctor`` checks that it
opens and answers and says what to do when it doesn't.
"""

from __future__ import annotations

from typing import Annotated

import typer

import sheetcache.cli._ui as _ui
from sheetcache._errors import SheetcacheError
from sheetcache._urls import backend_from_url
from sheetcache.backends.sqlite import SQLiteBackend

__all__ = ["UrlArgument", "doctor_store", "init_store", "pick_url"]

UrlArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="URL",
        help="The store (same as --url). Default: $SHEETCACHE_URL, else the default cache.",
        show_default=False,
    ),
]


def pick_url(argument: str | None, option: str | None, *, sheets_only: bool = False) -> str:
    """The URL of ``init``/``doctor``/``compact``: the argument, --url, $SHEETCACHE_URL or
    the default, remembered with its origin for error messages.
    """
    if argument and option and argument != option:
        raise typer.BadParameter("give the URL once: as an argument or with --url")
    target = _ui.Target(argument, "the command line") if argument else _ui.resolve_url(option)
    _ui.current_target = target
    if sheets_only and not target.url.startswith("sheets://"):
        raise _ui.fail(
            f"{target.shown} is not a sheets:// URL: this command works on a Google Sheet "
            "(sheets://SPREADSHEET_ID/WORKSHEET)"
        )
    return target.url


def init_store(url: str) -> None:
    """Create the store ``url`` names, if it has anything to create."""
    target = _ui.current_target or _ui.Target(url, "--url")
    with _ui.open_cache(target) as cache:
        count = cache.backend.count()
    _ui.out(f"✓ ready: {target.shown}, {_ui.plural(count, 'entry', 'entries')}")


def doctor_store(url: str) -> None:
    """Check that a non-Sheets store opens and answers; print the fix when it doesn't."""
    target = _ui.current_target or _ui.Target(url, "--url")
    _ui.out(f"checking {target.shown}")
    try:
        backend = backend_from_url(url)
    except SheetcacheError as exc:
        _ui.out(f"✗ open: {exc}")
        raise typer.Exit(1) from None
    try:
        if isinstance(backend, SQLiteBackend):
            problems = (
                [backend.reason] if backend.unusable is not None else backend.integrity_problems()
            )
            if problems:
                path = str(backend.path)
                _ui.out(f"✗ file: {path} cannot be used ({'; '.join(problems)})")
                _ui.out("    → move it aside; a new cache is created on the next start:")
                _ui.out("      " + _ui.command_line(["mv", path, path + ".broken"]))
                raise typer.Exit(1)
            size = backend.path.stat().st_size if backend.path.exists() else 0
            _ui.out(f"✓ file: {backend.path} ({size:,} bytes, a sound sheetcache database)")
        count = backend.count()
        _ui.out(f"✓ reads: {_ui.plural(count, 'entry', 'entries')}")
    finally:
        backend.close()
