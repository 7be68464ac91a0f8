"""What every API handler shares: the call context, access checks, range resolution and the
normalisations Google applies to what it echoes back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sheetcache.emulator._a1 import Bounds, parse_a1, split_sheet
from sheetcache.emulator._errors import ApiError, bad_request, not_found, permission_denied
from sheetcache.emulator._state import DriveFile, Sheet, Spreadsheet, Store

__all__ = [
    "Call",
    "Raw",
    "Resolved",
    "grid_bounds",
    "grid_limits",
    "normalize_colors",
    "normalize_grid_range",
    "open_spreadsheet",
    "resolve_range",
]


@dataclass
class Raw:
    """A non-JSON response body (CSV exports)."""

    data: bytes
    content_type: str


@dataclass
class Call:
    """One request as the handlers see it.

    Attributes:
        value_input_option: Set by write handlers so the request log can show it.
    """

    store: Store
    user: str
    method: str
    query: dict[str, list[str]]
    body: Any
    raw_body: bytes = b""
    value_input_option: str | None = None

    def param(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter."""
        values = self.query.get(name)
        return values[-1] if values else default

    def params(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def flag(self, name: str) -> bool:
        """A boolean query parameter (clients send ``true``, ``True`` or ``1``)."""
        return (self.param(name) or "").lower() in ("true", "1")


def open_spreadsheet(call: Call, spreadsheet_id: str, *, write: bool) -> DriveFile:
    """The Drive file of a spreadsheet the caller may use, or the 404/403 Google sends."""
    file = call.store.files.get(spreadsheet_id)
    if file is None or file.spreadsheet is None:
        raise not_found()
    if not file.can_read(call.user) or (write and not file.can_write(call.user)):
        raise permission_denied()
    return file


@dataclass(frozen=True)
class Resolved:
    """A range resolved against a spreadsheet.

    Attributes:
        text: The range as the client wrote it (Google echoes it in some errors).
        bounded: False when the client named only a start cell (``Sheet1!B3``), which a write
            may run past.
    """

    sheet: Sheet
    bounds: Bounds
    text: str
    bounded: bool

    def clip(self) -> tuple[int, int, int, int]:
        """``(r0, r1, c0, c1)`` cut to the grid; the start must lie inside it."""
        sheet = self.sheet
        if self.bounds.start_row >= sheet.row_count or self.bounds.start_col >= sheet.col_count:
            raise grid_limits(self.text, sheet)
        return self.bounds.clip(sheet.row_count, sheet.col_count)


def grid_limits(text: str, sheet: Sheet) -> ApiError:
    return bad_request(
        f"Range ({text}) exceeds grid limits. Max rows: {sheet.row_count}, "
        f"max columns: {sheet.col_count}"
    )


def resolve_range(spreadsheet: Spreadsheet, text: str) -> Resolved:
    """Resolve A1 text the way Sheets does: ``'Title'!A1:B2``, ``Title``, a named range, or
    cells of the first sheet.

    Raises:
        ApiError: ``Unable to parse range: ...`` for anything else.
    """
    unparsable = bad_request(f"Unable to parse range: {text}")
    try:
        title, a1 = split_sheet(text)
    except ValueError:
        raise unparsable from None
    if title is None:
        assert a1 is not None
        sheet = spreadsheet.sheet_by_title(a1)
        if sheet is not None:
            return Resolved(sheet, Bounds(0, 0, None, None), text, True)
        named = spreadsheet.named_range(a1)
        if named is not None:
            sheet, bounds = grid_bounds(spreadsheet, named.get("range") or {})
            return Resolved(sheet, bounds, text, True)
        if not spreadsheet.sheets:
            raise unparsable
        sheet = spreadsheet.sheets[0]
    else:
        found = spreadsheet.sheet_by_title(title)
        if found is None:
            raise unparsable
        sheet = found
        if a1 is None:
            return Resolved(sheet, Bounds(0, 0, None, None), text, True)
    try:
        bounds = parse_a1(a1)
    except ValueError:
        # 'Sheet1'!name: gspread prefixes named ranges with the sheet title.
        named = spreadsheet.named_range(a1)
        if named is None:
            raise unparsable from None
        sheet, bounds = grid_bounds(spreadsheet, named.get("range") or {})
        return Resolved(sheet, bounds, text, True)
    return Resolved(sheet, bounds, text, ":" in a1)


def grid_bounds(spreadsheet: Spreadsheet, grid_range: dict[str, Any]) -> tuple[Sheet, Bounds]:
    """A ``GridRange`` JSON as a sheet and bounds (missing starts are 0, missing ends open)."""
    if not isinstance(grid_range, dict):
        raise bad_request("Invalid GridRange")
    sheet_id = int(grid_range.get("sheetId") or 0)
    sheet = spreadsheet.sheet_by_id(sheet_id)
    if sheet is None:
        raise bad_request(f"No grid with id: {sheet_id}")
    r0 = int(grid_range.get("startRowIndex") or 0)
    c0 = int(grid_range.get("startColumnIndex") or 0)
    r1 = grid_range.get("endRowIndex")
    c1 = grid_range.get("endColumnIndex")
    if r0 < 0 or c0 < 0 or (r1 is not None and int(r1) < r0) or (c1 is not None and int(c1) < c0):
        raise bad_request("Invalid range: start index must not be after end index.")
    return sheet, Bounds(r0, c0, None if r1 is None else int(r1), None if c1 is None else int(c1))


def normalize_grid_range(grid_range: dict[str, Any]) -> dict[str, Any]:
    """A ``GridRange`` as Google echoes it: zero-valued fields (``sheetId: 0`` too) omitted."""
    return {k: v for k, v in grid_range.items() if v not in (0, None)}


def normalize_colors(value: Any) -> Any:
    """Echo colours the way Sheets does: zero components dropped, and every ``xColor`` paired
    with its ``xColorStyle`` (``{"rgbColor": ...}``) and back.
    """
    if isinstance(value, list):
        return [normalize_colors(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("red", "green", "blue", "alpha"):
            if item == 0:
                continue
            if isinstance(item, float) and item.is_integer():
                item = int(item)
        out[key] = normalize_colors(item)
    for key in list(out):
        if key in ("rgbColor", "themeColor"):
            continue
        if key == "color" or key.endswith("Color"):
            style_key = key + "Style"
            if style_key not in out and isinstance(out[key], dict):
                out[style_key] = {"rgbColor": copy.deepcopy(out[key])}
        elif key.endswith("ColorStyle") or key == "colorStyle":
            plain_key = key[: -len("Style")]
            style = out[key]
            if plain_key not in out and isinstance(style, dict) and "rgbColor" in style:
                out[plain_key] = copy.deepcopy(style["rgbColor"])
    return out
