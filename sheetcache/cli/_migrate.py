"""``sheetcache migrate [SRC_URL] DST_URL``: copy entries between any two stores."""

from __future__ import annotations

from typing import Annotated

import typer

import sheetcache.cli._ui as _ui
from sheetcache._errors import SheetcacheError
from sheetcache._migrate import MigrationResult, migrate, parse_since
from sheetcache._urls import backend_from_url
from sheetcache.backends.base import Backend
from sheetcache.cli._app import app


def _open(target: _ui.Target, role: str) -> Backend:
    _ui.current_target = target
    try:
        return backend_from_url(target.url)
    except SheetcacheError as exc:
        raise _ui.fail(f"cannot open the {role} {target.shown}: {exc}") from None


@app.command("migrate")
def migrate_command(
    first: Annotated[
        str,
        typer.Argument(
            metavar="SRC_URL",
            help="Store to copy from. Default: --url, else $SHEETCACHE_URL, else the "
            "default cache.",
            show_default=False,
        ),
    ],
    second: Annotated[
        str | None,
        typer.Argument(metavar="DST_URL", help="Store to copy to.", show_default=False),
    ] = None,
    url: _ui.UrlOption = None,
    namespace: _ui.NamespaceOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Only entries created at or after this ISO date or date-time "
            "(2024-05-01, 2024-05-01T12:00:00Z; local time without a zone).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, metavar="N", help="Entries per read and write.")
    ] = 500,
) -> None:
    """Copy entries from SRC_URL to DST_URL.

    In batches: sqlite -> sheets to publish for review, sheets -> redis to scale, any store to any other.

    Entries DST_URL already holds are skipped, never overwritten, so an interrupted run resumes where it stopped when run again. Expired entries are not copied. Exits 1 if any batch failed (run it again to retry them).
    """
    urls = [first] if second is None else [first, second]
    if len(urls) == 2 and url:
        raise typer.BadParameter("give SRC_URL DST_URL, or --url SRC_URL DST_URL, not both")
    try:
        since_ts = None if since is None else parse_since(since)
    except SheetcacheError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    src = _ui.Target(urls[0], "the command line") if len(urls) == 2 else _ui.resolve_url(url)
    dst = _ui.Target(urls[-1], "the command line")
    source = _open(src, "source")
    try:
        destination = _open(dst, "destination")
        try:
            _ui.current_target = src
            result = _run(source, destination, namespace, since_ts, batch_size)
        finally:
            destination.close()
    finally:
        source.close()
    _report(result, src, dst)
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
    # Both URLs in the label would push the bar off an 80-column line: shorten each.
    label = f"{_ui.short_url(source.url, 14)} -> {_ui.short_url(destination.url, 14)}"
    with _ui.progress(label, total) as task:
        return migrate(
            source, destination, namespace=namespace, since=since, batch_size=batch_size,
            progress=lambda r: task.update(r.seen),
        )  # fmt: skip


def _report(result: MigrationResult, src: _ui.Target, dst: _ui.Target) -> None:
    _ui.out(f"{src.shown} -> {dst.shown}")
    _ui.out(
        f"copied {result.copied:,}, skipped {result.skipped:,} (already there), "
        f"failed {result.failed:,}"
        + (f", expired {result.expired:,} (not copied)" if result.expired else "")
        + (f", {result.filtered:,} older than --since" if result.filtered else "")
    )
    for line in result.errors:
        _ui.err(f"failed: {line}")
    if result.read_error:
        _ui.err(
            f"error: reading {src.shown} broke off ({result.read_error}); "
            "the entries after that point were not copied: run the migration again"
        )
