"""``python -m sheetcache.emulator``: serve the emulator, with nothing of the cache loaded.

The ``sheetcache emulator`` command of the CLI offers the same options; this entry point
exists so the emulator runs (and can be vendored into other projects' test setups) on its
own: it imports only the standard library and ``sheetcache.emulator``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sheetcache.emulator._emulator import SheetsEmulator
from sheetcache.emulator._persist import StateFileError
from sheetcache.emulator._quota import QuotaLimits

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sheetcache.emulator",
        description="Serve a Google Sheets API emulator (Sheets v4 + Drive v3) until interrupted.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    p.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
    p.add_argument(
        "--quota-per-minute",
        type=int,
        default=60,
        help="read and write requests allowed per minute per user (Google: 60)",
    )
    p.add_argument(
        "--project-quota-per-minute",
        type=int,
        default=300,
        help="read and write requests allowed per minute per project (Google: 300)",
    )
    p.add_argument("--no-quota", action="store_true", help="do not enforce any quota")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    p.add_argument("--state", type=Path, help="keep spreadsheets in this file across restarts")
    p.add_argument("--fail-next", type=int, default=0, help="fail the next N requests")
    p.add_argument("--fail-status", type=int, default=503, help="status of those failures")
    p.add_argument(
        "--fail-methods",
        choices=("all", "read", "write"),
        default="all",
        help="which requests the --*-next faults hit",
    )
    p.add_argument(
        "--drop-next", type=int, default=0, help="drop the connection of the next N requests"
    )
    p.add_argument(
        "--lose-response-next",
        type=int,
        default=0,
        help="apply the next N requests, then drop the connection unanswered",
    )
    return p  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; returns the exit status."""
    args = _parser().parse_args(argv)
    limits = QuotaLimits(
        read_per_user=args.quota_per_minute,
        write_per_user=args.quota_per_minute,
        read_per_project=args.project_quota_per_minute,
        write_per_project=args.project_quota_per_minute,
    )
    emu = SheetsEmulator(
        args.host, args.port, quota=False if args.no_quota else limits,
        latency_ms=args.latency_ms, state_path=args.state,
    )  # fmt: skip
    methods = None if args.fail_methods == "all" else args.fail_methods
    if args.fail_next:
        emu.faults.fail_next(args.fail_next, status=args.fail_status, methods=methods)
    if args.drop_next:
        emu.faults.drop_next(args.drop_next, methods=methods)
    if args.lose_response_next:
        emu.faults.lose_response_next(args.lose_response_next, methods=methods)
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    try:
        emu.start()
    except StateFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        quota = "no quota" if args.no_quota else f"quota {args.quota_per_minute}/min per user"
        saved = f", state in {args.state}" if args.state else ""
        print(f"Sheets API emulator serving on {emu.url} ({quota}{saved})", flush=True)
        print("Press Ctrl+C to stop.", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emu.stop()
        print("Emulator stopped.", flush=True)
    return 0
