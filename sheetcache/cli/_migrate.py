"""``sheetcache migrate SRC_URL DST_URL``: copy entries between any two stores."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sheetcache._errors import SheetcacheError
from sheetcache._migrate import MigrationResult, migrate, parse_since
from sheetcache._urls import backend_from_url, redact_url
from sheetcache.backends.base import Backend
from sheetcache.cli import app

console = Console()
err = Console(stderr=True)


def _open(url: str, role: str) -> Backend:
    try:
        return backend_from_url(url)
    except (SheetcacheError, ValueError, OSError) as exc:
        err.print(f"[red]error:[/red] cannot open the {role} {redact_url(url)}: {exc}")
        raise typer.Exit(2) from None


@app.command("migrate")
def migrate_command(
    src_url: Annotated[
        str, typer.Argument(metavar="SRC_URL", help="Store to copy from.", show_default=False)
    ],
    dst_url: Annotated[
        str, typer.Argument(metavar="DST_URL", help="Store to copy to.", show_default=False)
    ],
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Only this namespace.", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only entries created at or after this ISO date or date-time "
            "(2024-05-01, 2024-05-01T12:00:00Z; local time without a zone).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Entries per read and write.")] = 500,
) -> None:
    """Copy entries from SRC_URL to DST_URL in batches: sqlite -> sheets to publish for review, sheets -> redis to scale, any store to any other.

    Entries DST_URL already holds are skipped, never overwritten, so an interrupted run resumes where it stopped when run again. Expired entries are not copied. Exits 1 if any batch failed (run it again to retry them).
    """  # noqa: E501
    try:
        since_ts = None if since is None else parse_since(since)
    except SheetcacheError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    source = _open(src_url, "source")
    try:
        destination = _open(dst_url, "destination")
        try:
            result = _run(source, destination, namespace, since_ts, batch_size)
        finally:
            destination.close()
    finally:
        source.close()
    _report(result, source.url, destination.url)
    if not result.ok:
        raise typer.Exit(1)


def _run(
    source: Backend,
    destination: Backend,
    namespace: str | None,
    since: float | None,
    batch_size: int,
) -> MigrationResult:
    try:
        total: int | None = source.count(namespace)
    except Exception:  # noqa: BLE001 - the bar just has no end; the copy will report errors
        total = None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"{source.url} -> {destination.url}", total=total)
        return migrate(
            source, destination, namespace=namespace, since=since, batch_size=batch_size,
            progress=lambda r: bar.update(task, completed=r.seen),
        )  # fmt: skip


def _report(result: MigrationResult, source: str, destination: str) -> None:
    console.print(f"{source} -> {destination}")
    console.print(
        f"copied {result.copied}, skipped {result.skipped} (already there), "
        f"failed {result.failed}"
        + (f", expired {result.expired} (not copied)" if result.expired else "")
        + (f", {result.filtered} older than --since" if result.filtered else "")
    )
    for line in result.errors:
        err.print(f"[red]failed:[/red] {line}")
    if result.read_error:
        err.print(
            f"[red]error:[/red] reading {source} broke off ({result.read_error}); "
            "the entries after that point were not copied: run the migration again"
        )
