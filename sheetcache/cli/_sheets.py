"""Google Sheets commands: ``init``, ``doctor``, ``compact``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sheetcache._errors import SheetcacheError
from sheetcache._urls import redact_url
from sheetcache.cli._app import app
from sheetcache.cli._stores import UrlArgument, doctor_store, init_store, pick_url

console = Console(highlight=False, soft_wrap=True)  # fix lines must paste whole

_URL_HELP = "sheets://SPREADSHEET_ID/WORKSHEET (add ?credentials=key.json or ?endpoint=URL)"


def _sheets_only(url: str) -> None:
    if not url.startswith("sheets://"):
        console.print(f"[red]✗[/red] {escape(redact_url(url))} is not a sheets:// URL: {_URL_HELP}")
        raise typer.Exit(2)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]✗[/red] {escape(str(exc))}")
    return typer.Exit(1)


@app.command("init")
def init_command(
    url_arg: UrlArgument = None,
    url: Annotated[str | None, typer.Option("--url", "-u", metavar="URL", help=_URL_HELP)] = None,
    share: Annotated[
        list[str] | None,
        typer.Option("--share", help="E-mail to give edit access (repeatable)."),
    ] = None,
) -> None:
    """Create or prepare a worksheet: header, frozen row, widths, wrapping, status dropdown."""
    url = pick_url(url_arg, url)
    if not url.startswith("sheets://"):
        return init_store(url)
    try:
        from sheetcache.backends.sheets import init_worksheet

        done = init_worksheet(url, share=share or [])
    except (SheetcacheError, ImportError) as exc:
        raise _fail(exc) from None
    for line in done:
        console.print(f"[green]✓[/green] {escape(line)}")
    console.print(f"Ready: Cache({escape(redact_url(url))!r})")


@app.command("doctor")
def doctor_command(
    url_arg: UrlArgument = None,
    url: Annotated[str | None, typer.Option("--url", "-u", metavar="URL", help=_URL_HELP)] = None,
) -> None:
    """Check credentials, access, worksheet, header, rows, cell and quota headroom."""
    url = pick_url(url_arg, url)
    if not url.startswith("sheets://"):
        return doctor_store(url)
    try:
        from sheetcache.backends.sheets import doctor

        checks = doctor(url)
    except (SheetcacheError, ImportError) as exc:
        raise _fail(exc) from None
    for check in checks:
        mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]![/yellow]"}[
            check.ok
        ]
        console.print(f"{mark} [bold]{escape(check.name)}[/bold]: {escape(check.detail)}")
        if check.fix:
            console.print(f"    → {escape(check.fix)}")
    if any(check.ok is False for check in checks):
        raise typer.Exit(1)


@app.command("compact")
def compact_command(
    url_arg: UrlArgument = None,
    url: Annotated[str | None, typer.Option("--url", "-u", metavar="URL", help=_URL_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go.")] = False,
) -> None:
    """Remove duplicate rows, empty rows inside the table and orphaned long-value parts."""
    url = pick_url(url_arg, url, sheets_only=True)
    try:
        from sheetcache.backends.sheets import SheetsBackend

        backend = SheetsBackend.from_url(url)
        try:
            report = backend.compact(dry_run=dry_run)
        finally:
            backend.close()
    except (SheetcacheError, ImportError) as exc:
        raise _fail(exc) from None
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"[green]✓[/green] {verb} {report['duplicates']} duplicate row(s), {report['blank']} "
        f"empty row(s), {report['orphan_parts']} orphaned part row(s)"
    )
