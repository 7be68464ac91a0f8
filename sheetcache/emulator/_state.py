"""The emulator's data: Drive files, spreadsheets, sheets and their grids.

A sheet keeps its values as a list of row lists (see :mod:`._values` for what a cell is), which
makes the operations Sheets clients lean on cheap: appending rows, reading whole ranges,
inserting and deleting rows. Formatting is kept as an ordered list of layers (the ranges and
formats of ``repeatCell`` requests) rather than per cell, so formatting a whole column costs one
entry, not a million.

Nothing here locks; :class:`Store` owns one lock that the server holds around every request.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sheetcache.emulator._fields import Mask, merge_masked
from sheetcache.emulator._values import (
    FORMATTED,
    SERIAL_NUMBER,
    cell_from_json,
    cell_to_json,
    render,
)

__all__ = [
    "DEFAULT_COLS",
    "DEFAULT_COL_PX",
    "DEFAULT_ROWS",
    "DEFAULT_ROW_PX",
    "MAX_CELLS",
    "SHEETS_MIME",
    "DriveFile",
    "Sheet",
    "Spreadsheet",
    "Store",
    "cut_span",
    "new_file_id",
    "shift_span",
]

#: Google's limit on cells (rows x columns, all sheets) in one spreadsheet.
MAX_CELLS = 10_000_000
DEFAULT_ROWS = 1000
DEFAULT_COLS = 26
DEFAULT_ROW_PX = 21
DEFAULT_COL_PX = 100
SHEETS_MIME = "application/vnd.google-apps.spreadsheet"

# What a new spreadsheet reports, copied from recorded Google responses.
_DEFAULT_FORMAT: dict[str, Any] = {
    "backgroundColor": {"red": 1, "green": 1, "blue": 1},
    "padding": {"top": 2, "right": 3, "bottom": 2, "left": 3},
    "verticalAlignment": "BOTTOM",
    "wrapStrategy": "OVERFLOW_CELL",
    "textFormat": {
        "foregroundColor": {},
        "fontFamily": "arial,sans,sans-serif",
        "fontSize": 10,
        "bold": False,
        "italic": False,
        "strikethrough": False,
        "underline": False,
        "foregroundColorStyle": {"rgbColor": {}},
    },
    "backgroundColorStyle": {"rgbColor": {"red": 1, "green": 1, "blue": 1}},
}
_THEME: dict[str, Any] = {
    "primaryFontFamily": "Arial",
    "themeColors": [
        {"colorType": "TEXT", "color": {"rgbColor": {}}},
        {"colorType": "BACKGROUND", "color": {"rgbColor": {"red": 1, "green": 1, "blue": 1}}},
        {
            "colorType": "ACCENT1",
            "color": {"rgbColor": {"red": 0.25882354, "green": 0.52156866, "blue": 0.95686275}},
        },
        {
            "colorType": "ACCENT2",
            "color": {"rgbColor": {"red": 0.91764706, "green": 0.2627451, "blue": 0.20784314}},
        },
        {
            "colorType": "ACCENT3",
            "color": {"rgbColor": {"red": 0.9843137, "green": 0.7372549, "blue": 0.015686275}},
        },
        {
            "colorType": "ACCENT4",
            "color": {"rgbColor": {"red": 0.20392157, "green": 0.65882355, "blue": 0.3254902}},
        },
        {
            "colorType": "ACCENT5",
            "color": {"rgbColor": {"red": 1, "green": 0.42745098, "blue": 0.003921569}},
        },
        {
            "colorType": "ACCENT6",
            "color": {"rgbColor": {"red": 0.27450982, "green": 0.7411765, "blue": 0.7764706}},
        },
        {
            "colorType": "LINK",
            "color": {"rgbColor": {"red": 0.06666667, "green": 0.33333334, "blue": 0.8}},
        },
    ],
}

_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def new_file_id() -> str:
    """A Drive-style file id: 44 characters of base64url, starting with ``1``."""
    return "1" + "".join(secrets.choice(_ID_CHARS) for _ in range(43))


@contextlib.contextmanager
def _gc_paused(size: int) -> Iterator[None]:
    # Building 100,000 row lists triggers the cyclic collector over and over, tripling the
    # cost of a big read; none of these lists can form a cycle, so pause it meanwhile.
    pause = size > 5000 and gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if pause:
            gc.enable()


def _trim(row: list[Any]) -> list[Any]:
    while row and row[-1] == "":
        row.pop()
    return row


def _dense(row: list[Any]) -> bool:
    # A row whose cells are all filled from column A on: the common shape of a data table.
    return bool(row) and row[0] != "" and "" not in row


def _runs(row: list[Any]) -> list[tuple[int, int]]:
    if _dense(row):
        return [(0, len(row))]
    runs: list[tuple[int, int]] = []
    start = -1
    for c, value in enumerate(row):
        if value != "":
            if start < 0:
                start = c
        elif start >= 0:
            runs.append((start, c))
            start = -1
    if start >= 0:
        runs.append((start, len(row)))
    return runs


def shift_span(start: int, end: int | None, at: int, n: int) -> tuple[int, int | None]:
    """A span ``[start, end)`` after inserting ``n`` lines before index ``at``."""
    new_start = start + n if start >= at else start
    new_end = end if end is None or end <= at else end + n
    return new_start, new_end


def cut_span(start: int, end: int | None, a: int, b: int) -> tuple[int, int | None] | None:
    """A span after deleting lines ``[a, b)``, or ``None`` when nothing of it is left."""
    n = b - a
    new_start = start if start <= a else (a if start < b else start - n)
    if end is None:
        return new_start, None
    new_end = end if end <= a else (a if end <= b else end - n)
    if new_end <= new_start:
        return None
    return new_start, new_end


class Sheet:
    """One tab: properties, values and the formatting the emulator keeps.

    Attributes:
        props: The ``SheetProperties`` JSON exactly as ``spreadsheets.get`` reports it.
        rows: Row lists of stored cells, trimmed (see :mod:`._values`).
        plain_text: True while every stored cell is a ``str``; reads then skip rendering.
        formats: ``[r0, r1, c0, c1, mask, userEnteredFormat]`` layers, applied in order.
        validations: ``[r0, r1, c0, c1, rule]`` layers (``rule`` ``None`` clears).
        notes: ``(row, col) -> note``.
        row_meta, col_meta: per-index ``DimensionProperties`` overrides (``pixelSize``, ...).
        merges, protected: ``GridRange``/``ProtectedRange`` JSON as Google reports them.
        basic_filter: the ``BasicFilter`` JSON or ``None``.
        groups: ``{"ROWS": [...], "COLUMNS": [...]}`` dimension groups.
    """

    def __init__(self, props: dict[str, Any]) -> None:
        self.props = props
        self.rows: list[list[Any]] = []
        self.plain_text = True
        self.formats: list[list[Any]] = []
        self.validations: list[list[Any]] = []
        self.notes: dict[tuple[int, int], str] = {}
        self.row_meta: dict[int, dict[str, Any]] = {}
        self.col_meta: dict[int, dict[str, Any]] = {}
        self.merges: list[dict[str, Any]] = []
        self.protected: list[dict[str, Any]] = []
        self.basic_filter: dict[str, Any] | None = None
        self.groups: dict[str, list[dict[str, Any]]] = {"ROWS": [], "COLUMNS": []}
        # Rows lo..hi known to be dense, and their widest length: lets values.append find
        # the table under a 100,000-row sheet without rescanning it on every call.
        self._dense: tuple[int, int, int] | None = None

    # --- identity and size ---------------------------------------------------------------

    @property
    def sheet_id(self) -> int:
        return int(self.props.get("sheetId", 0))

    @property
    def title(self) -> str:
        return str(self.props["title"])

    @property
    def row_count(self) -> int:
        return int(self.props["gridProperties"].get("rowCount", 0))

    @property
    def col_count(self) -> int:
        return int(self.props["gridProperties"].get("columnCount", 0))

    @property
    def cell_count(self) -> int:
        return self.row_count * self.col_count

    def set_size(self, rows: int, cols: int) -> None:
        """Resize the grid, dropping whatever falls outside it."""
        grid = self.props["gridProperties"]
        grid["rowCount"] = rows
        grid["columnCount"] = cols
        if len(self.rows) > rows or (self.rows and cols < max(map(len, self.rows))):
            self._dense = None
        if len(self.rows) > rows:
            del self.rows[rows:]
        for row in self.rows:
            if len(row) > cols:
                del row[cols:]
                _trim(row)
        self._trim_rows()
        self.notes = {k: v for k, v in self.notes.items() if k[0] < rows and k[1] < cols}
        self.row_meta = {k: v for k, v in self.row_meta.items() if k < rows}
        self.col_meta = {k: v for k, v in self.col_meta.items() if k < cols}

    def clone(self) -> Sheet:
        """An independent copy (rows are copied; the cells themselves are never mutated)."""
        other = Sheet(copy.deepcopy(self.props))
        with _gc_paused(len(self.rows)):
            other.rows = [row[:] for row in self.rows]
        other.plain_text = self.plain_text
        other.formats = [layer[:] for layer in self.formats]
        other.validations = [layer[:] for layer in self.validations]
        other.notes = dict(self.notes)
        other.row_meta = copy.deepcopy(self.row_meta)
        other.col_meta = copy.deepcopy(self.col_meta)
        other.merges = copy.deepcopy(self.merges)
        other.protected = copy.deepcopy(self.protected)
        other.basic_filter = copy.deepcopy(self.basic_filter)
        other.groups = copy.deepcopy(self.groups)
        other._dense = self._dense
        return other

    def replace_rows(self, rows: list[list[Any]]) -> None:
        """Swap in a whole new row list (trimmed here)."""
        self.rows = [_trim(row) for row in rows]
        self._dense = None
        self.plain_text = all(type(cell) is str for row in self.rows for cell in row)
        self._trim_rows()

    # --- values --------------------------------------------------------------------------

    def cell(self, r: int, c: int) -> Any:
        """The stored cell at ``(r, c)`` (``""`` when empty)."""
        if r < len(self.rows):
            row = self.rows[r]
            if c < len(row):
                return row[c]
        return ""

    def write(self, r0: int, c0: int, matrix: list[list[Any]], all_text: bool) -> None:
        """Store a block of cells at ``(r0, c0)``; ``None`` cells leave the old value."""
        rows = self.rows
        for i, values in enumerate(matrix):
            if not values:
                continue
            r = r0 + i
            while len(rows) <= r:
                rows.append([])
            row = rows[r]
            end = c0 + len(values)
            if None in values:
                if len(row) < end:
                    row.extend([""] * (end - len(row)))
                for j, value in enumerate(values):
                    if value is not None:
                        row[c0 + j] = value
            else:
                if len(row) < c0:
                    row.extend([""] * (c0 - len(row)))
                row[c0:end] = values
            _trim(row)
        self._trim_rows()
        if not all_text:
            self.plain_text = False
        span = self._dense
        if span is not None and matrix:
            lo, hi, width = span
            r1 = r0 + len(matrix) - 1
            if r0 == hi + 1 and c0 == 0:
                added = rows[r0 : r1 + 1]
                if len(added) == len(matrix) and all(_dense(row) for row in added):
                    self._dense = (lo, r1, max(width, max(map(len, added))))
            elif r0 <= hi and r1 >= lo:
                self._dense = None

    def clear(self, r0: int, r1: int, c0: int, c1: int) -> None:
        """Empty the values of a rectangle (formatting stays, as with ``values.clear``)."""
        rows = self.rows
        self._dense = None
        for r in range(r0, min(r1, len(rows))):
            row = rows[r]
            if c0 >= len(row):
                continue
            if c1 >= len(row):
                del row[c0:]
            else:
                row[c0:c1] = [""] * (c1 - c0)
            _trim(row)
        self._trim_rows()

    def read(
        self,
        r0: int,
        r1: int,
        c0: int,
        c1: int,
        option: str = FORMATTED,
        date_option: str = SERIAL_NUMBER,
        columns: bool = False,
    ) -> list[list[Any]]:
        """Values of a rectangle as ``values.get`` returns them: trailing empties trimmed.

        The returned rows may be the stored lists themselves; serialise before releasing the
        store lock and never mutate them.
        """
        rows = self.rows[r0:r1]
        out: list[list[Any]]
        if self.plain_text and c0 == 0 and all(len(row) <= c1 for row in rows):
            # Text renders as itself whatever the render option: hand out the stored rows.
            out = rows
        else:
            with _gc_paused(len(rows)):
                if self.plain_text:
                    out = [row[c0:c1] for row in rows]
                    for row in out:
                        if row and row[-1] == "":
                            _trim(row)
                else:
                    out = [
                        _trim([render(cell, option, date_option) for cell in row[c0:c1]])
                        for row in rows
                    ]
        while out and not out[-1]:
            out.pop()
        if columns:
            width = max((len(row) for row in out), default=0)
            cols = [_trim([row[j] if j < len(row) else "" for row in out]) for j in range(width)]
            while cols and not cols[-1]:
                cols.pop()
            return cols
        return out

    def _trim_rows(self) -> None:
        rows = self.rows
        while rows and not rows[-1]:
            rows.pop()
        if not rows:
            self.plain_text = True

    # --- tables (values.append) ----------------------------------------------------------

    def find_table(self, r0: int, r1: int, c0: int, c1: int) -> tuple[int, int, int, int] | None:
        """The "table" ``values.append`` appends to, as ``(top, bottom, left, right)``.

        Google documents only that it "searches for existing data" in the range. What matches
        recorded behaviour: start from the last filled cell in the range and take the block
        of filled cells connected to it (edge-adjacent), over the whole sheet. ``None`` when
        the range holds no data: the append then writes at the start of the range.
        """
        rows = self.rows
        for r in range(min(r1, len(rows)) - 1, r0 - 1, -1):
            row = rows[r]
            for c in range(min(c1, len(row)) - 1, c0 - 1, -1):
                if row[c] != "":
                    return self._component(r, c)
        return None

    def _component(self, seed_r: int, seed_c: int) -> tuple[int, int, int, int]:
        rows = self.rows
        runs_cache: dict[int, list[tuple[int, int]]] = {}
        blocks: list[tuple[int, int]] = []  # row spans of dense rows, visited as one node

        def runs(r: int) -> list[tuple[int, int]]:
            found = runs_cache.get(r)
            if found is None:
                found = runs_cache[r] = _runs(rows[r])
            return found

        def in_block(r: int) -> bool:
            return any(lo <= r <= hi for lo, hi in blocks)

        seed = next(run for run in runs(seed_r) if run[0] <= seed_c < run[1])
        seen = {(seed_r, seed[0])}
        stack = [(seed_r, seed)]
        top = bottom = seed_r
        left, right = seed
        while stack:
            r, (a, b) = stack.pop()
            edges = [(r, a, b)]
            if a == 0 and _dense(rows[r]) and not in_block(r):
                # Sweep a run of dense rows at once: they all touch through column A.
                span = self._dense
                if span is not None and span[0] <= r <= span[1]:
                    lo, hi, b = span
                else:
                    lo = hi = r
                    b = len(rows[r])
                while lo > 0 and _dense(rows[lo - 1]):
                    lo -= 1
                    b = max(b, len(rows[lo]))
                while hi + 1 < len(rows) and _dense(rows[hi + 1]):
                    hi += 1
                    b = max(b, len(rows[hi]))
                self._dense = (lo, hi, b)
                blocks.append((lo, hi))
                top, bottom = min(top, lo), max(bottom, hi)
                edges = [(lo, 0, len(rows[lo])), (hi, 0, len(rows[hi]))]
            top, bottom = min(top, r), max(bottom, r)
            left, right = min(left, a), max(right, b)
            for er, ea, eb in edges:
                for nr in (er - 1, er + 1):
                    if not 0 <= nr < len(rows) or in_block(nr):
                        continue
                    for run in runs(nr):
                        if run[0] < eb and ea < run[1] and (nr, run[0]) not in seen:
                            seen.add((nr, run[0]))
                            stack.append((nr, run))
        return top, bottom + 1, left, right

    # --- dimensions ----------------------------------------------------------------------

    def insert(self, dimension: str, at: int, n: int) -> None:
        """Insert ``n`` empty rows or columns before index ``at``."""
        grid = self.props["gridProperties"]
        self._dense = None
        if dimension == "ROWS":
            if at < len(self.rows):
                self.rows[at:at] = [[] for _ in range(n)]
            grid["rowCount"] = self.row_count + n
            self.notes = {(r + n if r >= at else r, c): v for (r, c), v in self.notes.items()}
            self.row_meta = {(k + n if k >= at else k): v for k, v in self.row_meta.items()}
            for layer in self.formats + self.validations:
                layer[0], layer[1] = shift_span(layer[0], layer[1], at, n)
        else:
            for row in self.rows:
                if at < len(row):
                    row[at:at] = [""] * n
            grid["columnCount"] = self.col_count + n
            self.notes = {(r, c + n if c >= at else c): v for (r, c), v in self.notes.items()}
            self.col_meta = {(k + n if k >= at else k): v for k, v in self.col_meta.items()}
            for layer in self.formats + self.validations:
                layer[2], layer[3] = shift_span(layer[2], layer[3], at, n)
        self._shift_ranges(dimension, lambda s, e: shift_span(s, e, at, n))

    def delete(self, dimension: str, a: int, b: int) -> None:
        """Delete rows or columns ``[a, b)``."""
        n = b - a
        grid = self.props["gridProperties"]
        self._dense = None

        def moved(i: int) -> int | None:
            return i if i < a else (None if i < b else i - n)

        if dimension == "ROWS":
            del self.rows[a:b]
            self._trim_rows()
            grid["rowCount"] = self.row_count - n
            self.notes = {
                (m, c): v for (r, c), v in self.notes.items() if (m := moved(r)) is not None
            }
            self.row_meta = {m: v for k, v in self.row_meta.items() if (m := moved(k)) is not None}
            self.formats = self._cut_layers(self.formats, 0, a, b)
            self.validations = self._cut_layers(self.validations, 0, a, b)
        else:
            for row in self.rows:
                del row[a:b]
                _trim(row)
            self._trim_rows()
            grid["columnCount"] = self.col_count - n
            self.notes = {
                (r, m): v for (r, c), v in self.notes.items() if (m := moved(c)) is not None
            }
            self.col_meta = {m: v for k, v in self.col_meta.items() if (m := moved(k)) is not None}
            self.formats = self._cut_layers(self.formats, 2, a, b)
            self.validations = self._cut_layers(self.validations, 2, a, b)
        self._shift_ranges(dimension, lambda s, e: cut_span(s, e, a, b))
        frozen_key = "frozenRowCount" if dimension == "ROWS" else "frozenColumnCount"
        if grid.get(frozen_key):
            span = cut_span(0, grid[frozen_key], a, b)
            if span and span[1]:
                grid[frozen_key] = span[1]
            else:
                grid.pop(frozen_key, None)

    @staticmethod
    def _cut_layers(layers: list[list[Any]], i: int, a: int, b: int) -> list[list[Any]]:
        kept = []
        for layer in layers:
            span = cut_span(layer[i], layer[i + 1], a, b)
            if span is not None:
                layer[i], layer[i + 1] = span
                kept.append(layer)
        return kept

    def _shift_ranges(self, dimension: str, move: Any) -> None:
        start_key, end_key = (
            ("startRowIndex", "endRowIndex")
            if dimension == "ROWS"
            else ("startColumnIndex", "endColumnIndex")
        )

        def moved(grid_range: dict[str, Any]) -> bool:
            span = move(grid_range.get(start_key, 0), grid_range.get(end_key))
            if span is None:
                return False
            grid_range[start_key], end = span
            if end is not None:
                grid_range[end_key] = end
            if not grid_range[start_key]:
                grid_range.pop(start_key)
            return True

        self.merges = [m for m in self.merges if moved(m)]
        self.protected = [p for p in self.protected if "range" not in p or moved(p["range"])]
        if (
            self.basic_filter
            and "range" in self.basic_filter
            and not moved(self.basic_filter["range"])
        ):
            self.basic_filter = None
        kept = []
        for group in self.groups.get(dimension, []):
            rng = group["range"]
            span = move(rng.get("startIndex", 0), rng.get("endIndex"))
            if span is not None:
                rng["startIndex"], rng["endIndex"] = span
                if not rng["startIndex"]:
                    rng.pop("startIndex")
                kept.append(group)
        self.groups[dimension] = kept

    # --- formatting ----------------------------------------------------------------------

    def add_format(
        self, r0: int, r1: int | None, c0: int, c1: int | None, mask: Mask, fmt: dict[str, Any]
    ) -> None:
        """Layer a ``userEnteredFormat`` (masked) over a rectangle."""
        self.formats.append([r0, r1, c0, c1, mask, copy.deepcopy(fmt)])

    def cell_format(self, r: int, c: int) -> dict[str, Any]:
        """The ``userEnteredFormat`` of one cell: its layers merged in order."""
        out: dict[str, Any] = {}
        for r0, r1, c0, c1, mask, fmt in self.formats:
            if r0 <= r and (r1 is None or r < r1) and c0 <= c and (c1 is None or c < c1):
                merge_masked(out, fmt, mask)
        return out

    def cell_validation(self, r: int, c: int) -> dict[str, Any] | None:
        """The data-validation rule that applies to one cell, if any."""
        found = None
        for r0, r1, c0, c1, rule in self.validations:
            if r0 <= r and (r1 is None or r < r1) and c0 <= c and (c1 is None or c < c1):
                found = rule
        return found

    # --- persistence ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        rows = (
            self.rows
            if self.plain_text
            else [[cell_to_json(cell) for cell in row] for row in self.rows]
        )
        return {
            "properties": self.props,
            "rows": rows,
            "formats": self.formats,
            "validations": self.validations,
            "notes": [[r, c, text] for (r, c), text in self.notes.items()],
            "rowMeta": [[k, v] for k, v in self.row_meta.items()],
            "colMeta": [[k, v] for k, v in self.col_meta.items()],
            "merges": self.merges,
            "protectedRanges": self.protected,
            "basicFilter": self.basic_filter,
            "groups": self.groups,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sheet:
        sheet = cls(data["properties"])
        sheet.rows = [[cell_from_json(cell) for cell in row] for row in data["rows"]]
        sheet.plain_text = all(type(cell) is str for row in sheet.rows for cell in row)
        sheet.formats = [list(layer) for layer in data.get("formats", [])]
        sheet.validations = [list(layer) for layer in data.get("validations", [])]
        sheet.notes = {(r, c): text for r, c, text in data.get("notes", [])}
        sheet.row_meta = {int(k): v for k, v in data.get("rowMeta", [])}
        sheet.col_meta = {int(k): v for k, v in data.get("colMeta", [])}
        sheet.merges = data.get("merges", [])
        sheet.protected = data.get("protectedRanges", [])
        sheet.basic_filter = data.get("basicFilter")
        sheet.groups = data.get("groups") or {"ROWS": [], "COLUMNS": []}
        return sheet


class Spreadsheet:
    """A spreadsheet: properties, ordered sheets, named ranges and the batch log.

    Attributes:
        batch_log: Every request of every committed ``spreadsheets.batchUpdate``, in order,
            as sent (``{"repeatCell": {...}}``), for tests that assert what was asked for.
    """

    def __init__(self, spreadsheet_id: str, title: str) -> None:
        self.id = spreadsheet_id
        self.props: dict[str, Any] = {
            "title": title,
            "locale": "en_US",
            "autoRecalc": "ON_CHANGE",
            "timeZone": "Etc/GMT",
            "defaultFormat": copy.deepcopy(_DEFAULT_FORMAT),
            "spreadsheetTheme": copy.deepcopy(_THEME),
        }
        self.sheets: list[Sheet] = []
        self.named_ranges: list[dict[str, Any]] = []
        self.batch_log: list[dict[str, Any]] = []
        # Set on clones only: ids of the sheets a batch has already copied.
        self._copied: set[int] | None = None

    @property
    def title(self) -> str:
        return str(self.props["title"])

    @property
    def cell_count(self) -> int:
        return sum(sheet.cell_count for sheet in self.sheets)

    def add_sheet(
        self,
        title: str | None = None,
        rows: int = DEFAULT_ROWS,
        cols: int = DEFAULT_COLS,
        sheet_id: int | None = None,
        index: int | None = None,
    ) -> Sheet:
        """Add a grid sheet and renumber the sheet indexes."""
        if sheet_id is None:
            sheet_id = 0 if not self.sheets else self.new_sheet_id()
        props = {
            "sheetId": sheet_id,
            "title": title or self.free_title("Sheet"),
            "index": 0,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": rows, "columnCount": cols},
        }
        sheet = Sheet(props)
        self.insert_sheet(sheet, index)
        return sheet

    def insert_sheet(self, sheet: Sheet, index: int | None) -> None:
        if index is None or index > len(self.sheets):
            index = len(self.sheets)
        self.sheets.insert(max(index, 0), sheet)
        self.renumber()

    def renumber(self) -> None:
        for i, sheet in enumerate(self.sheets):
            sheet.props["index"] = i

    def new_sheet_id(self) -> int:
        taken = {sheet.sheet_id for sheet in self.sheets}
        while True:
            candidate = secrets.randbelow(2**31 - 1) + 1
            if candidate not in taken:
                return candidate

    def free_title(self, stem: str) -> str:
        taken = {sheet.title.lower() for sheet in self.sheets}
        n = len(self.sheets) + 1
        while f"{stem}{n}".lower() in taken:
            n += 1
        return f"{stem}{n}"

    def sheet_by_id(self, sheet_id: int) -> Sheet | None:
        for sheet in self.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        return None

    def sheet_by_title(self, title: str) -> Sheet | None:
        for sheet in self.sheets:
            if sheet.title == title:
                return sheet
        # Sheets matches titles case-insensitively when there is no exact match.
        lowered = title.lower()
        for sheet in self.sheets:
            if sheet.title.lower() == lowered:
                return sheet
        return None

    def named_range(self, name: str) -> dict[str, Any] | None:
        for named in self.named_ranges:
            if named.get("name") == name:
                return named
        return None

    def clone(self) -> Spreadsheet:
        """A copy to run a batch against; sheets are shared until :meth:`writable` copies one."""
        other = Spreadsheet.__new__(Spreadsheet)
        other.id = self.id
        other.props = copy.deepcopy(self.props)
        other.sheets = list(self.sheets)
        other.named_ranges = copy.deepcopy(self.named_ranges)
        other.batch_log = self.batch_log
        other._copied = set()
        return other

    def writable(self, sheet: Sheet) -> Sheet:
        """In a clone, the sheet to mutate: copied on first use so a failed batch leaves no
        trace (Google applies a ``batchUpdate`` all or nothing).
        """
        copied = self._copied
        if copied is None or id(sheet) in copied:
            return sheet
        fresh = sheet.clone()
        self.sheets[self.sheets.index(sheet)] = fresh
        copied.add(id(fresh))
        return fresh

    def adopt(self, other: Spreadsheet) -> None:
        """Commit a clone's state into this spreadsheet."""
        self.props = other.props
        self.sheets = other.sheets
        self.named_ranges = other.named_ranges

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "properties": self.props,
            "sheets": [sheet.to_json() for sheet in self.sheets],
            "namedRanges": self.named_ranges,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Spreadsheet:
        spreadsheet = cls(data["id"], data["properties"]["title"])
        spreadsheet.props = data["properties"]
        spreadsheet.sheets = [Sheet.from_json(sheet) for sheet in data["sheets"]]
        spreadsheet.named_ranges = data.get("namedRanges", [])
        return spreadsheet


@dataclass
class DriveFile:
    """A Drive file: a spreadsheet, or any other file a client creates (folders).

    Attributes:
        allowed: ``None`` when every caller may use the file, else ``user -> role``
            (``"writer"``, ``"reader"``...) of who may.
    """

    id: str
    name: str
    mime_type: str
    owner: str
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    parents: list[str] = field(default_factory=list)
    permissions: list[dict[str, Any]] = field(default_factory=list)
    allowed: dict[str, str] | None = None
    spreadsheet: Spreadsheet | None = None

    @property
    def title(self) -> str:
        return self.spreadsheet.title if self.spreadsheet else self.name

    def can_read(self, user: str) -> bool:
        return self.allowed is None or user in self.allowed

    def can_write(self, user: str) -> bool:
        if self.allowed is None:
            return True
        return self.allowed.get(user) in ("writer", "owner", "organizer", "fileOrganizer")

    def touch(self) -> None:
        self.modified = time.time()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "owner": self.owner,
            "created": self.created,
            "modified": self.modified,
            "parents": self.parents,
            "permissions": self.permissions,
            "allowed": self.allowed,
            "spreadsheet": self.spreadsheet.to_json() if self.spreadsheet else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriveFile:
        spreadsheet = data.get("spreadsheet")
        return cls(
            id=data["id"],
            name=data["name"],
            mime_type=data["mimeType"],
            owner=data["owner"],
            created=data["created"],
            modified=data["modified"],
            parents=data.get("parents", []),
            permissions=data.get("permissions", []),
            allowed=data.get("allowed"),
            spreadsheet=Spreadsheet.from_json(spreadsheet) if spreadsheet else None,
        )


class Store:
    """Every Drive file the emulator holds, behind one lock.

    Attributes:
        lock: Held for the whole of each request, which makes every request atomic.
        version: Bumped by every change; the state saver compares it with what it last wrote.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.files: dict[str, DriveFile] = {}
        self.version = 0

    def changed(self, file: DriveFile | None = None) -> None:
        self.version += 1
        if file is not None:
            file.touch()

    def create_spreadsheet(self, title: str, owner: str, file_id: str | None = None) -> DriveFile:
        """A new spreadsheet with one 1000 x 26 ``Sheet1``, as Drive creates it."""
        file_id = file_id or new_file_id()
        spreadsheet = Spreadsheet(file_id, title)
        spreadsheet.add_sheet("Sheet1", sheet_id=0)
        file = DriveFile(file_id, title, SHEETS_MIME, owner, spreadsheet=spreadsheet)
        self.files[file_id] = file
        self.changed()
        return file

    def to_json(self) -> dict[str, Any]:
        return {"files": [file.to_json() for file in self.files.values()]}

    def load_json(self, data: dict[str, Any]) -> None:
        self.files = {}
        for item in data.get("files", []):
            file = DriveFile.from_json(item)
            self.files[file.id] = file
