"""Reading the sheet: full reads (pages of rows) and incremental reads, one read cursor.

The truth is the sheet. A full read replaces the index whole; an incremental read picks up
rows appended since the cursor and falls back to a full read when the row under the cursor
moved (someone deleted, inserted or sorted rows). Every read compares what it found with
what this process knew, writes what changed to the mirror and reports the keys whose
served answer changed, so the cache front drops exactly those from its L1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sheetcache._errors import ConfigError
from sheetcache.backends.base import Entry
from sheetcache.backends.sheets._client import SheetsApi
from sheetcache.backends.sheets._index import Index, fingerprint, serving_fp
from sheetcache.backends.sheets._layout import (
    HEADERS,
    PARTS_HEADERS,
    IncompleteParts,
    Layout,
    RowDecoder,
    RowError,
    cell_text,
    col_letter,
    format_requests,
    header_requests,
    quote_title,
    winner_rank,
)
from sheetcache.backends.sheets._mirror import Mirror, entry_row, pack

__all__ = ["PAGE_ROWS", "Cursor", "Reader", "SheetState"]

log = logging.getLogger("sheetcache")

#: Rows per read request of a full read: memory stays bounded by a page, not the sheet
#: (a 100,000-row sheet is ~100 MB of JSON), at a few more read requests.
PAGE_ROWS = 10_000
# Mirror writes go in chunks of this many rows (bounded memory during a big load).
_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the last read ended; replaced whole, never edited."""

    read_upto: int = 1
    """Last main-tab row read (1 = just the header)."""
    tail: str = ""
    """The key in that row: if it moved, rows moved."""
    parts_upto: int = 1
    """Last parts-tab row read."""


@dataclass
class SheetState:
    """What this process knows of the sheet, shared by the reader, writer and maintenance.

    Writes to it happen under the backend's network lock; lookups read ``index`` without
    a lock (it is replaced whole, and single dict operations are atomic).
    """

    spreadsheet_id: str
    worksheet: str
    url: str
    init_hint: str
    index: Index = field(default_factory=Index)
    layout: Layout | None = None
    parts_layout: Layout | None = None
    cursor: Cursor = field(default_factory=Cursor)
    sheet_ids: dict[str, int] = field(default_factory=dict)
    grid: dict[str, list[int]] = field(default_factory=dict)
    other_cells: int = 0
    loaded: bool = False
    stale: bool = False
    last_full: float = 0.0
    full_cost: float = 0.0
    stats: dict[str, int] = field(default_factory=lambda: {
        "full_reads": 0, "incremental_reads": 0, "appended_rows": 0, "pruned_rows": 0,
        "compacted_rows": 0,
    })  # fmt: skip
    warned: set[tuple[int, str]] = field(default_factory=set)

    @property
    def parts_worksheet(self) -> str:
        return f"{self.worksheet}.parts"

    def cells_used(self) -> int:
        """Cells of the spreadsheet as last known (all worksheets, rows x columns)."""
        return self.other_cells + sum(r * c for r, c in self.grid.values())


class Reader:
    """Full and incremental reads into :class:`SheetState` and the mirror."""

    def __init__(
        self,
        state: SheetState,
        api: SheetsApi,
        mirror: Mirror,
        notify: Callable[[set[str]], None],
    ) -> None:
        self.state = state
        self.api = api
        self.mirror = mirror
        self.notify = notify
        self.pages = PAGE_ROWS

    # -- full reads -----------------------------------------------------------------------

    def full_load(self) -> None:
        """Read everything (metadata, then pages of rows) and replace the index."""
        for attempt in range(3):
            if self._full_load(last=attempt == 2):
                return
            log.info("sheetcache: rows of %s moved during a full read; reading again",
                     self.state.url)  # fmt: skip

    def _full_load(self, *, last: bool) -> bool:
        st = self.state
        started = time.monotonic()
        seen = time.time()  # rows read now are at least this fresh
        self.read_metadata(self.api.metadata())
        if st.worksheet not in st.sheet_ids:
            raise ConfigError(
                f"spreadsheet {st.spreadsheet_id} has no worksheet {st.worksheet!r}: run "
                f"`sheetcache init {st.init_hint}` to create it (existing tabs: "
                f"{', '.join(repr(t) for t in st.sheet_ids)})"
            )
        tab = quote_title(st.worksheet)
        has_parts = st.parts_worksheet in st.sheet_ids
        # Page 1 with the parts tab in one request; each later page starts on the previous
        # page's last row, whose key must not have moved (else rows moved: read again).
        page = self.pages if not last else 10_000_000
        ranges = [f"{tab}!1:{page}"]  # whole rows: reviewers' own columns come along
        if has_parts:
            ranges.append(quote_title(st.parts_worksheet))
        value_ranges = self.api.batch_get(ranges)
        rows: list[list[Any]] = value_ranges[0].get("values", []) if value_ranges else []
        if not any(any(c != "" for c in r) for r in rows):
            rows = [self._prepare_empty()]
        layout = Layout.from_header(rows[0], st.worksheet, st.init_hint)
        ix = Index()
        if has_parts and len(value_ranges) > 1:
            prows = value_ranges[1].get("values", [])
            if prows:
                st.parts_layout = Layout.from_header(
                    prows[0], st.parts_worksheet, st.init_hint, PARTS_HEADERS
                )
                ix.parts.add_rows(self._canonical_parts(prows[1:]), 2)
            parts_upto = max(1, len(prows))
            del prows
        else:
            st.parts_layout = None
            parts_upto = 1
        del value_ranges
        old = st.index
        changed: set[str] = set()
        ranks: dict[str, tuple[int, float, int]] = {}
        read_upto = len(rows)
        tail = self._key_cell(rows[-1], layout)  # before indexing: it empties the rows it read
        changed |= self._index_rows(ix, layout, rows, 1, seen, old, ranks)
        while len(rows) >= page and not last:
            start = read_upto
            rows = self.api.batch_get([f"{tab}!{start}:{start + page}"])[0].get("values", [])
            if not rows or self._key_cell(rows[0], layout) != tail:
                return False
            got = len(rows)
            if got > 1:
                read_upto = start + got - 1
                tail = self._key_cell(rows[-1], layout)
            changed |= self._index_rows(ix, layout, rows[1:], start + 1, seen, old, ranks)
            if got < page + 1:
                break
        del rows, ranks
        for r in ix.incomplete:
            self._warn_row(r, "parts of its long value are missing from the parts worksheet")
        ix.parts.forget({pid for r, pid in ix.part_ids.items() if r not in ix.incomplete})
        if old.complete:
            # Keys this process knew that the sheet no longer has: deleted by someone.
            gone = [k for k in old.slots if k not in ix.slots]
        else:
            gone = [k for k in self.mirror.all_keys() if k not in ix.slots]
        if gone:
            self.mirror.delete(gone, before=seen)
            changed.update(gone)
        st.layout = layout
        st.index = ix
        st.cursor = Cursor(read_upto, tail, parts_upto)
        st.loaded = True
        st.stale = False
        st.last_full = time.monotonic()
        st.full_cost = st.last_full - started
        st.stats["full_reads"] += 1
        self.notify(changed)
        return True

    def read_metadata(self, meta: Mapping[str, Any]) -> None:
        st = self.state
        st.sheet_ids = {}
        st.grid = {}
        other = 0
        for sheet in meta.get("sheets", []):
            props = sheet.get("properties", {})
            title = props.get("title", "")
            grid = props.get("gridProperties", {})
            size = [int(grid.get("rowCount", 0)), int(grid.get("columnCount", 0))]
            st.sheet_ids[title] = int(props.get("sheetId", 0))
            if title in (st.worksheet, st.parts_worksheet):
                st.grid[title] = size
            else:
                other += size[0] * size[1]
        st.other_cells = other

    def _prepare_empty(self) -> list[Any]:
        """Write the header (and formatting) into an empty worksheet; return the header."""
        st = self.state
        sheet_id = st.sheet_ids[st.worksheet]
        layout = Layout({n: i for i, n in enumerate(HEADERS)}, len(HEADERS))
        cols = st.grid.get(st.worksheet, [0, 0])[1]
        requests = header_requests(sheet_id, [], cols) + format_requests(sheet_id, layout)
        self.api.batch_update(requests, "write the header row")
        log.info("sheetcache: wrote the sheetcache header into empty worksheet %r", st.worksheet)
        return list(HEADERS)

    def _canonical_parts(self, rows: list[list[Any]]) -> list[list[Any]]:
        layout = self.state.parts_layout
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

    # -- decoding -------------------------------------------------------------------------

    def _index_rows(
        self,
        ix: Index,
        layout: Layout,
        rows: list[list[Any]],
        first: int,
        seen: float,
        old: Index,
        ranks: dict[str, tuple[int, float, int]] | None,
    ) -> set[str]:
        """Decode ``rows`` into ``ix`` and the mirror; return keys whose answer changed.

        ``rows`` are sheet rows from ``first`` (row 1 is skipped as the header).

        ``ranks`` holds the winner rank of every key indexed so far in this read (a full
        read); without it (an incremental read) a key seen before is ranked from the mirror.
        Rows are dropped from ``rows`` as they are done, so a page's cells are freed while
        the next chunk decodes.
        """
        changed: set[str] = set()
        decode = RowDecoder(layout, ix.parts)
        upserts: list[tuple[str, float, int, str, str | None, bytes]] = []
        start = 1 if first == 1 else 0
        for chunk_at in range(start, len(rows), _CHUNK):
            chunk = rows[chunk_at : chunk_at + _CHUNK]
            metas = decode.parse_metas(chunk)
            for offset, row in enumerate(chunk):
                r = first + chunk_at + offset
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
                    self._warn_row(r, str(exc))
                    continue
                if part_id is not None:
                    ix.part_ids[r] = part_id
                won = self._add(ix, entry, r, ranks)
                if won:
                    fp = serving_fp(entry)
                    if old.fp(entry.key) != fp:
                        changed.add(entry.key)
                    ix.set(entry.key, r, entry.status, fp)
                    blob = pack(entry)
                    upserts.append(entry_row(entry, seen, fingerprint(blob), decode.write_id, blob))
            del chunk, metas
            rows[chunk_at : chunk_at + _CHUNK] = [[]] * min(_CHUNK, len(rows) - chunk_at)
            if len(upserts) >= _CHUNK:
                self.mirror.upsert(upserts)
                upserts = []
        self.mirror.upsert(upserts)
        return changed

    def _add(
        self, ix: Index, entry: Entry, row: int, ranks: dict[str, tuple[int, float, int]] | None
    ) -> bool:
        """Whether ``entry`` (at ``row``) becomes its key's winner; records the loser."""
        key = entry.key
        old_row = ix.row(key)
        rank = winner_rank(entry, row)
        if old_row is None or old_row == row:
            if ranks is not None:
                ranks[key] = rank
            return True
        if ranks is not None and key in ranks:
            current = ranks[key]
        else:
            known = self.mirror.get(key)
            current = winner_rank(known, old_row) if known is not None else (-1, 0.0, 0)
        if rank > current:
            ix.dups.setdefault(key, []).append(old_row)
            if ranks is not None:
                ranks[key] = rank
            return True
        ix.dups.setdefault(key, []).append(row)
        return False

    def _warn_row(self, row: int, why: str) -> None:
        st = self.state
        if (row, why) in st.warned:
            return
        st.warned.add((row, why))
        log.warning(
            "sheetcache: skipping row %d of worksheet %r in %s: %s. Fix or delete the row; until "
            "then it is never served.", row, st.worksheet, st.url, why,
        )  # fmt: skip

    # -- incremental reads ----------------------------------------------------------------

    def incremental(self) -> None:
        """Read rows appended since the cursor (one read request); full read on a shift."""
        st = self.state
        layout = st.layout
        if layout is None or st.stale or not st.loaded:
            self.full_load()
            return
        cursor = st.cursor
        start = cursor.read_upto
        ranges = [f"{quote_title(st.worksheet)}!A{start}:{col_letter(layout.width - 1)}"]
        if st.parts_layout is not None:
            ranges.append(f"{quote_title(st.parts_worksheet)}!A{cursor.parts_upto + 1}:"
                          f"{col_letter(st.parts_layout.width - 1)}")  # fmt: skip
        elif st.parts_worksheet in st.sheet_ids:
            self.full_load()  # the parts tab appeared: learn its layout
            return
        seen = time.time()
        value_ranges = self.api.batch_get(ranges, retry=False)
        rows: list[list[Any]] = value_ranges[0].get("values", []) if value_ranges else []
        if not rows or self._key_cell(rows[0], layout) != cursor.tail:
            # The row we read last moved: rows were deleted, inserted or sorted.
            self.full_load()
            return
        ix = st.index
        parts_upto = cursor.parts_upto
        if len(value_ranges) > 1 and st.parts_layout is not None:
            prows = value_ranges[1].get("values", [])
            ix.parts.add_rows(self._canonical_parts(prows), cursor.parts_upto + 1)
            parts_upto += len(prows)
        changed: set[str] = set()
        if ix.incomplete:
            retry, ix.incomplete = ix.incomplete, {}
            for r, row in sorted(retry.items()):
                changed |= self._index_rows(ix, layout, [row], r, seen, ix, None)
        new_rows = rows[1:]
        count = len(new_rows)
        tail = self._key_cell(new_rows[-1], layout) if new_rows else cursor.tail  # before: emptied
        changed |= self._index_rows(ix, layout, new_rows, start + 1, seen, ix, None)
        if count:
            read_upto = start + count
            grid = st.grid.get(st.worksheet)
            if grid is not None and grid[0] < read_upto + 1:
                grid[0] = read_upto + 1
            st.cursor = Cursor(read_upto, tail, parts_upto)
        elif parts_upto != cursor.parts_upto:
            st.cursor = Cursor(cursor.read_upto, cursor.tail, parts_upto)
        st.stats["incremental_reads"] += 1
        self.notify(changed)

    def ensure_loaded(self) -> None:
        if not self.state.loaded or self.state.stale:
            self.full_load()

    def entry(self, key: str) -> Entry | None:
        """The entry this process serves for ``key`` (from the mirror), or None."""
        if key not in self.state.index:
            return None
        return self.mirror.get(key)
