"""Writing to the sheet: verified in-place updates, hit counts, idempotent appends, parts.

Rules (docs/sheets.md, "Sync model"):

- A write into existing cells resolves its columns from the header *as it is now*: the
  header row is read in the same request as the target rows' key cells. If the header
  changed (a reviewer moved or inserted a column) or a row no longer holds its key (rows
  sorted, deleted, inserted), the sheet is read again and the write re-placed; it is never
  written blind.
- Appends carry the entry's write id in ``meta``. An append whose outcome is unknown (a
  timeout, a dropped connection, a 5xx) is not simply sent again: the writer waits long
  enough for a late apply (``late_apply`` seconds), re-reads the new rows and appends only
  the entries that have no row yet. A row of the key under our write id is ours and done;
  under another write id it is another process's, and our answer goes over it in place, so
  neither makes a second row. A batch that was claimed before (a retry, or a dead
  process's batch taken over) goes through the same check first.
- Whatever the writer learns is written to the index and the mirror, and keys whose served
  answer changed are reported (the cache front drops them from its L1).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sheetcache._errors import BackendError
from sheetcache.backends.base import Entry
from sheetcache.backends.sheets._client import SheetsApi, is_retryable, status_of
from sheetcache.backends.sheets._index import fingerprint, runs, serving_fp
from sheetcache.backends.sheets._layout import (
    PARTS_HEADERS,
    EncodedEntry,
    Layout,
    cell_text,
    col_letter,
    encode_entry,
    format_time,
    normalize_status,
    parse_time,
    quote_title,
    saved_cell,
)
from sheetcache.backends.sheets._mirror import Mirror, entry_row, pack
from sheetcache.backends.sheets._reader import Reader, SheetState

__all__ = ["MAX_BODY", "Writer", "body_size", "by_size", "merge"]

log = logging.getLogger("sheetcache")

# A values.append or values.batchUpdate body may be at most 10 MiB; stay well under.
MAX_BODY = 8 * 1024 * 1024
# More verification ranges than this read whole columns instead (URL length).
_MAX_RANGES = 90


class Writer:
    """Every write the backend makes to the sheet."""

    def __init__(
        self,
        state: SheetState,
        api: SheetsApi,
        mirror: Mirror,
        reader: Reader,
        notify: Callable[[set[str]], None],
        make_room: Callable[[int], None],
        closing: threading.Event,
        late_apply: float,
    ) -> None:
        self.state = state
        self.api = api
        self.mirror = mirror
        self.reader = reader
        self.notify = notify
        self.make_room = make_room
        self.closing = closing
        self.late_apply = late_apply
        self._requeue: list[Entry] = []
        self._quiet: set[str] | frozenset[str] = frozenset()

    # -- verification -----------------------------------------------------------------------

    def verified(self, keys: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """For ``keys`` with a row, the current cells ``names`` of that row.

        Read together with the header; re-reads the sheet (up to twice) if the header changed or a row no
        longer holds its key. With no keys it checks the header alone.

        Raises:
            BackendError: rows or columns keep moving; the write is retried later.
        """
        for attempt in range(3):
            st = self.state
            layout = st.layout
            assert layout is not None
            ix = st.index
            targets = {row: k for k in keys if (row := ix.row(k))}
            wanted = [n for n in ("key", *names) if n in layout.columns]
            header, cells = self._read_cells(layout, list(targets), wanted)
            if Layout.from_header(header, st.worksheet, st.init_hint) != layout:
                reason = "columns of %s changed (moved or inserted by someone)"
            else:
                moved = [r for r, k in targets.items() if cell_text(cells[r]["key"]).strip() != k]
                if not moved:
                    return {k: cells[r] for r, k in targets.items()}
                reason = "rows of %s moved (sorted or deleted by someone)"
            if attempt < 2:
                log.info("sheetcache: " + reason + "; re-reading before writing", st.url)
                self.reader.full_load()
        raise BackendError(f"rows or columns of {self.state.url} keep moving while writing; "
                           "will retry")  # fmt: skip

    def _read_cells(
        self, layout: Layout, rows: Sequence[int], names: Sequence[str]
    ) -> tuple[list[Any], dict[int, dict[str, Any]]]:
        """The header row and the current cells ``names`` of ``rows``, in one read request."""
        tab = quote_title(self.state.worksheet)
        row_runs = runs(rows)
        letters = [col_letter(layout.columns[n]) for n in names]
        whole = len(row_runs) * len(names) > _MAX_RANGES
        if not rows:
            ranges = []
        elif whole:
            ranges = [f"{tab}!{L}:{L}" for L in letters]
        else:
            ranges = [f"{tab}!{L}{a}:{L}{b}" for a, b in row_runs for L in letters]
        value_ranges = self.api.batch_get([f"{tab}!1:1", *ranges])
        head = value_ranges[0].get("values", []) if value_ranges else []
        header = list(head[0]) if head else []
        value_ranges = value_ranges[1:]
        out: dict[int, dict[str, Any]] = {r: dict.fromkeys(names, "") for r in rows}
        if whole:
            for name, vr in zip(names, value_ranges, strict=False):
                values = vr.get("values", [])
                for r in rows:
                    if r - 1 < len(values) and values[r - 1]:
                        out[r][name] = values[r - 1][0]
            return header, out
        i = 0
        for a, _b in row_runs:
            for name in names:
                values = value_ranges[i].get("values", []) if i < len(value_ranges) else []
                i += 1
                for offset, cells in enumerate(values):
                    if a + offset in out and cells:
                        out[a + offset][name] = cells[0]
        return header, out

    # -- entries ----------------------------------------------------------------------------

    def put(
        self,
        entries: Mapping[str, Entry],
        write_ids: Mapping[str, str] | None = None,
        tried_at: float | None = None,
        quiet: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Upsert ``entries`` (key -> entry).

        ``tried_at``: when an earlier send of some of them may have happened (their write ids are checked, after a late-apply wait).
        ``quiet``: keys whose entry this process's L1 holds already (no change notice).
        """
        write_ids = write_ids or {}
        self._quiet = quiet
        try:
            self._put(entries, write_ids, tried_at)
        finally:
            self._quiet = frozenset()

    def _put(
        self, entries: Mapping[str, Entry], write_ids: Mapping[str, str], tried_at: float | None
    ) -> None:
        self.reader.ensure_loaded()
        if tried_at is not None and write_ids:
            self._settle(entries, write_ids, tried_at)
        ix = self.state.index
        known = [k for k in entries if k in ix]
        current = self.verified(known, ["status", "note"])
        updates: list[Entry] = []
        ix = self.state.index
        olds = self.mirror.get_many([k for k in known if k in current])
        for key in known:
            if key not in current or key not in olds:  # vanished meanwhile: append instead
                current.pop(key, None)
                continue
            old = olds[key]
            fresh = dataclasses.replace(old, note=cell_text(current[key]["note"]))
            fresh.status = normalize_status(current[key]["status"])[0]
            merged = merge(fresh, entries[key])
            if merged != old or fresh.status != old.status or fresh.note != old.note:
                updates.append(merged)
        appends = [e for k, e in entries.items() if k not in current]
        if updates:
            self._update_rows(updates)
        if appends:
            # The header was just read with the verification: the append places by it.
            self._append(appends, write_ids, header_checked=True)

    def _settle(
        self, entries: Mapping[str, Entry], write_ids: Mapping[str, str], tried_at: float
    ) -> None:
        """Before re-sending: learn which write ids landed; wait out a late apply first."""
        until = tried_at + self.late_apply
        while True:
            self.reader.incremental()
            # Only keys that would be appended matter: a key with a row (ours landed, or
            # another process's) is updated in place, which a late copy cannot duplicate.
            missing = [k for k in write_ids if k in entries and k not in self.state.index]
            wait = until - time.time()
            if not missing or wait <= 0:
                return
            log.debug("sheetcache: waiting %.1fs for a late apply of %d entries", wait,
                      len(missing))  # fmt: skip
            if self.closing.wait(min(wait, 1.0)):
                raise BackendError("the Sheets backend was closed")

    def _update_rows(self, entries: list[Entry]) -> None:
        st = self.state
        layout = st.layout
        assert layout is not None
        encoded = [encode_entry(e) for e in entries]
        parts = [p for enc in encoded for p in enc.parts]
        if parts:
            self._append_parts(parts)
        tab = quote_title(st.worksheet)
        data: list[dict[str, Any]] = []
        ix = st.index
        for enc in encoded:
            row = ix.row(enc.key)
            if row is None:
                continue
            for first, names in layout.runs(layout.present(enc.cells)):
                last = col_letter(first + len(names) - 1)
                data.append({
                    "range": f"{tab}!{col_letter(first)}{row}:{last}{row}",
                    "values": [[enc.cells[n] for n in names]],
                })  # fmt: skip
        for batch in by_size(data, lambda d: body_size(d["values"])):
            self.api.values_update(batch)
        self._learned(entries, {})

    def _learned(self, entries: Sequence[Entry], write_ids: Mapping[str, str | None],
                 rows: Mapping[str, int] | None = None) -> None:  # fmt: skip
        """Record what the sheet now holds for ``entries``: index, mirror, L1 notices."""
        ix = self.state.index
        seen = time.time()
        changed: set[str] = set()
        upserts = []
        for entry in entries:
            row = rows[entry.key] if rows is not None else ix.row(entry.key)
            if row is None:
                continue
            fp = serving_fp(entry)
            if ix.fp(entry.key) != fp:
                changed.add(entry.key)
            ix.set(entry.key, row, entry.status, fp)
            blob = pack(entry)
            wid = write_ids.get(entry.key)
            if wid is None and rows is None:
                wid = self.mirror.write_ids([entry.key]).get(entry.key)
            upserts.append(entry_row(entry, seen, fingerprint(blob), wid, blob))
        self.mirror.upsert(upserts)
        self.notify(changed - self._quiet)

    def _append(
        self, entries: list[Entry], write_ids: Mapping[str, str], header_checked: bool = False
    ) -> None:
        """The one append path: parts first, then main rows in size-bounded batches."""
        st = self.state
        layout = st.layout
        assert layout is not None
        encoded: list[EncodedEntry] = []
        for entry in entries:
            try:
                encoded.append(encode_entry(entry, write_id=write_ids.get(entry.key)))
            except ValueError as exc:  # a meta too big to split: would wedge the outbox
                log.error("sheetcache: cannot store %s in a sheet (%s); dropped", entry.key, exc)
        parts = [p for enc in encoded for p in enc.parts]
        width = max(layout.columns.values()) + 1
        self.make_room(len(encoded) * max(width, st.grid.get(st.worksheet, [0, 0])[1])
                       + len(parts) * len(PARTS_HEADERS))  # fmt: skip
        if parts:
            self._append_parts(parts)
        by_key = {e.key: e for e in entries}
        self._requeue = []
        for batch in by_size(encoded, lambda enc: body_size([list(enc.cells.values())])):
            self._append_main(batch, by_key, write_ids, header_checked)
            header_checked = False
        requeue, self._requeue = self._requeue, []
        if requeue:
            self._put({e.key: e for e in requeue}, {}, None)

    def _append_main(
        self,
        batch: list[EncodedEntry],
        entries: dict[str, Entry],
        write_ids: Mapping[str, str],
        header_checked: bool,
    ) -> None:
        """Append rows, never twice.

        After an ambiguous failure, wait for a late apply and re-read before retrying, so an
        append that landed although its response was lost is not sent again.
        """
        st = self.state
        pending = list(batch)
        failed_at = [0.0]  # when the last ambiguous failure happened (0: none)
        range_ = f"{quote_title(st.worksheet)}!A1"

        def reconcile() -> bool:
            if failed_at[0]:
                wids = {enc.key: write_ids.get(enc.key, "") for enc in pending}
                self._settle(entries, {k: w for k, w in wids.items() if w}, failed_at[0])
                failed_at[0] = 0.0
                ix = st.index
                landed = self.mirror.write_ids([enc.key for enc in pending if enc.key in ix])
                for enc in pending:
                    wid = write_ids.get(enc.key)
                    if enc.key in ix and wid and landed.get(enc.key) != wid:
                        # Another row for this key arrived meanwhile (another process):
                        # ours goes over it in place, never as a second row.
                        self._requeue.append(entries[enc.key])
                pending[:] = [enc for enc in pending if enc.key not in ix]
                if pending:
                    self.verified([], [])  # the header may have changed while we waited
            return not pending

        if not header_checked:
            self.verified([], [])  # place the cells by the header as it is now

        def send() -> dict[str, Any]:
            current = st.layout
            assert current is not None
            try:
                result: dict[str, Any] = self.api.http.values_append(
                    self.api.id, range_,
                    {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS",
                     "includeValuesInResponse": "false"},
                    {"majorDimension": "ROWS", "values": [current.row(e.cells) for e in pending]},
                )  # fmt: skip
                return result
            except Exception as exc:
                # A 429 is refused before anything happens; anything else may have landed.
                if is_retryable(exc) and status_of(exc) != 429:
                    failed_at[0] = time.time()
                raise

        response = self.api.call("write", "append rows", send, before_retry=reconcile)
        if not response or not pending:
            return
        first, last = rows_of(response.get("updates", {}).get("updatedRange", ""))
        if last - first + 1 != len(pending):
            raise BackendError(f"Google appended {last - first + 1} rows for {len(pending)}")
        ix = st.index
        rows = {enc.key: first + offset for offset, enc in enumerate(pending)}
        for enc in pending:
            if enc.parts:
                ix.part_ids[rows[enc.key]] = str(enc.parts[0][1])
        self._learned([entries[enc.key] for enc in pending],
                      {enc.key: write_ids.get(enc.key) for enc in pending}, rows)  # fmt: skip
        st.stats["appended_rows"] += len(pending)
        grid = st.grid.get(st.worksheet)
        if grid is not None:
            grid[0] += len(pending)
        cursor = st.cursor
        if first == cursor.read_upto + 1:
            st.cursor = dataclasses.replace(cursor, read_upto=last, tail=pending[-1].key)
        elif first <= cursor.read_upto:
            # Inserted above rows we know (a blank row split the table): row numbers shifted.
            log.warning(
                "sheetcache: %s has an empty row inside the table, so Google appended at "
                "row %d; run `sheetcache compact` to remove empty rows", st.url, first,
            )  # fmt: skip
            st.stale = True
        if st.stale:
            self.reader.full_load()

    def _append_parts(self, rows: list[list[Any]]) -> None:
        self._ensure_parts_tab()
        st = self.state
        range_ = f"{quote_title(st.parts_worksheet)}!A1"
        for batch in by_size(rows, lambda r: body_size([r])):
            # Duplicated part rows (a retry after a lost response) are identical and harmless:
            # readers take one per (id, field, part); compaction removes the rest.
            def send(batch: list[list[Any]] = batch) -> Any:
                return self.api.http.values_append(
                    self.api.id, range_,
                    {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS",
                     "includeValuesInResponse": "false"},
                    {"majorDimension": "ROWS", "values": batch},
                )  # fmt: skip

            self.api.call("write", "append long-value parts", send)
            grid = st.grid.get(st.parts_worksheet)
            if grid is not None:
                grid[0] += len(batch)

    def _ensure_parts_tab(self) -> None:
        st = self.state
        if st.parts_layout is not None:
            return
        if st.parts_worksheet not in st.sheet_ids:
            try:
                self.api.batch_update(
                    [{"addSheet": {"properties": {
                        "title": st.parts_worksheet,
                        "gridProperties": {"rowCount": 2, "columnCount": len(PARTS_HEADERS),
                                           "frozenRowCount": 1},
                    }}}],
                    "create the parts worksheet",
                )  # fmt: skip
            except BackendError as exc:
                if "already exists" not in str(exc):
                    raise
            self.reader.read_metadata(self.api.metadata())
        tab = quote_title(st.parts_worksheet)
        self.api.values_update([{"range": f"{tab}!A1:E1", "values": [list(PARTS_HEADERS)]}])
        st.parts_layout = Layout({n: i for i, n in enumerate(PARTS_HEADERS)}, 5)

    # -- hit counts -------------------------------------------------------------------------

    def record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        """Add hit counts: read the cells (verified), add, write back by column name."""
        self.reader.ensure_loaded()
        st = self.state
        known = [k for k in hits if k in st.index]
        if not known:
            return
        current = self.verified(known, ["hits", "last hit"])
        layout = st.layout
        assert layout is not None
        tab = quote_title(st.worksheet)
        data: list[dict[str, Any]] = []
        olds = self.mirror.get_many(list(current))
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
            new: dict[str, Any] = {"hits": count + n, "last hit": format_time(last)}
            old = olds.get(key)
            if old is not None:
                entry = dataclasses.replace(old, hits=count + n, last_hit_at=last)
                updated.append(entry)
                if old.metadata:
                    new["saved"] = saved_cell(entry)
            row = st.index.row(key)
            for first, names in layout.runs(layout.present(new)):
                end = col_letter(first + len(names) - 1)
                data.append({"range": f"{tab}!{col_letter(first)}{row}:{end}{row}",
                             "values": [[new[n] for n in names]]})  # fmt: skip
        if data:
            self.api.values_update(data)
        self._learned(updated, {})


def merge(old: Entry, new: Entry) -> Entry:
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
            metadata=new.metadata or old.metadata,
        )  # fmt: skip
    if old.status == "rejected" and new.status != "rejected":
        history = f"[{format_time(time.time())}] rejected answer, replaced:\n{old.value}"
        note = f"{note}\n\n{history}" if note else history
    return dataclasses.replace(new, note=note)


def rows_of(updated_range: str) -> tuple[int, int]:
    """``'tab'!A5:J9`` -> (5, 9): the rows an append landed in."""
    import re

    match = re.search(r"!\$?[A-Z]*\$?(\d+)(?::\$?[A-Z]*\$?(\d+))?$", updated_range)
    if not match:
        raise BackendError(f"unexpected range {updated_range!r} in Google's append response")
    first = int(match.group(1))
    return first, int(match.group(2) or first)


def body_size(rows: Sequence[Sequence[Any]]) -> int:
    """Bytes a request body of ``rows`` takes, about (JSON with ensure_ascii)."""
    size = 0
    for row in rows:
        for cell in row:
            if isinstance(cell, str):
                size += len(cell) + 4 if cell.isascii() else len(cell) * 6 + 4
            else:
                size += 24
    return size


def by_size(items: Sequence[Any], size_of: Callable[[Any], int]) -> list[list[Any]]:
    """Split ``items`` into batches of at most :data:`MAX_BODY` bytes."""
    batches: list[list[Any]] = []
    current: list[Any] = []
    total = 0
    for item in items:
        size = size_of(item)
        if current and total + size > MAX_BODY:
            batches.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    if current:
        batches.append(current)
    return batches
