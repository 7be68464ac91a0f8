"""Fixtures for the emulator's own tests: a fresh emulator over real HTTP per test, and
unmodified gspread clients routed to it."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gspread
import pytest

from sheetcache.emulator import ManualClock, SheetsEmulator

#: gspread's recorded traffic against the real API (a copy of shared/ sits beside the repo).
CASSETTES = Path(__file__).resolve().parents[2] / ".." / "shared" / "sheets-cassettes"


@pytest.fixture
def emu() -> Iterator[SheetsEmulator]:
    """An emulator without quotas (tests about quotas make their own)."""
    with SheetsEmulator(quota=False) as emulator:
        yield emulator


@pytest.fixture
def gc(emu: SheetsEmulator) -> gspread.Client:
    return emu.client()


@pytest.fixture
def ws(gc: gspread.Client) -> gspread.Worksheet:
    """``Sheet1`` of a new spreadsheet (1000 x 26)."""
    return gc.create("emulator test").sheet1


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def quota_emu(clock: ManualClock) -> Iterator[SheetsEmulator]:
    """An emulator enforcing Google's default quotas on a clock the test moves."""
    with SheetsEmulator(clock=clock) as emulator:
        yield emulator


def _wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """Poll a condition until truthy: a generous deadline, short naps, never a fixed sleep."""
    return _wait_for


@pytest.fixture
def cassettes() -> Path:
    """The shared cassette directory; the test is skipped when it is not there."""
    if not CASSETTES.is_dir():
        pytest.skip(
            f"no shared cassettes at {CASSETTES.resolve()} (shared/ is not beside the repo)"
        )
    return CASSETTES


class ServedEmulator:
    """``sheetcache emulator`` running in a child process."""

    def __init__(self, proc: subprocess.Popen[str], url: str, lines: queue.Queue[str]) -> None:
        self.proc = proc
        self.url = url
        self.lines = lines

    def output(self) -> str:
        """Everything printed so far (after the process ended: everything)."""
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return "".join(out)


@pytest.fixture
def serve() -> Iterator[Callable[..., ServedEmulator]]:
    """Start ``python -m sheetcache.cli emulator ARGS`` and wait for the URL it prints.

    Every process started is terminated (SIGTERM) and reaped at the end of the test.
    """
    started: list[tuple[subprocess.Popen[str], threading.Thread]] = []
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")

    def start(*args: str) -> ServedEmulator:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sheetcache.cli", "emulator", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        started.append((proc, reader))
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            seen.append(line)
            for word in line.split():
                if word.startswith("http://"):
                    return ServedEmulator(proc, word, lines)
        raise AssertionError("the emulator printed no URL: " + "".join(seen))

    yield start
    for proc, reader in started:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=60)
        reader.join(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
