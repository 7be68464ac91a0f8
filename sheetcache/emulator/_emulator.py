"""``SheetsEmulator``: the server in a background thread, and the handles tests hold."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import gspread
import requests
from google.auth.transport.requests import AuthorizedSession

from sheetcache.emulator._batch import FORMATTING_KINDS
from sheetcache.emulator._common import resolve_range
from sheetcache.emulator._faults import Faults
from sheetcache.emulator._persist import StateSaver, load_state, save_state
from sheetcache.emulator._quota import Quota, QuotaLimits
from sheetcache.emulator._server import App, EmulatorHTTPServer, RequestRecord
from sheetcache.emulator._state import DriveFile, Spreadsheet, Store
from sheetcache.emulator._transport import routed_client, routed_session
from sheetcache.emulator._values import (
    FORMATTED,
    UNFORMATTED,
    Entered,
    input_option_of,
    render,
)

__all__ = [
    "CellInfo",
    "SheetsEmulator",
]

DEFAULT_USER = "emulator-user"


@dataclass(frozen=True, slots=True)
class CellInfo:
    """One stored cell, for assertions.

    Attributes:
        value: The unformatted value (``None`` when empty).
        formatted: What ``FORMATTED_VALUE`` returns (``""`` when empty).
        formula: The formula text, or ``None``.
        input_option: ``"RAW"``, ``"USER_ENTERED"`` or ``None`` (empty) - how it was written.
    """

    value: Any
    formatted: str
    formula: str | None
    input_option: str | None


class SheetsEmulator:
    """A Google Sheets API (v4, plus the Drive v3 calls gspread makes) on 127.0.0.1.

    Example:
        >>> with SheetsEmulator() as emu:  # doctest: +SKIP
        ...     gc = emu.client()
        ...     ws = gc.create("cache").sheet1
        ...     ws.append_row(["key", "value"])
        ...     assert all(r.value_input_option == "RAW" for r in emu.requests
        ...                if r.value_input_option)

    Args:
        host: Interface to listen on.
        port: Port; 0 picks a free one (read it back from :attr:`url`).
        quota: Per-minute limits (:class:`QuotaLimits`), ``True`` for Google's defaults
            (60 reads and 60 writes per user, 300 of each per project), ``False`` for none.
        clock: Time source of the quota window (e.g. :class:`ManualClock`).
        latency_ms: Delay added to every request.
        state_path: Keep spreadsheets in this file across restarts.
        save_interval: Seconds between background saves of ``state_path``.

    Attributes:
        faults: Fault injection (:class:`Faults`).
        quota: The quota counters and limits (:class:`Quota`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        quota: QuotaLimits | bool = True,
        clock: Any = None,
        latency_ms: float = 0.0,
        state_path: str | Path | None = None,
        save_interval: float = 0.5,
    ) -> None:
        self._store = Store()
        limits = quota if isinstance(quota, QuotaLimits) else QuotaLimits()
        self.quota = Quota(limits, enabled=quota is not False, clock=clock)
        self.faults = Faults()
        self.faults.latency_ms = latency_ms
        self._app = App(self._store, self.quota, self.faults)
        self._host = host
        self._port = port
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sessions: list[requests.Session] = []
        self.state_path = Path(state_path) if state_path else None
        self._save_interval = save_interval
        self._saver: StateSaver | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> SheetsEmulator:
        """Load the state file (if any) and start serving in a background thread."""
        if self._server is not None:
            return self
        if self.state_path is not None:
            load_state(self._store, self.state_path)
            self._saver = StateSaver(self._store, self.state_path, self._save_interval)
            self._saver.start()
        self._server = EmulatorHTTPServer((self._host, self._port), self._app)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"sheets-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the sessions :meth:`client` made, save the state file."""
        server, self._server = self._server, None
        for session in self._sessions:
            session.close()
        self._sessions.clear()
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._saver is not None:
            self._saver.stop()
            self._saver = None

    def __enter__(self) -> SheetsEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    # --- clients -------------------------------------------------------------------------

    def client(self, user: str = DEFAULT_USER, *, timeout: float | None = None) -> gspread.Client:
        """A gspread client routed here (see :func:`routed_client`); closed on :meth:`stop`."""
        client = routed_client(self.url, user=user, timeout=timeout)
        self._sessions.append(client.http_client.session)
        return client

    def session(self, user: str = DEFAULT_USER) -> AuthorizedSession:
        """A raw authorised ``requests`` session routed here; closed on :meth:`stop`."""
        session = routed_session(self.url, user=user)
        self._sessions.append(session)
        return session

    # --- observation ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far, oldest first (a copy)."""
        return self._app.log

    def clear_requests(self) -> None:
        self._app.clear_log()

    def reset_quota(self) -> None:
        """Forget counted requests, as if a new minute had begun."""
        self.quota.reset()

    def spreadsheet_ids(self) -> list[str]:
        with self._store.lock:
            return [f.id for f in self._store.files.values() if f.spreadsheet is not None]

    def get_values(
        self,
        spreadsheet_id: str,
        range_name: str | None = None,
        *,
        value_render_option: str = FORMATTED,
    ) -> list[list[Any]]:
        """Values of a range (default: the first sheet), read directly: no HTTP, no quota."""
        with self._store.lock:
            spreadsheet = self._spreadsheet(spreadsheet_id)
            resolved = resolve_range(spreadsheet, range_name or spreadsheet.sheets[0].title)
            r0, r1, c0, c1 = resolved.clip()
            rows = resolved.sheet.read(r0, r1, c0, c1, value_render_option)
            return [list(row) for row in rows]

    def cell(self, spreadsheet_id: str, a1: str) -> CellInfo:
        """One cell (``"Sheet1!B2"``): value, formatted text, formula, and how it was written."""
        with self._store.lock:
            spreadsheet = self._spreadsheet(spreadsheet_id)
            resolved = resolve_range(spreadsheet, a1)
            stored = resolved.sheet.cell(resolved.bounds.start_row, resolved.bounds.start_col)
            if stored == "" and type(stored) is str:
                return CellInfo(None, "", None, None)
            formula = stored.formula if type(stored) is Entered else None
            return CellInfo(
                render(stored, UNFORMATTED),
                str(render(stored, FORMATTED)),
                formula,
                input_option_of(stored),
            )

    def recorded_requests(self, spreadsheet_id: str) -> list[dict[str, Any]]:
        """Every request of every committed ``batchUpdate`` on a spreadsheet, in order."""
        with self._store.lock:
            return list(self._spreadsheet(spreadsheet_id).batch_log)

    def recorded_formatting(self, spreadsheet_id: str) -> list[dict[str, Any]]:
        """The formatting requests (``repeatCell``, ``setDataValidation``, ``setBasicFilter``,
        ``updateDimensionProperties``, ``autoResizeDimensions``...) sent to a spreadsheet.
        """
        return [
            request
            for request in self.recorded_requests(spreadsheet_id)
            if next(iter(request)) in FORMATTING_KINDS
        ]

    # --- seeding and sharing -------------------------------------------------------------

    def create_spreadsheet(
        self, title: str = "Untitled spreadsheet", *, owner: str = DEFAULT_USER
    ) -> str:
        """Create a spreadsheet directly (no HTTP, no quota); returns its id."""
        with self._store.lock:
            return self._store.create_spreadsheet(title, owner).id

    def restrict(
        self,
        spreadsheet_id: str,
        allowed_users: list[str] | tuple[str, ...] | None,
        *,
        readers: list[str] | tuple[str, ...] = (),
    ) -> None:
        """Share a spreadsheet with these users only (others get Google's 403, and Drive
        hides it from them); ``readers`` may read but not write. ``None`` shares it with
        everyone again (the default for new spreadsheets).
        """
        with self._store.lock:
            file = self._file(spreadsheet_id)
            if allowed_users is None and not readers:
                file.allowed = None
            else:
                allowed = {user: "reader" for user in readers}
                allowed.update({user: "writer" for user in allowed_users or ()})
                file.allowed = allowed
            self._store.changed()

    def save_state(self, path: str | Path | None = None) -> None:
        """Write the state file now (``path`` defaults to ``state_path``)."""
        target = Path(path) if path else self.state_path
        if target is None:
            raise ValueError("no state path: pass one or create the emulator with state_path=")
        save_state(self._store, target)

    def _file(self, spreadsheet_id: str) -> DriveFile:
        file = self._store.files.get(spreadsheet_id)
        if file is None or file.spreadsheet is None:
            raise KeyError(f"no spreadsheet {spreadsheet_id!r} in the emulator")
        return file

    def _spreadsheet(self, spreadsheet_id: str) -> Spreadsheet:
        spreadsheet = self._file(spreadsheet_id).spreadsheet
        assert spreadsheet is not None
        return spreadsheet
