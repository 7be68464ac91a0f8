"""Fixtures for the Sheets backend tests: the project's emulator over real HTTP.

The session emulator runs without quotas so the suite is fast; tests about quotas start
their own with Google's defaults. Every URL carries short retry settings
(:data:`FAST`): the policy is the same, only the clock is shorter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gspread
import pytest

from sheetcache.backends.sheets import init_worksheet
from sheetcache.emulator import SheetsEmulator

TAB = "llm-cache"
#: Retry/refresh settings for tests: same policy, seconds instead of minutes. The session
#: emulator has no quota, so the client-side limiter is lifted too (quota tests set their own).
FAST = (
    "refresh=60&deadline=5&backoff=0.02&max_wait=0.2&timeout=10&open_timeout=3&flush=0.2&late_apply=0.5"
    "&read_quota=100000&write_quota=100000"
)


@dataclass
class Sheet:
    """A spreadsheet in the emulator, prepared with ``sheetcache init``."""

    emu: SheetsEmulator
    id: str
    url: str

    def with_options(self, options: str) -> str:
        return f"{self.url}&{options}"

    def values(self, tab: str = TAB) -> list[list[Any]]:
        """The tab as stored (UNFORMATTED), read directly: no HTTP, no quota."""
        return self.emu.get_values(self.id, f"'{tab}'", value_render_option="UNFORMATTED_VALUE")

    def rows(self) -> list[dict[str, Any]]:
        """Data rows of the main tab as dicts by header."""
        values = self.values()
        header = [str(h) for h in values[0]]
        return [
            {h: (row[i] if i < len(row) else "") for i, h in enumerate(header)}
            for row in values[1:]
        ]

    def row_number(self, key: str) -> int:
        """1-based sheet row of ``key`` (the first if duplicated)."""
        for i, row in enumerate(self.rows()):
            if row["key"] == key:
                return i + 2
        raise KeyError(key)

    def reviewer(self, user: str = "reviewer") -> gspread.Worksheet:
        """The worksheet as a person would open it: a separate gspread client and user."""
        return self.emu.client(user=user).open_by_key(self.id).worksheet(TAB)

    def our_requests(self) -> list[Any]:
        return [r for r in self.emu.requests if r.user == "emulator-user" and self.id in r.path]


@pytest.fixture(scope="session")
def emulator() -> Iterator[SheetsEmulator]:
    with SheetsEmulator(quota=False) as emu:
        yield emu


@pytest.fixture
def sheet(emulator: SheetsEmulator) -> Iterator[Sheet]:
    sid = emulator.create_spreadsheet("sheetcache test")
    url = f"sheets://{sid}/{TAB}?endpoint={emulator.url}&{FAST}"
    init_worksheet(url)
    yield Sheet(emulator, sid, url)
    emulator.faults.clear()


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy (generous deadline, short naps)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def service_account_key(path: Path, email: str = "robot@proj.iam.gserviceaccount.com") -> Path:
    """Write a service-account key file with a freshly made RSA key: google-auth signs real
    JWTs with it, and the emulator's token endpoint accepts any well-formed one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "proj", "private_key_id": "k1",
        "private_key": pem, "client_email": email, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))  # fmt: skip
    return path
