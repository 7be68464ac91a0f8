"""``sheets://SPREADSHEET_ID/TAB``: entries in a Google Sheet that people review.

:class:`SheetsBackend` is a facade wiring four parts around one :class:`SheetState`:

- :class:`~._reader.Reader`: full reads (pages of rows) and incremental reads, one cursor;
- :class:`~._writer.Writer`: verified in-place updates, hit counts, idempotent appends, parts;
- :class:`~._index.Index`: keys -> rows, status and a fingerprint (O(keys) memory), with the
  entries themselves in the local SQLite :class:`~._mirror.Mirror`;
- :class:`~._maintenance.Maintenance`: deletes, pruning and (background) compaction.

The sync model (docs/sheets.md): the sheet is the truth. Each process caches what it last
read or wrote: the index and mirror here, and the answers in the cache front's L1. Every
read or write that teaches this process something new about an entry reports the key to
subscribers, so the L1 drops it. Lookups read the index and the mirror only: a hit never
waits on the network.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from sheetcache._errors import BackendError, ConfigError, SchemaError
from sheetcache._logging import OutageLog
from sheetcache._urls import redact_url
from sheetcache.backends.base import Backend, Entry
from sheetcache.backends.sheets._client import (
    RetryPolicy,
    SheetsApi,
    make_client,
    shared_limiter,
    status_of,
)
from sheetcache.backends.sheets._index import serving_fp
from sheetcache.backends.sheets._maintenance import Maintenance
from sheetcache.backends.sheets._mirror import Mirror, mirror_path
from sheetcache.backends.sheets._options import DEFAULT_MAX_CELLS, parse_sheets_url
from sheetcache.backends.sheets._reader import Reader, SheetState
from sheetcache.backends.sheets._writer import Writer

__all__ = ["DEFAULT_MAX_CELLS", "SheetsBackend", "parse_sheets_url"]

log = logging.getLogger("sheetcache")


class SheetsBackend(Backend):
    """Entries in one worksheet of a Google Sheet, reviewed by people.

    Args:
        spreadsheet_id: the ID in the spreadsheet's address (between ``/d/`` and ``/edit``).
        worksheet: the tab's title. ``sheetcache init`` creates and formats it.
        credentials: a service-account JSON key file (else ``$GOOGLE_APPLICATION_CREDENTIALS``,
            else gspread's files). With ``endpoint`` too, its signed tokens go to the emulator.
        endpoint: base URL of a Sheets API emulator; no credentials are needed then.
        user: the emulator user to act as (its quota is per user).
        refresh: seconds between reads of newly appended rows.
        full_refresh: seconds between full re-reads (reviewer edits). Default: ``refresh``,
            stretched on big sheets so re-reading costs at most ~2 % of a core.
        flush: seconds between the cache's background flushes (bigger batches, fewer requests).
        timeout, deadline, backoff, max_wait: one request's timeout; total seconds of retrying;
            first backoff; longest backoff (see :class:`RetryPolicy`).
        open_timeout: total seconds the first load (and a read command on a sheet that could
            not be loaded) may take before giving up: the backend then serves the mirror and
            keeps trying in the background.
        late_apply: seconds an append whose outcome is unknown may still land (Google can
            apply a write after its client gave up); a re-send waits that long first.
        compact: seconds between background compactions (only when duplicates were found).
        read_quota, write_quota: requests per minute this process allows itself (per user).
        quota_window: the quota's window in seconds (Google: 60; shorter for tests).
        max_cells: prune before the spreadsheet would exceed this many cells.
        mirror: share the machine's SQLite mirror of the sheet (off: a private temporary one,
            so nothing is served across restarts while Sheets is down).
    """

    local = False
    lookup_is_local = True
    # Writes are quota-bound (60 requests/min), not size-bound: bigger batches, more rows per
    # minute. The writer still splits a batch to stay under the 10 MiB request limit.
    flush_batch_size = 2000

    def __init__(
        self,
        spreadsheet_id: str,
        worksheet: str,
        *,
        credentials: str | None = None,
        endpoint: str | None = None,
        user: str | None = None,
        refresh: float = 30.0,
        full_refresh: float | None = None,
        flush: float = 5.0,
        timeout: float = 30.0,
        deadline: float = 120.0,
        backoff: float = 1.0,
        max_wait: float = 32.0,
        open_timeout: float = 15.0,
        late_apply: float = 10.0,
        compact: float = 300.0,
        read_quota: int = 60,
        write_quota: int = 60,
        quota_window: float = 60.0,
        max_cells: int = DEFAULT_MAX_CELLS,
        mirror: bool = True,
    ) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.worksheet = worksheet
        # The identity of the store, without tuning options: the cache keys its outbox file by
        # this, so changing ?refresh= must not strand answers queued under the old URL.
        canonical = f"sheets://{spreadsheet_id}/{quote(worksheet, safe='')}"
        self.url = redact_url(canonical + (f"?endpoint={endpoint}" if endpoint else ""))
        self.init_hint = self.url
        self.flush_interval = flush  # type: ignore[misc]  # per instance: set from the URL
        self.refresh_interval = refresh
        self.full_refresh_interval = full_refresh
        self.open_timeout = open_timeout
        self._closing = threading.Event()
        self._net = threading.RLock()  # one logical network operation at a time
        self._subscribers: list[Callable[[set[str]], None]] = []
        self._reads = OutageLog(f"refreshing {self.url}")
        self.state = SheetState(spreadsheet_id, worksheet, self.url, self.init_hint)
        self.stats = self.state.stats

        client, identity = make_client(
            credentials=credentials, endpoint=endpoint, user=user, timeout=timeout
        )
        self.identity = identity
        policy = RetryPolicy(timeout=timeout, deadline=deadline, backoff=backoff, max_wait=max_wait)
        limiter = shared_limiter(
            endpoint or "google", identity.principal, read_quota, write_quota, quota_window
        )
        self.api = SheetsApi(client, spreadsheet_id, identity, policy, limiter)
        self.mirror = self._open_mirror(endpoint or "google", shared=mirror)
        self.reader = Reader(self.state, self.api, self.mirror, self._notify)
        self.maintenance = Maintenance(
            self.state, self.api, self.mirror, self.reader, self._notify, max_cells, compact
        )
        self.writer = Writer(
            self.state, self.api, self.mirror, self.reader, self._notify,
            self.maintenance.make_room, self._closing, late_apply,
        )  # fmt: skip
        try:
            self._first_load()
        except BaseException:
            self._close_resources()
            raise
        self._thread = threading.Thread(
            target=self._refresh_loop, name="sheetcache-sheets-refresh", daemon=True
        )
        self._thread.start()

    @classmethod
    def from_url(cls, url: str) -> SheetsBackend:
        return cls(**parse_sheets_url(url))

    # -- opening ----------------------------------------------------------------------------

    def _open_mirror(self, server: str, *, shared: bool) -> Mirror:
        if shared:
            try:
                return Mirror(mirror_path(self.spreadsheet_id, self.worksheet, server))
            except Exception as exc:  # noqa: BLE001 - a private one does as well, minus restarts
                log.warning("sheetcache: the local mirror of %s is unusable (%s); using a "
                            "private one", self.url, exc)  # fmt: skip
        return Mirror(None)

    def _first_load(self) -> None:
        try:
            self._load_bounded()
        except (ConfigError, SchemaError):
            raise
        except BackendError as exc:
            if exc.__cause__ is not None and status_of(exc.__cause__) == 404:
                raise ConfigError(str(exc)) from None
            self._serve_mirror()
            self._reads.failing = True
            log.error(
                "sheetcache: could not load %s (%s). Serving the %d entries of the local "
                "mirror; new answers wait in the outbox; retrying in the background.",
                self.url, exc, len(self.state.index),
            )  # fmt: skip

    def _load_bounded(self) -> None:
        """A full read within ``open_timeout`` (the first load, and read commands)."""
        self.api.deadline = self.open_timeout
        try:
            with self._net:
                self.reader.full_load()
        finally:
            self.api.deadline = None

    def _serve_mirror(self) -> None:
        """Sheets is unreachable at open: serve what the mirror kept from the last run."""
        from sheetcache.backends.sheets._index import Index

        ix = Index()
        ix.complete = False
        try:
            for entry in self.mirror.iter_keys(self.mirror.all_keys()):
                ix.set(entry.key, 0, entry.status, serving_fp(entry))
        except Exception as exc:  # noqa: BLE001 - the mirror is an optimisation
            log.warning("sheetcache: local mirror of %s unreadable (%s)", self.url, exc)
            return
        self.state.index = ix

    # -- change notices -----------------------------------------------------------------------

    def subscribe(self, callback: Callable[[set[str]], None]) -> None:
        self._subscribers.append(callback)

    def _notify(self, keys: set[str]) -> None:
        if not keys:
            return
        for callback in list(self._subscribers):
            try:
                callback(set(keys))
            except Exception:
                log.exception("sheetcache: a change subscriber failed")

    # -- refresh ------------------------------------------------------------------------------

    def _full_interval(self) -> float:
        if self.full_refresh_interval is not None:
            return self.full_refresh_interval
        # A full read of a big sheet costs seconds of CPU: space them so it stays ~2 %.
        return max(self.refresh_interval, 50.0 * self.state.full_cost)

    def _refresh_loop(self) -> None:
        while not self._closing.wait(self.refresh_interval):
            try:
                with self._net:
                    if self._closing.is_set():
                        return
                    st = self.state
                    due = time.monotonic() - st.last_full >= self._full_interval()
                    if not st.loaded or due:
                        self.reader.full_load()
                    else:
                        self.reader.incremental()
                    if self.maintenance.compact_due():
                        self.maintenance.compact_in_background()
                self._reads.ok()
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                if self._closing.is_set():
                    return
                self._reads.failed(exc, "serving what is known and retrying")

    def refresh(self) -> None:
        """Re-read the whole worksheet now: teammates' rows and reviewers' edits.

        Raises:
            BackendError: Sheets could not be read (what is known keeps being served).
        """
        with self._net:
            self.reader.full_load()

    @property
    def unreachable(self) -> bool:
        """True while the last request to Sheets failed (network error, 5xx)."""
        return self.api.last_failed or self._reads.failing

    # -- the read API (local: index + mirror) ----------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        if key not in self.state.index.slots:
            return None
        return self.mirror.get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        ix = self.state.index
        return self.mirror.get_many([k for k in keys if k in ix])

    def _loaded_for_reading(self) -> None:
        """Load the sheet now (within ``open_timeout``) or raise.

        Read commands (export, stats) must not report a mirror as the sheet.
        """
        if not self.state.loaded:
            self._load_bounded()

    def iter_entries(self, namespace: str | None = None) -> Iterator[Entry]:
        """Every entry, streamed from the mirror in batches (bounded memory).

        Raises:
            BackendError: the sheet could not be read within ``open_timeout``.
        """
        self._loaded_for_reading()
        for entry in self.mirror.iter_keys(self.state.index.keys()):
            if namespace is None or entry.namespace == namespace:
                yield entry

    def count(self, namespace: str | None = None) -> int:
        """Entries in the sheet (of ``namespace``, if given).

        Raises:
            BackendError: the sheet could not be read within ``open_timeout``.
        """
        self._loaded_for_reading()
        keys = list(self.state.index.keys())
        if namespace is None:
            return len(keys)
        return sum(1 for ns in self.mirror.namespaces(keys).values() if ns == namespace)

    def cells_used(self) -> int:
        """Cells of the spreadsheet as last known (all worksheets, rows x columns)."""
        return self.state.cells_used()

    # -- writes -------------------------------------------------------------------------------

    def put_many(self, entries: Sequence[Entry]) -> None:
        latest = {e.key: e for e in entries}
        if latest:
            with self._net:
                self.writer.put(latest)

    def put_queued(self, batch: Sequence[Any]) -> None:
        """Upsert claimed outbox rows (:class:`sheetcache._outbox.Queued`).

        Their write ids go in the rows' meta, and rows claimed before are checked for having
        landed first.
        """
        latest: dict[str, Entry] = {}
        write_ids: dict[str, str] = {}
        mine: set[str] = set()
        tried: list[float] = []
        for queued in batch:
            key = queued.entry.key
            latest[key] = queued.entry
            write_ids[key] = queued.write_id
            if getattr(queued, "mine", False):
                mine.add(key)  # our own answer: the L1 holds it already, no notice needed
            else:
                mine.discard(key)  # another process's answer came later: notify
            if queued.tried_at is not None:
                tried.append(queued.tried_at)
        if latest:
            with self._net:
                self.writer.put(latest, write_ids, max(tried) if tried else None, quiet=mine)

    def record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        with self._net:
            self.writer.record_hits(hits)

    def delete_many(self, keys: Sequence[str]) -> int:
        with self._net:
            return self.maintenance.delete_many(keys)

    def delete_where(self, predicate: Any, namespace: str | None = None) -> int:
        with self._net:
            return self.maintenance.delete_where(predicate, namespace)

    def compact(self, *, dry_run: bool = False) -> dict[str, int]:
        """Delete duplicate rows, empty rows inside the table and orphaned parts.

        Returns counts: ``duplicates``, ``blank``, ``orphan_parts``.
        """
        with self._net:
            return self.maintenance.compact(dry_run=dry_run)

    # -- closing ------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop waiting: a request in retries or a late-apply wait gives up now.

        Called by the flusher when a close must not wait any longer; the backend is closing
        then.
        """
        self._closing.set()
        self.api.closing.set()

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.interrupt()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)
        self._close_resources()

    def _close_resources(self) -> None:
        self.interrupt()
        # A flusher may be inside a request; give it a moment, then close regardless.
        locked = self._net.acquire(timeout=1.0)
        try:
            with contextlib.suppress(Exception):
                self.mirror.close()
            session = getattr(self.api.http, "session", None)
            if session is not None:
                session.close()
        finally:
            if locked:
                self._net.release()
