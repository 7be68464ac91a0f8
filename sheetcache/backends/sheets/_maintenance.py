"""Deleting rows: deletes, pruning near the cell limit, and compaction (also in the background).

Rows are deleted by number, and numbers move when people sort or delete rows, so every
delete reads the sheet fresh right before, checks the doomed rows still hold the keys it
means, and reads again after.

Background compaction: duplicate rows (an append Google applied after every wait, two
processes answering one prompt at once, a reviewer pasting a row twice) are removed by the
refresh thread at most once per ``compact`` seconds, and only when the last read found
some: it costs three reads and one write, a few percent of the per-minute quota at the
default interval.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from sheetcache._errors import BackendError
from sheetcache.backends.base import Entry
from sheetcache.backends.sheets._client import SheetsApi
from sheetcache.backends.sheets._index import runs
from sheetcache.backends.sheets._layout import HEADERS, cell_text, col_letter, quote_title
from sheetcache.backends.sheets._mirror import Mirror
from sheetcache.backends.sheets._prune import SLACK, choose_victims
from sheetcache.backends.sheets._reader import Reader, SheetState

__all__ = ["Maintenance"]

log = logging.getLogger("sheetcache")

# deleteDimension requests per batchUpdate (~150 bytes each: well under the body limit).
_DELETES_PER_REQUEST = 20_000


class Maintenance:
    """Deletes, pruning and compaction."""

    def __init__(
        self,
        state: SheetState,
        api: SheetsApi,
        mirror: Mirror,
        reader: Reader,
        notify: Callable[[set[str]], None],
        max_cells: int,
        compact_interval: float,
    ) -> None:
        self.state = state
        self.api = api
        self.mirror = mirror
        self.reader = reader
        self.notify = notify
        self.max_cells = max_cells
        self.compact_interval = compact_interval
        self.last_compact = time.monotonic()

    # -- deleting ---------------------------------------------------------------------------

    def delete_many(self, keys: Sequence[str]) -> int:
        wanted = set(keys)
        self.reader.ensure_loaded()
        if not any(k in self.state.index for k in wanted):
            return 0
        self.reader.full_load()  # deleting by row number: read the rows fresh right before
        present = [k for k in wanted if k in self.state.index]
        if present:
            self._delete_rows(self.state.index.all_rows(present), forget=present)
        return len(present)

    def delete_where(self, predicate: Callable[[Entry], bool], namespace: str | None) -> int:
        # One read, one batched delete, one re-read, whatever the number of entries.
        self.reader.full_load()
        ix = self.state.index
        doomed = [
            e.key
            for e in self.mirror.iter_keys(ix.keys())
            if (namespace is None or e.namespace == namespace) and predicate(e)
        ]
        if doomed:
            self._delete_rows(ix.all_rows(doomed), forget=doomed)
        return len(doomed)

    def _delete_rows(
        self, rows: Sequence[int], parts_rows: Sequence[int] = (), forget: Sequence[str] = ()
    ) -> None:
        """Delete main-tab ``rows`` (and their parts rows, plus ``parts_rows``), then re-read.

        One batchUpdate per 20,000 runs; bottom rows first so the rest stay put.
        """
        st = self.state
        ix = st.index
        self._check_rows(rows)
        gone = set(rows)
        owned = {ix.part_ids[r] for r in gone if r in ix.part_ids}
        kept = {pid for r, pid in ix.part_ids.items() if r not in gone}
        doomed_parts = set(parts_rows)
        for pid in owned - kept:
            doomed_parts.update(ix.parts.rows.get(pid, []))
        requests: list[dict[str, Any]] = []
        for title, doomed in ((st.worksheet, rows), (st.parts_worksheet, doomed_parts)):
            if not doomed or title not in st.sheet_ids:
                continue
            for first, last in reversed(runs(list(doomed))):
                requests.append({"deleteDimension": {"range": {
                    "sheetId": st.sheet_ids[title], "dimension": "ROWS",
                    "startIndex": first - 1, "endIndex": last,
                }}})  # fmt: skip
        for start in range(0, len(requests), _DELETES_PER_REQUEST):
            self.api.batch_update(requests[start : start + _DELETES_PER_REQUEST], "delete rows")
        if forget:
            self.mirror.delete(forget)
        self.reader.full_load()

    def _check_rows(self, rows: Sequence[int]) -> None:
        """Check, right before deleting by number, that the rows hold the keys we mean.

        One read of the key column; if a row moved since the read, nothing is deleted.
        """
        st = self.state
        layout = st.layout
        if not rows or layout is None:
            return
        letter = col_letter(layout.columns["key"])
        column = self.api.batch_get([f"{quote_title(st.worksheet)}!{letter}:{letter}"])
        values = column[0].get("values", []) if column else []
        expected = {r: k for k, r in st.index.rows().items()}
        for k, dup_rows in st.index.dups.items():
            expected.update(dict.fromkeys(dup_rows, k))
        for r in rows:
            want = expected.get(r)
            if want is None:
                continue  # a blank or garbage row: nothing of ours to confuse
            cells = values[r - 1] if r - 1 < len(values) else []
            have = cell_text(cells[0]).strip() if cells else ""
            if have != want:
                st.stale = True
                raise BackendError(f"rows of {st.url} moved while deleting; will retry")

    # -- the cell limit ---------------------------------------------------------------------

    def make_room(self, cells_needed: int) -> None:
        """Prune by the documented policy if an append would pass ``max_cells``."""
        st = self.state
        used = st.cells_used()
        if used + cells_needed <= self.max_cells:
            return
        width = max(1, st.grid.get(st.worksheet, [0, len(HEADERS)])[1])
        excess = used + cells_needed - self.max_cells + math.ceil(self.max_cells * SLACK)
        rows_needed = math.ceil(excess / width)

        def pick() -> Any:
            ix = st.index
            rows = ix.rows()
            entries = ((e, rows[e.key]) for e in self.mirror.iter_keys(list(rows)))
            return choose_victims(entries, ix.dup_rows(), rows_needed)

        victims = pick()
        if used - victims.rows * width + cells_needed > self.max_cells:
            raise BackendError(
                f"spreadsheet {st.spreadsheet_id} is full: {used:,} of {self.max_cells:,} cells "
                "used, and only approved, rejected or recent entries are left to prune. New "
                "answers wait in the local outbox. Move old rows or other worksheets out of this "
                "spreadsheet, or point the cache at a new one."
            )
        if not victims.rows:
            return
        self.reader.full_load()  # fresh row numbers right before deleting by row
        victims = pick()
        log.warning("sheetcache: %s is near the %s-cell limit: pruning %d row(s) (duplicates, "
                    "expired, then least-hit unreviewed entries)", st.url, f"{self.max_cells:,}",
                    victims.rows)  # fmt: skip
        rows = list(victims.dup_rows) + st.index.all_rows(victims.keys)
        st.stats["pruned_rows"] += len(rows)
        self._delete_rows(rows, forget=victims.keys)

    # -- compaction -------------------------------------------------------------------------

    def compact(self, *, dry_run: bool = False) -> dict[str, int]:
        """Delete duplicate rows, empty rows inside the table and orphaned parts.

        Returns counts: ``duplicates``, ``blank``, ``orphan_parts``.
        """
        self.reader.full_load()
        st = self.state
        ix = st.index
        dups = ix.dup_rows()
        blank = [r for r in ix.blank if r < st.cursor.read_upto]
        winners = set(ix.rows().values())
        referenced = {pid for r, pid in ix.part_ids.items() if r in winners}
        orphans = [r for pid, rs in ix.parts.rows.items() if pid not in referenced for r in rs]
        orphans += ix.parts.dup_rows + ix.parts.bad_rows
        report = {"duplicates": len(dups), "blank": len(blank), "orphan_parts": len(set(orphans))}
        if not dry_run and (dups or blank or orphans):
            self._delete_rows(dups + blank, orphans)
            st.stats["compacted_rows"] += len(dups)
        self.last_compact = time.monotonic()
        return report

    def compact_due(self) -> bool:
        """Whether the background compaction should run now.

        Duplicates are known and the interval since the last run has passed.
        """
        return (
            bool(self.state.index.dups)
            and time.monotonic() - self.last_compact >= self.compact_interval
        )

    def compact_in_background(self) -> None:
        report = self.compact()
        if report["duplicates"]:
            log.info("sheetcache: removed %d duplicate row(s) from %s", report["duplicates"],
                     self.state.url)  # fmt: skip
