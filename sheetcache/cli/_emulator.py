"""``sheetcache emulator``: serve the bundled Google Sheets API emulator."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import typer

from sheetcache._logging import install_hint
from sheetcache.cli._app import app

_METHODS = ("all", "read", "write")


def _listen_address(url: str | None) -> tuple[str, int] | None:
    """Where ``--url`` (or a ``sheets://...?endpoint=`` in $SHEETCACHE_URL) says to listen.

    A $SHEETCACHE_URL naming another store, or a real Sheet, is ignored: --host/--port apply.
    """
    from_env = url is None
    url = url or os.environ.get("SHEETCACHE_URL")
    if not url:
        return None
    if url.startswith("sheets://"):
        url = parse_qs(urlsplit(url).query).get("endpoint", [""])[0]
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname:
        return parts.hostname, parts.port or 80
    if from_env:
        return None
    raise typer.BadParameter(
        "give http://HOST:PORT, or a sheets:// URL with ?endpoint=http://HOST:PORT",
        param_hint="--url",
    )


@app.command("emulator")
def emulator(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            "-u",
            metavar="URL",
            help="Listen where this URL says: http://HOST:PORT, or a sheets:// URL's "
            "?endpoint=. Default: $SHEETCACHE_URL's endpoint if it has one, else --host/--port.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8765,
    quota_per_minute: Annotated[
        int, typer.Option(help="Read and write requests allowed per minute per user (Google: 60).")
    ] = 60,
    project_quota_per_minute: Annotated[
        int,
        typer.Option(help="Read and write requests allowed per minute per project (Google: 300)."),
    ] = 300,
    no_quota: Annotated[bool, typer.Option("--no-quota", help="Do not enforce any quota.")] = False,
    latency_ms: Annotated[float, typer.Option(help="Delay added to every request, in ms.")] = 0.0,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Keep spreadsheets in this file across restarts."),
    ] = None,
    fail_next: Annotated[
        int, typer.Option(help="Fail the next N requests (see --fail-status).")
    ] = 0,
    fail_status: Annotated[int, typer.Option(help="Status of the failures of --fail-next.")] = 503,
    fail_methods: Annotated[
        str,
        typer.Option(
            metavar="WHICH", help="Which requests the --*-next faults hit: all, read or write."
        ),
    ] = "all",
    drop_next: Annotated[int, typer.Option(help="Drop the connection of the next N requests.")] = 0,
    lose_response_next: Annotated[
        int, typer.Option(help="Apply the next N requests, then drop the connection unanswered.")
    ] = 0,
) -> None:
    """Serve a Google Sheets API emulator until interrupted.

    Point a client at the printed URL, e.g. from Python:
    ``sheetcache.emulator.routed_client("http://127.0.0.1:8765")``.
    """
    try:
        from sheetcache.emulator import QuotaLimits, SheetsEmulator, StateFileError
    except ImportError as exc:
        typer.echo(
            f"The emulator needs the Sheets extra ({exc.name} is missing): {install_hint('sheets')}",
            err=True,
        )
        raise typer.Exit(1) from exc
    address = _listen_address(url)
    if address is not None:
        host, port = address
    if fail_methods not in _METHODS:
        typer.echo(f"--fail-methods must be one of {', '.join(_METHODS)}", err=True)
        raise typer.Exit(2)
    limits = QuotaLimits(
        read_per_user=quota_per_minute,
        write_per_user=quota_per_minute,
        read_per_project=project_quota_per_minute,
        write_per_project=project_quota_per_minute,
    )
    emu = SheetsEmulator(
        host, port, quota=False if no_quota else limits, latency_ms=latency_ms, state_path=state
    )
    methods = None if fail_methods == "all" else fail_methods
    if fail_next:
        emu.faults.fail_next(fail_next, status=fail_status, methods=methods)
    if drop_next:
        emu.faults.drop_next(drop_next, methods=methods)
    if lose_response_next:
        emu.faults.lose_response_next(lose_response_next, methods=methods)

    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    try:
        emu.start()
    except StateFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        typer.echo(f"cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        quota = "no quota" if no_quota else f"quota {quota_per_minute}/min per user"
        saved = f", state in {state}" if state else ""
        typer.echo(f"Sheets API emulator serving on {emu.url} ({quota}{saved})")
        typer.echo("Press Ctrl+C to stop.")
        sys.stdout.flush()
        while not stopping.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emu.stop()
        typer.echo("Emulator stopped.")
