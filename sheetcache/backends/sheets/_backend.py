"""``sheets://SPREADSHEET_ID/TAB``: entries in a Google Sheet that people review.

How it keeps Google out of the hot path:

- Open reads the whole worksheet in two read requests (metadata, one ``values.batchGet`` of
  the tab and its parts tab) and builds an in-memory index; :meth:`lookup` only reads that
  index, so a hit never waits on the network. A local SQLite mirror keeps the last contents,
  so a process started while Sheets is unreachable still serves hits.
- Writes come from the cache's durable outbox in batches: new keys are appended (many rows
  per ``values.append``, RAW), known keys are rewritten in place (``values.batchUpdate``),
  hit counts go in one ``values.batchUpdate`` per flush.
- A background thread refreshes: rows appended since the last read every ``refresh``
  seconds (one small read), and a full re-read (reviewer edits) on a slower cadence that
  adapts to the sheet's size; keys whose entry changed are reported to subscribers so the
  cache drops them from its L1.

Rows move (people sort, delete, insert), so a row number is never trusted for a write: the
key cells of the target rows are read back first, and a mismatch triggers a full re-read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from sheetcache._errors import BackendError, ConfigError, SchemaError
from sheetcache._urls import redact_url
from sheetcache.backends.base import Backend, Entry
from sheetcache.backends.sheets._client import (
    RetryPolicy,
    SheetsApi,
    is_retryable,
    make_client,
    shared_limiter,
    status_of,
)
from sheetcache.backends.sheets._layout import (
    HEADERS,
    PARTS_HEADERS,
    EncodedEntry,
    IncompleteParts,
    Layout,
    PartsIndex,
    RowDecoder,
    RowError,
    cell_text,
    col_letter,
    encode_entry,
    format_time,
    parse_time,
    quote_title,
    winner_rank,
)
from sheetcache.backends.sheets._mirror import Mirror, mirror_path
from sheetcache.backends.sheets._prune import SLACK, choose_victims

__all__ = ["DEFAULT_MAX_CELLS", "SheetsBackend", "parse_sheets_url"]

log = logging.getLogger("sheetcache")

#: Google's limit on cells in one spreadsheet (all worksheets, rows x columns).
DEFAULT_MAX_CELLS = 10_000_000
# A values.append or values.batchUpdate body may be at most 10 MiB; stay well under.
_MAX_BODY = 8 * 1024 * 1024
# deleteDimension requests per batchUpdate (~150 bytes each: well under the body limit).
_DELETES_PER_REQUEST = 20_000
# More verification ranges than this read whole columns instead (URL length).
_MAX_RANGES = 90

_OPTIONS: dict[str, Callable[[str], Any]] = {
    "credentials": str,
    "endpoint": str,
    "user": str,
    "refresh": float,
    "full_refresh": float,
    "flush": float,
    "timeout": float,
    "deadline": float,
    "backoff": float,
    "max_wait": float,
    "open_timeout": float,
    "read_quota": int,
    "write_quota": int,
    "max_cells": int,
    "quota_window": float,
    "mirror": lambda v: v.lower() not in ("0", "off", "false", "no"),
}


def parse_sheets_url(url: str) -> dict[str, Any]:
    """``sheets://ID/TAB?opt=...`` -> keyword arguments of :class:`SheetsBackend`.

    Raises:
        ConfigError: malformed URL or unknown/invalid option.
    """
    shown = redact_url(url)
    parts = urlsplit(url)
    spreadsheet_id = parts.netloc
    tab = unquote(parts.path.lstrip("/"))
    if "." in spreadsheet_id or "/" in tab:
        raise ConfigError(
            f"{shown!r}: put the spreadsheet ID after sheets://, not its web address: for "
            "https://docs.google.com/spreadsheets/d/ABC123/edit use sheets://ABC123/TAB"
        )
    if not re.fullmatch(r"[A-Za-z0-9_-]+", spreadsheet_id or "") or not tab:
        raise ConfigError(
            f"{shown!r} is not sheets://SPREADSHEET_ID/WORKSHEET (e.g. sheets://1AbC.../llm-cache)"
        )
    kwargs: dict[str, Any] = {"spreadsheet_id": spreadsheet_id, "worksheet": tab}
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        convert = _OPTIONS.get(name)
        if convert is None:
            raise ConfigError(
                f"unknown option {name!r} in {shown!r}; known: {', '.join(sorted(_OPTIONS))}"
            )
        try:
            value = convert(values[-1])
        except ValueError:
            raise ConfigError(f"option {name}={values[-1]!r} in {shown!r} is not valid") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not value > 0:
            raise ConfigError(f"option {name} in {shown!r} must be positive")
        kwargs[name] = value
    return kwargs


class _Index:
    """What a read of the sheet found. Replaced whole on a full read, so a lookup sees either
    the old or the new one, never a mix."""

    __slots__ = ("entries", "rows", "dups", "part_ids", "row_keys", "bad", "blank", "incomplete",
                 "parts")  # fmt: skip

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        """Key -> the winning row's entry (see :func:`winner_rank`)."""
        self.rows: dict[str, int] = {}
        """Key -> its winning row (1-based)."""
        self.dups: dict[str, list[int]] = {}
        """Key -> its losing rows."""
        self.part_ids: dict[int, str] = {}
        """Row -> the parts id its meta names."""
        self.row_keys: dict[int, str] = {}
        """Row -> key, for every readable row."""
        self.bad: dict[int, str] = {}
        """Row -> why it was skipped."""
        self.blank: list[int] = []
        self.incomplete: dict[int, list[Any]] = {}
        """Rows whose parts have not landed yet, retried on the next read."""
        self.parts = PartsIndex()

    def add(self, entry: Entry, row: int, part_id: str | None) -> bool:
        """Index one row; True if it became (or replaced) its key's winner."""
        key = entry.key
        self.row_keys[row] = key
        if part_id is not None:
            self.part_ids[row] = part_id
        old_row = self.rows.get(key)
        if old_row == row:
            self.entries[key] = entry
            return True
        if old_row is None:
            self.entries[key], self.rows[key] = entry, row
            return True
        if winner_rank(entry, row) > winner_rank(self.entries[key], old_row):
            self.dups.setdefault(key, []).append(old_row)
            self.entries[key], self.rows[key] = entry, row
            return True
        self.dups.setdefault(key, []).append(row)
        return False

    def dup_rows(self) -> list[int]:
        return [row for rows in self.dups.values() for row in rows]


def _serves_differently(a: Entry | None, b: Entry | None) -> bool:
    if a is None or b is None:
        return a is not b
    return (a.value, a.value_type, a.status, a.expires_at) != (
        b.value, b.value_type, b.status, b.expires_at,
    )  # fmt: skip


_RANGE_ROWS = re.compile(r"!\$?[A-Z]*\$?(\d+)(?::\$?[A-Z]*\$?(\d+))?$")


def _rows_of(updated_range: str) -> tuple[int, int]:
    match = _RANGE_ROWS.search(updated_range)
    if not match:
        raise BackendError(f"unexpected range {updated_range!r} in Google's append response")
    first = int(match.group(1))
    return first, int(match.group(2) or first)


def _runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted rows -> runs of consecutive rows ``[(first, last)]``."""
    out: list[tuple[int, int]] = []
    for row in sorted(set(rows)):
        if out and out[-1][1] + 1 == row:
            out[-1] = (out[-1][0], row)
        else:
            out.append((row, row))
    return out


def _body_size(rows: Sequence[Sequence[Any]]) -> int:
    # requests sends JSON with ensure_ascii: non-ASCII costs up to 12 bytes a character.
    size = 0
    for row in rows:
        for cell in row:
            if isinstance(cell, str):
                size += len(cell) + 4 if cell.isascii() else len(cell) * 6 + 4
            else:
                size += 24
    return size


class SheetsBackend(Backend):
    """Entries in one worksheet of a Google Sheet, reviewed by people.

    Args:
        spreadsheet_id: the ID in the spreadsheet's address (between ``/d/`` and ``/edit``).
        worksheet: the tab's title. ``sheetcache init`` creates and formats it.
        credentials: a service-account JSON key file (else ``$GOOGLE_APPLICATION_CREDENTIALS``,
            else gspread's files).
        endpoint: base URL of a Sheets API emulator; no credentials are needed then.
        user: the emulator user to act as (its quota is per user).
        refresh: seconds between reads of newly appended rows.
        full_refresh: seconds between full re-reads (reviewer edits). Default: ``refresh``,
            stretched on big sheets so re-reading costs at most ~2 % of a core.
        flush: seconds between the cache's background flushes (bigger batches, fewer requests).
        timeout, deadline, backoff, max_wait: one request's timeout; total seconds of retrying;
            first backoff; longest backoff (see :class:`RetryPolicy`).
        open_timeout: total seconds the first load may take before the backend falls back to
            the mirror and keeps trying in the background.
        read_quota, write_quota: requests per minute this process allows itself (per user).
        quota_window: the quota's window in seconds (Google: 60; shorter for tests).
        max_cells: prune before the spreadsheet would exceed this many cells.
        mirror: keep the local SQLite mirror.
    """

    local = False
    lookup_is_local = True
    # Writes are quota-bound (60 requests/min), not size-bound: bigger batches, more rows per
    # minute. put_many still splits a batch to stay under the 10 MiB request limit.
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
        read_quota: int = 60,
        write_quota: int = 60,
        quota_window: float = 60.0,
        max_cells: int = DEFAULT_MAX_CELLS,
        mirror: bool = True,
    ) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.worksheet = worksheet
        self.parts_worksheet = f"{worksheet}.parts"
        # The identity of the store, without tuning options: the cache keys its outbox file by
        # this, so changing ?refresh= must not strand answers queued under the old URL.
        canonical = f"sheets://{spreadsheet_id}/{quote(worksheet, safe='')}"
        self.url = redact_url(canonical + (f"?endpoint={endpoint}" if endpoint else ""))
        self.init_hint = self.url
        self.flush_interval = flush  # type: ignore[misc]  # per instance: set from the URL
        self.refresh_interval = refresh
        self.full_refresh_interval = full_refresh
        self.max_cells = max_cells
        self._closing = threading.Event()
        self._net = threading.RLock()  # one logical network operation at a time
        self._ix = _Index()
        self._layout: Layout | None = None
        self._parts_layout: Layout | None = None
        self._sheet_ids: dict[str, int] = {}
        self._grid: dict[str, list[int]] = {}
        self._other_cells = 0
        self._read_upto = 1
        self._tail = ""
        self._parts_read_upto = 1
        self._loaded = False
        self._stale = False
        self._warned: set[tuple[int, str]] = set()
        self._subscribers: list[Callable[[set[str]], None]] = []
        self._refresh_failing = False
        self._last_full = 0.0
        self._full_cost = 0.0
        self.stats = {"full_reads": 0, "incremental_reads": 0, "appended_rows": 0, "pruned_rows": 0}

        client, identity = make_client(
            credentials=credentials, endpoint=endpoint, user=user, timeout=timeout
        )
        self.identity = identity
        policy = RetryPolicy(timeout=timeout, deadline=deadline, backoff=backoff, max_wait=max_wait)
        limiter = shared_limiter(
            endpoint or "google", identity.principal, read_quota, write_quota, quota_window
        )
        self.api = SheetsApi(client, spreadsheet_id, identity, policy, limiter)
        self._mirror: Mirror | None = None
        self._mirror_wake = threading.Event()
        self._mirror_thread: threading.Thread | None = None
        try:
            if mirror:
                self._open_mirror(endpoint or "google")
            self._first_load(open_timeout)
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

    # -- opening ------------------------------------------------------------------------

    def _open_mirror(self, server: str) -> None:
        try:
            self._mirror = Mirror(mirror_path(self.spreadsheet_id, self.worksheet, server))
        except Exception as exc:  # noqa: BLE001 - the mirror is an optimisation
            log.warning("sheetcache: local mirror of %s unusable (%s); continuing without it",
                        self.url, exc)  # fmt: skip
            self._mirror = None
            return
        self._mirror_thread = threading.Thread(
            target=self._mirror_loop, name="sheetcache-sheets-mirror", daemon=True
        )
        self._mirror_thread.start()

    def _serve_mirror(self) -> None:
        """Sheets is unreachable at open: serve what the mirror kept from the last run."""
        if self._mirror is None:
            return
        try:
            saved = self._mirror.load()
        except Exception as exc:  # noqa: BLE001 - the mirror is an optimisation
            log.warning("sheetcache: local mirror of %s unreadable (%s)", self.url, exc)
            return
        ix = _Index()
        for entry, row in saved.values():
            ix.add(entry, row, None)
        self._ix = ix

    def _first_load(self, open_timeout: float) -> None:
        self.api.deadline = open_timeout
        try:
            with self._net:
                self._full_load()
        except (ConfigError, SchemaError):
            raise
        except BackendError as exc:
            if exc.__cause__ is not None and status_of(exc.__cause__) == 404:
                raise ConfigError(str(exc)) from None
            self._serve_mirror()
            self._refresh_failing = True
            log.error(
                "sheetcache: could not load %s (%s). Serving the %d entries of the local "
                "mirror; new answers wait in the outbox; retrying in the background.",
                self.url, exc, len(self._ix.entries),
            )  # fmt: skip
        finally:
            self.api.deadline = None

    # -- reading ------------------------------------------------------------------------

    def _full_load(self) -> None:
        """Read everything (2 read requests) and replace the index."""
        # Building 100,000 entries allocates millions of containers that all survive: the
        # cyclic GC would rescan them again and again for nothing (~40 % of the load time).
        paused = gc.isenabled()
        gc.disable()
        try:
            self._full_load_unpaused()
        finally:
            if paused:
                gc.enable()

    def _full_load_unpaused(self) -> None:
        started = time.monotonic()
        meta = self.api.metadata()
        self._read_metadata(meta)
        if self.worksheet not in self._sheet_ids:
            raise ConfigError(
                f"spreadsheet {self.spreadsheet_id} has no worksheet {self.worksheet!r}: run "
                f"`sheetcache init {self.init_hint}` to create it (existing tabs: "
                f"{', '.join(repr(t) for t in self._sheet_ids)})"
            )
        ranges = [quote_title(self.worksheet)]
        has_parts = self.parts_worksheet in self._sheet_ids
        if has_parts:
            ranges.append(quote_title(self.parts_worksheet))
        value_ranges = self.api.batch_get(ranges)
        rows: list[list[Any]] = value_ranges[0].get("values", []) if value_ranges else []
        if not any(any(c != "" for c in r) for r in rows):
            rows = [self._prepare_empty()]
        layout = Layout.from_header(rows[0], self.worksheet, self.init_hint)
        ix = _Index()
        if has_parts and len(value_ranges) > 1:
            prows = value_ranges[1].get("values", [])
            if prows:
                self._parts_layout = Layout.from_header(
                    prows[0], self.parts_worksheet, self.init_hint, PARTS_HEADERS
                )
                ix.parts.add_rows(self._canonical_parts(prows[1:]), 2)
            self._parts_read_upto = max(1, len(prows))
        else:
            self._parts_layout = None
            self._parts_read_upto = 1
        self._index_rows(ix, layout, rows[1:], 2, warn=True)
        for r in ix.incomplete:
            self._warn_row(r, "parts of its long value are missing from the parts worksheet")
        old = self._ix
        self._layout = layout
        self._ix = ix
        self._read_upto = len(rows)
        self._tail = self._key_cell(rows[-1], layout)
        self._loaded = True
        self._stale = False
        self._last_full = time.monotonic()
        self._full_cost = self._last_full - started
        self.stats["full_reads"] += 1
        self._mirror_dirty()
        changed = {k for k, e in old.entries.items() if _serves_differently(e, ix.entries.get(k))}
        changed |= {k for k in ix.entries if k not in old.entries}
        self._notify(changed)

    def _read_metadata(self, meta: Mapping[str, Any]) -> None:
        self._sheet_ids = {}
        self._grid = {}
        other = 0
        for sheet in meta.get("sheets", []):
            props = sheet.get("properties", {})
            title = props.get("title", "")
            grid = props.get("gridProperties", {})
            size = [int(grid.get("rowCount", 0)), int(grid.get("columnCount", 0))]
            self._sheet_ids[title] = int(props.get("sheetId", 0))
            if title in (self.worksheet, self.parts_worksheet):
                self._grid[title] = size
            else:
                other += size[0] * size[1]
        self._other_cells = other

    def cells_used(self) -> int:
        """Cells of the spreadsheet as last known (all worksheets, rows x columns)."""
        return self._other_cells + sum(r * c for r, c in self._grid.values())

    def _canonical_parts(self, rows: list[list[Any]]) -> list[list[Any]]:
        layout = self._parts_layout
        if layout is None:
            return []
        cols = [layout.columns[name] for name in PARTS_HEADERS]
        if cols == [0, 1, 2, 3, 4]:
            return rows
        return [[row[c] if c < len(row) else "" for c in cols] for row in rows]

    @staticmethod
    def _key_cell(row: Sequence[Any], layout: Layout) -> str:
        col = layout.columns["key"]
        return cell_text(row[col]).strip() if col < len(row) else ""

    def _index_rows(
        self, ix: _Index, layout: Layout, rows: Sequence[list[Any]], first: int, *, warn: bool
    ) -> set[str]:
        """Decode ``rows`` (sheet rows from ``first``) into ``ix``; return keys that won."""
        won: set[str] = set()
        decode = RowDecoder(layout, ix.parts)
        metas = decode.parse_metas(rows)
        for offset, row in enumerate(rows):
            r = first + offset
            if not any(cell != "" for cell in row):
                ix.blank.append(r)
                continue
            try:
                entry, part_id = decode(row, metas[offset])
            except IncompleteParts:
                ix.incomplete[r] = row
                continue
            except RowError as exc:
                ix.bad[r] = str(exc)
                if warn:
                    self._warn_row(r, str(exc))
                continue
            if ix.add(entry, r, part_id):
                won.add(entry.key)
        return won

    def _warn_row(self, row: int, why: str) -> None:
        if (row, why) in self._warned:
            return
        self._warned.add((row, why))
        log.warning(
            "sheetcache: skipping row %d of worksheet %r in %s: %s. Fix or delete the row; until "
            "then it is never served.", row, self.worksheet, self.url, why,
        )  # fmt: skip

    def _incremental(self) -> None:
        """Read rows appended since the last read (one read request); full read on a shift."""
        layout = self._layout
        if layout is None or self._stale:
            self._full_load()
            return
        start = self._read_upto
        ranges = [f"{quote_title(self.worksheet)}!A{start}:{col_letter(layout.width - 1)}"]
        if self._parts_layout is not None:
            ranges.append(f"{quote_title(self.parts_worksheet)}!A{self._parts_read_upto + 1}:"
                          f"{col_letter(self._parts_layout.width - 1)}")  # fmt: skip
        elif self.parts_worksheet in self._sheet_ids:
            self._full_load()  # the parts tab appeared: learn its layout
            return
        value_ranges = self.api.batch_get(ranges, retry=False)
        rows: list[list[Any]] = value_ranges[0].get("values", []) if value_ranges else []
        if not rows or self._key_cell(rows[0], layout) != self._tail:
            # The row we read last moved: rows were deleted, inserted or sorted.
            self._full_load()
            return
        ix = self._ix
        if len(value_ranges) > 1 and self._parts_layout is not None:
            prows = value_ranges[1].get("values", [])
            ix.parts.add_rows(self._canonical_parts(prows), self._parts_read_upto + 1)
            self._parts_read_upto += len(prows)
        changed: set[str] = set()
        if ix.incomplete:
            retry, ix.incomplete = ix.incomplete, {}
            for r, row in sorted(retry.items()):
                changed |= self._index_rows(ix, layout, [row], r, warn=True)
        new_rows = rows[1:]
        changed |= self._index_rows(ix, layout, new_rows, start + 1, warn=True)
        if new_rows:
            self._read_upto = start + len(new_rows)
            self._tail = self._key_cell(new_rows[-1], layout)
            grid = self._grid.get(self.worksheet)
            if grid is not None and grid[0] < self._read_upto + 1:
                grid[0] = self._read_upto + 1
        self.stats["incremental_reads"] += 1
        self._mirror_dirty()
        self._notify(changed)

    def _mirror_dirty(self) -> None:
        """Have the mirror writer bring the mirror up to date with the index, off the hot
        path (a big sheet's first sync takes a second; lookups must not wait for it)."""
        if self._mirror is not None:
            self._mirror_wake.set()

    def _mirror_loop(self) -> None:
        while True:
            self._mirror_wake.wait()
            self._mirror_wake.clear()
            mirror = self._mirror
            if mirror is None:
                return
            ix = self._ix
            try:
                mirror.sync(dict(ix.entries), dict(ix.rows))
            except Exception as exc:  # noqa: BLE001 - the mirror is an optimisation
                log.debug("sheetcache: writing the local mirror failed: %s", exc)
            if self._closing.is_set() and not self._mirror_wake.is_set():
                return

    def _notify(self, keys: set[str]) -> None:
        if not keys:
            return
        for callback in list(self._subscribers):
            try:
                callback(set(keys))
            except Exception:  # noqa: BLE001 - a subscriber's bug must not stop refreshes
                log.exception("sheetcache: a change subscriber failed")

    def _ensure_loaded(self) -> None:
        if not self._loaded or self._stale:
            self._full_load()

    # -- refresh ------------------------------------------------------------------------

    def _full_interval(self) -> float:
        if self.full_refresh_interval is not None:
            return self.full_refresh_interval
        # A full read of a big sheet costs seconds of CPU: space them so it stays ~2 %.
        return max(self.refresh_interval, 50.0 * self._full_cost)

    def _refresh_loop(self) -> None:
        while not self._closing.wait(self.refresh_interval):
            try:
                with self._net:
                    if self._closing.is_set():
                        return
                    due = time.monotonic() - self._last_full >= self._full_interval()
                    if not self._loaded or due:
                        self._full_load()
                    else:
                        self._incremental()
                if self._refresh_failing:
                    self._refresh_failing = False
                    log.info("sheetcache: reading %s works again", self.url)
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                if self._closing.is_set():
                    return
                if not self._refresh_failing:
                    log.error("sheetcache: refreshing %s failed (%s); serving what is known "
                              "and retrying", self.url, exc)  # fmt: skip
                else:
                    log.debug("sheetcache: refresh still failing: %s", exc)
                self._refresh_failing = True

    def refresh(self) -> None:
        """Re-read the whole worksheet now: teammates' rows and reviewers' edits.

        Raises:
            BackendError: Sheets could not be read (what is known keeps being served).
        """
        with self._net:
            self._full_load()

    def subscribe(self, callback: Callable[[set[str]], None]) -> None:
        self._subscribers.append(callback)

    # -- the read API (local) -----------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        entry = self._ix.entries.get(key)
        return None if entry is None else dataclasses.replace(entry)

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        entries = self._ix.entries
        return {k: dataclasses.replace(entries[k]) for k in keys if k in entries}

    def iter_entries(self, namespace: str | None = None) -> Iterator[Entry]:
        for entry in list(self._ix.entries.values()):
            if namespace is None or entry.namespace == namespace:
                yield dataclasses.replace(entry)

    def count(self, namespace: str | None = None) -> int:
        entries = list(self._ix.entries.values())
        if namespace is None:
            return len(entries)
        return sum(1 for e in entries if e.namespace == namespace)

    # -- verification -------------------------------------------------------------------

    def _read_cells(self, rows: Sequence[int], names: Sequence[str]) -> dict[int, dict[str, Any]]:
        """Current values of our columns ``names`` in ``rows`` (one read request)."""
        layout = self._layout
        assert layout is not None
        tab = quote_title(self.worksheet)
        runs = _runs(rows)
        letters = [col_letter(layout.columns[n]) for n in names]
        whole = len(runs) * len(names) > _MAX_RANGES
        if whole:
            ranges = [f"{tab}!{L}:{L}" for L in letters]
        else:
            ranges = [f"{tab}!{L}{a}:{L}{b}" for a, b in runs for L in letters]
        value_ranges = self.api.batch_get(ranges)
        out: dict[int, dict[str, Any]] = {r: dict.fromkeys(names, "") for r in rows}
        if whole:
            for name, vr in zip(names, value_ranges, strict=False):
                values = vr.get("values", [])
                for r in rows:
                    if r - 1 < len(values) and values[r - 1]:
                        out[r][name] = values[r - 1][0]
            return out
        i = 0
        for a, _b in runs:
            for name in names:
                values = value_ranges[i].get("values", []) if i < len(value_ranges) else []
                i += 1
                for offset, cells in enumerate(values):
                    if a + offset in out and cells:
                        out[a + offset][name] = cells[0]
        return out

    def _verified(self, keys: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """For ``keys`` with a row, the current cells ``names`` of that row, after checking
        the row still holds the key (re-reading everything once if rows moved)."""
        for attempt in range(2):
            ix = self._ix
            targets = {ix.rows[k]: k for k in keys if k in ix.rows}
            if not targets:
                return {}
            cells = self._read_cells(list(targets), ["key", *names])
            moved = [r for r, k in targets.items() if cell_text(cells[r]["key"]).strip() != k]
            if not moved:
                return {k: cells[r] for r, k in targets.items()}
            if attempt == 0:
                log.info("sheetcache: rows of %s moved (sorted or deleted by someone); "
                         "re-reading before writing", self.url)  # fmt: skip
                self._full_load()
        raise BackendError(f"rows of {self.url} keep moving while writing; will retry")

    # -- writing ------------------------------------------------------------------------

    def put_many(self, entries: Sequence[Entry]) -> None:
        latest = {e.key: e for e in entries}
        if not latest:
            return
        with self._net:
            self._ensure_loaded()
            known = [k for k in latest if k in self._ix.rows]
            current = self._verified(known, ["status", "note"]) if known else {}
            updates: list[Entry] = []
            for key in known:
                if key not in current:  # vanished during verification: append instead
                    continue
                old = self._ix.entries[key]
                fresh = dataclasses.replace(old, note=cell_text(current[key]["note"]))
                fresh.status = _status_of(current[key]["status"])
                merged = _merge(fresh, latest[key])
                if merged != old or fresh.status != old.status or fresh.note != old.note:
                    updates.append(merged)
            appends = [e for k, e in latest.items() if k not in current]
            if updates:
                self._update_rows(updates)
            if appends:
                self._append_entries(appends)

    def _update_rows(self, entries: list[Entry]) -> None:
        layout = self._layout
        assert layout is not None
        encoded = [encode_entry(e) for e in entries]
        parts = [p for enc in encoded for p in enc.parts]
        if parts:
            self._append_parts(parts)
        tab = quote_title(self.worksheet)
        data: list[dict[str, Any]] = []
        for enc in encoded:
            row = self._ix.rows[enc.key]
            for first, names in layout.runs(enc.cells):
                last = col_letter(first + len(names) - 1)
                data.append({
                    "range": f"{tab}!{col_letter(first)}{row}:{last}{row}",
                    "values": [[enc.cells[n] for n in names]],
                })  # fmt: skip
        for batch in _by_size(data, lambda d: _body_size(d["values"])):
            self.api.values_update(batch)
        ix = self._ix
        for entry in entries:
            ix.entries[entry.key] = entry
        self._mirror_dirty()

    def _append_entries(self, entries: list[Entry]) -> None:
        layout = self._layout
        assert layout is not None
        encoded: list[EncodedEntry] = []
        for entry in entries:
            try:
                encoded.append(encode_entry(entry))
            except ValueError as exc:  # a meta too big to split: would wedge the outbox
                log.error("sheetcache: cannot store %s in a sheet (%s); dropped", entry.key, exc)
        parts = [p for enc in encoded for p in enc.parts]
        width = max(layout.columns.values()) + 1
        self._make_room(len(encoded) * max(width, self._grid.get(self.worksheet, [0, 0])[1])
                        + len(parts) * len(PARTS_HEADERS))  # fmt: skip
        if parts:
            self._append_parts(parts)
        batches = _by_size(encoded, lambda enc: _body_size([list(enc.cells.values())]))
        for batch in batches:
            self._append_main(batch, entries={e.key: e for e in entries})

    def _append_main(self, batch: list[EncodedEntry], entries: dict[str, Entry]) -> None:
        """Append rows; after an ambiguous failure, re-read before retrying so an append that
        landed although its response was lost is not appended twice."""
        layout = self._layout
        assert layout is not None
        pending = list(batch)
        ambiguous = [False]
        range_ = f"{quote_title(self.worksheet)}!A1"

        def reconcile() -> bool:
            if ambiguous[0]:
                self._incremental()
                ambiguous[0] = False
                landed = self._ix.rows
                pending[:] = [enc for enc in pending if enc.key not in landed]
            return not pending

        def send() -> dict[str, Any]:
            try:
                return self.api.http.values_append(
                    self.api.id, range_,
                    {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS",
                     "includeValuesInResponse": "false"},
                    {"majorDimension": "ROWS", "values": [layout.row(e.cells) for e in pending]},
                )  # fmt: skip
            except Exception as exc:
                # A 429 is refused before anything happens; anything else may have landed.
                if is_retryable(exc) and status_of(exc) != 429:
                    ambiguous[0] = True
                raise

        response = self.api.call("write", "append rows", send, before_retry=reconcile)
        if not response or not pending:
            return
        first, last = _rows_of(response.get("updates", {}).get("updatedRange", ""))
        if last - first + 1 != len(pending):
            raise BackendError(f"Google appended {last - first + 1} rows for {len(pending)}")
        ix = self._ix
        for offset, enc in enumerate(pending):
            ix.add(entries[enc.key], first + offset, _parts_id(enc))
        self.stats["appended_rows"] += len(pending)
        grid = self._grid.get(self.worksheet)
        if grid is not None:
            grid[0] += len(pending)
        if first == self._read_upto + 1:
            self._read_upto, self._tail = last, pending[-1].key
        elif first <= self._read_upto:
            # Inserted above rows we know (a blank row split the table): row numbers shifted.
            log.warning(
                "sheetcache: %s has an empty row inside the table, so Google appended at "
                "row %d; run `sheetcache compact` to remove empty rows",
                self.url,
                first,
            )
            self._stale = True
        self._mirror_dirty()
        if self._stale:
            self._full_load()

    def _append_parts(self, rows: list[list[Any]]) -> None:
        self._ensure_parts_tab()
        range_ = f"{quote_title(self.parts_worksheet)}!A1"
        for batch in _by_size(rows, lambda r: _body_size([r])):
            # Duplicated part rows (a retry after a lost response) are identical and harmless:
            # readers take one per (id, field, part); compact removes the rest.
            def send(batch: list[list[Any]] = batch) -> Any:
                return self.api.http.values_append(
                    self.api.id, range_,
                    {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS",
                     "includeValuesInResponse": "false"},
                    {"majorDimension": "ROWS", "values": batch},
                )  # fmt: skip

            self.api.call("write", "append long-value parts", send)
            grid = self._grid.get(self.parts_worksheet)
            if grid is not None:
                grid[0] += len(batch)

    def _ensure_parts_tab(self) -> None:
        if self._parts_layout is not None:
            return
        if self.parts_worksheet not in self._sheet_ids:
            try:
                self.api.batch_update(
                    [{"addSheet": {"properties": {
                        "title": self.parts_worksheet,
                        "gridProperties": {"rowCount": 2, "columnCount": len(PARTS_HEADERS),
                                           "frozenRowCount": 1},
                    }}}],
                    "create the parts worksheet",
                )  # fmt: skip
            except BackendError as exc:
                if "already exists" not in str(exc):
                    raise
            self._read_metadata(self.api.metadata())
        tab = quote_title(self.parts_worksheet)
        self.api.values_update([{"range": f"{tab}!A1:E1", "values": [list(PARTS_HEADERS)]}])
        self._parts_layout = Layout({n: i for i, n in enumerate(PARTS_HEADERS)}, 5)

    def record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        with self._net:
            self._ensure_loaded()
            known = [k for k in hits if k in self._ix.rows]
            if not known:
                return
            current = self._verified(known, ["hits", "last hit"])
            layout = self._layout
            assert layout is not None
            tab = quote_title(self.worksheet)
            data: list[dict[str, Any]] = []
            updated: list[Entry] = []
            for key, cells in current.items():
                n, at = hits[key]
                try:
                    count = int(float(str(cells["hits"]).replace(",", "") or 0))
                except ValueError:
                    count = 0
                try:
                    last = max(at, parse_time(cells["last hit"]) or 0.0)
                except ValueError:
                    last = at
                new = {"hits": count + n, "last hit": format_time(last)}
                row = self._ix.rows[key]
                for first, names in layout.runs(new):
                    end = col_letter(first + len(names) - 1)
                    data.append({"range": f"{tab}!{col_letter(first)}{row}:{end}{row}",
                                 "values": [[new[n] for n in names]]})  # fmt: skip
                entry = self._ix.entries[key]
                updated.append(dataclasses.replace(entry, hits=count + n, last_hit_at=last))
            if data:
                self.api.values_update(data)
            ix = self._ix
            for entry in updated:
                if entry.key in ix.entries:
                    ix.entries[entry.key] = entry
            self._mirror_dirty()

    # -- deleting -----------------------------------------------------------------------

    def delete_many(self, keys: Sequence[str]) -> int:
        wanted = set(keys)
        with self._net:
            self._ensure_loaded()
            if not any(k in self._ix.rows for k in wanted):
                return 0
            # Deleting by row number: read the rows fresh right before (rows move).
            self._full_load()
            ix = self._ix
            present = [k for k in wanted if k in ix.rows]
            if not present:
                return 0
            rows = [r for k in present for r in [ix.rows[k], *ix.dups.get(k, [])]]
            self._delete_rows(rows)
            return len(present)

    def delete_where(self, predicate: Any, namespace: str | None = None) -> int:
        # One read, one batched delete, one re-read, whatever the number of entries.
        with self._net:
            self._full_load()
            ix = self._ix
            doomed = [
                key
                for key, entry in ix.entries.items()
                if (namespace is None or entry.namespace == namespace) and predicate(entry)
            ]
            if doomed:
                self._delete_rows([r for k in doomed for r in [ix.rows[k], *ix.dups.get(k, [])]])
            return len(doomed)

    def _delete_rows(self, rows: Sequence[int], parts_rows: Sequence[int] = ()) -> None:
        """Delete main-tab ``rows`` (and the parts rows they own, plus ``parts_rows``), then
        re-read. One batchUpdate; bottom rows first so the indexes stay valid."""
        ix = self._ix
        gone = set(rows)
        owned = {ix.part_ids[r] for r in gone if r in ix.part_ids}
        kept = {pid for r, pid in ix.part_ids.items() if r not in gone}
        doomed_parts = set(parts_rows)
        for pid in owned - kept:
            doomed_parts.update(ix.parts.rows.get(pid, []))
        requests: list[dict[str, Any]] = []
        for title, doomed in ((self.worksheet, rows), (self.parts_worksheet, doomed_parts)):
            if not doomed or title not in self._sheet_ids:
                continue
            for first, last in reversed(_runs(list(doomed))):
                requests.append({"deleteDimension": {"range": {
                    "sheetId": self._sheet_ids[title], "dimension": "ROWS",
                    "startIndex": first - 1, "endIndex": last,
                }}})  # fmt: skip
        # Bottom rows first, in chunks: each chunk leaves the rows above it where they were.
        for start in range(0, len(requests), _DELETES_PER_REQUEST):
            self.api.batch_update(requests[start : start + _DELETES_PER_REQUEST], "delete rows")
        self._full_load()

    def _make_room(self, cells_needed: int) -> None:
        """Prune by the documented policy if the append would pass ``max_cells``."""
        used = self.cells_used()
        if used + cells_needed <= self.max_cells:
            return
        width = max(1, self._grid.get(self.worksheet, [0, len(HEADERS)])[1])
        excess = used + cells_needed - self.max_cells + math.ceil(self.max_cells * SLACK)
        rows_needed = math.ceil(excess / width)
        ix = self._ix
        victims = choose_victims(((e, ix.rows[k]) for k, e in ix.entries.items()),
                                 ix.dup_rows(), rows_needed)  # fmt: skip
        if used - victims.rows * width + cells_needed > self.max_cells:
            raise BackendError(
                f"spreadsheet {self.spreadsheet_id} is full: {used:,} of {self.max_cells:,} cells "
                "used, and only approved, rejected or recent entries are left to prune. New "
                "answers wait in the local outbox. Move old rows or other worksheets out of this "
                "spreadsheet, or point the cache at a new one."
            )
        if not victims.rows:
            return
        self._full_load()  # fresh row numbers right before deleting by row
        ix = self._ix
        victims = choose_victims(((e, ix.rows[k]) for k, e in ix.entries.items()),
                                 ix.dup_rows(), rows_needed)  # fmt: skip
        log.warning("sheetcache: %s is near the %s-cell limit: pruning %d row(s) (duplicates, "
                    "expired, then least-hit unreviewed entries)", self.url, f"{self.max_cells:,}",
                    victims.rows)  # fmt: skip
        rows = list(victims.dup_rows)
        for key in victims.keys:
            if key in ix.rows:
                rows += [ix.rows[key], *ix.dups.get(key, [])]
        self.stats["pruned_rows"] += len(rows)
        self._delete_rows(rows)

    def compact(self, *, dry_run: bool = False) -> dict[str, int]:
        """Delete duplicate rows, empty rows inside the table and orphaned parts.

        Returns counts: ``duplicates``, ``blank``, ``orphan_parts``.
        """
        with self._net:
            self._full_load()
            ix = self._ix
            dups = ix.dup_rows()
            blank = [r for r in ix.blank if r < self._read_upto]
            referenced = {ix.part_ids[r] for r in ix.rows.values() if r in ix.part_ids}
            orphans = [r for pid, rs in ix.parts.rows.items() if pid not in referenced for r in rs]
            orphans += ix.parts.dup_rows + ix.parts.bad_rows
            report = {
                "duplicates": len(dups),
                "blank": len(blank),
                "orphan_parts": len(set(orphans)),
            }
            if not dry_run and (dups or blank or orphans):
                self._delete_rows(dups + blank, orphans)
            return report

    # -- admin --------------------------------------------------------------------------

    def _prepare_empty(self) -> list[Any]:
        """Write the header (and formatting) into an empty worksheet; return the header."""
        from sheetcache.backends.sheets._admin import format_requests, header_requests

        sheet_id = self._sheet_ids[self.worksheet]
        layout = Layout({n: i for i, n in enumerate(HEADERS)}, len(HEADERS))
        cols = self._grid.get(self.worksheet, [0, 0])[1]
        requests = header_requests(sheet_id, [], cols) + format_requests(sheet_id, layout)
        self.api.batch_update(requests, "write the header row")
        log.info("sheetcache: wrote the sheetcache header into empty worksheet %r", self.worksheet)
        return list(HEADERS)

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(10.0)
        self._close_resources()

    def _stop_mirror(self) -> None:
        """Let the mirror writer finish its last sync, then close the file."""
        thread, mirror = self._mirror_thread, self._mirror
        if thread is not None:
            self._mirror_wake.set()
            thread.join(30.0)
        self._mirror = None
        self._mirror_wake.set()  # a writer still running (join timed out) exits on None
        if mirror is not None:
            with contextlib.suppress(Exception):
                mirror.close()

    def _close_resources(self) -> None:
        self._closing.set()
        self.api.closing.set()
        # A flusher may be inside a request; give it a moment, then close regardless.
        locked = self._net.acquire(timeout=5.0)
        try:
            self._stop_mirror()
            session = getattr(self.api.http, "session", None)
            if session is not None:
                session.close()
        finally:
            if locked:
                self._net.release()


def _parts_id(enc: EncodedEntry) -> str | None:
    """The parts id of an encoded entry, or None."""
    return str(enc.parts[0][1]) if enc.parts else None


def _status_of(value: Any) -> str:
    from sheetcache.backends.sheets._layout import normalize_status

    return normalize_status(value)[0]


def _merge(old: Entry, new: Entry) -> Entry:
    """What an upsert over an existing row writes.

    ``new`` replaces the row, except that a reviewer's note is kept, and:

    - the same answer sent again (a retried batch, a replayed outbox) keeps the row's review
      status and hit counts: the reviewer judged exactly this answer;
    - a different answer over a rejected one keeps the rejected answer in the note.
    """
    note = new.note or old.note
    if new.value == old.value and new.value_type == old.value_type and not new.status:
        return dataclasses.replace(
            new, note=note, status=old.status, hits=max(old.hits, new.hits),
            last_hit_at=max(old.last_hit_at or 0.0, new.last_hit_at or 0.0) or None,
        )  # fmt: skip
    if old.status == "rejected" and new.status != "rejected":
        history = f"[{format_time(time.time())}] rejected answer, replaced:\n{old.value}"
        note = f"{note}\n\n{history}" if note else history
    return dataclasses.replace(new, note=note)


def _by_size(items: Sequence[Any], size_of: Callable[[Any], int]) -> list[list[Any]]:
    batches: list[list[Any]] = []
    current: list[Any] = []
    total = 0
    for item in items:
        size = size_of(item)
        if current and total + size > _MAX_BODY:
            batches.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    if current:
        batches.append(current)
    return batches
