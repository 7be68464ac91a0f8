"""``spreadsheets.get``: the Spreadsheet JSON, with grid data when asked for."""

from __future__ import annotations

from typing import Any

from sheetcache.emulator._common import (
    Resolved,
    normalize_colors,
    normalize_grid_range,
)
from sheetcache.emulator._fields import Mask, apply_mask, selects
from sheetcache.emulator._state import DEFAULT_COL_PX, DEFAULT_ROW_PX, Sheet, Spreadsheet
from sheetcache.emulator._values import FORMATTED, effective_value, render, user_entered_value

__all__ = [
    "cell_data",
    "grid_data",
    "sheet_json",
    "sheet_properties",
    "spreadsheet_json",
]


def spreadsheet_json(
    spreadsheet: Spreadsheet,
    *,
    ranges: list[Resolved] | None = None,
    include_grid_data: bool = False,
    mask: Mask | None = None,
) -> dict[str, Any]:
    """The Spreadsheet resource as ``spreadsheets.get`` returns it.

    Args:
        spreadsheet: The stored spreadsheet to describe.
        ranges: Limit the sheets (and grid data) to these ranges, as the ``ranges`` parameter.
        include_grid_data: Include cell data (ignored when a field mask is given: then the
            mask decides, as Google documents).
        mask: The parsed ``fields`` parameter.
    """
    want_data = selects(mask, "sheets", "data") if mask is not None else include_grid_data
    if ranges:
        by_sheet: dict[int, list[Resolved]] = {}
        for resolved in ranges:
            by_sheet.setdefault(id(resolved.sheet), []).append(resolved)
        sheets = []
        for sheet in spreadsheet.sheets:
            if id(sheet) in by_sheet:
                data = None
                if want_data:
                    data = [grid_data(sheet, *_clip(resolved)) for resolved in by_sheet[id(sheet)]]
                sheets.append(sheet_json(sheet, data))
    else:
        sheets = [
            sheet_json(
                sheet,
                [grid_data(sheet, 0, sheet.row_count, 0, sheet.col_count)] if want_data else None,
            )
            for sheet in spreadsheet.sheets
        ]
    body: dict[str, Any] = {
        "spreadsheetId": spreadsheet.id,
        "properties": spreadsheet.props,
        "sheets": sheets,
    }
    if spreadsheet.named_ranges:
        body["namedRanges"] = [
            {**named, "range": normalize_grid_range(named.get("range", {}))}
            for named in spreadsheet.named_ranges
        ]
    body["spreadsheetUrl"] = f"https://docs.google.com/spreadsheets/d/{spreadsheet.id}/edit"
    if mask is not None:
        body = apply_mask(body, mask)
    return body


def _clip(resolved: Resolved) -> tuple[int, int, int, int]:
    return resolved.bounds.clip(resolved.sheet.row_count, resolved.sheet.col_count)


def sheet_properties(sheet: Sheet) -> dict[str, Any]:
    """``SheetProperties`` as Google echoes them (defaults omitted, colours paired)."""
    return normalize_colors(sheet.props)  # type: ignore[no-any-return]


def sheet_json(sheet: Sheet, data: list[dict[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"properties": sheet_properties(sheet)}
    if data is not None:
        out["data"] = data
    if sheet.merges:
        out["merges"] = [normalize_grid_range(m) for m in sheet.merges]
    if sheet.basic_filter:
        out["basicFilter"] = sheet.basic_filter
    if sheet.protected:
        out["protectedRanges"] = sheet.protected
    if sheet.groups.get("ROWS"):
        out["rowGroups"] = sheet.groups["ROWS"]
    if sheet.groups.get("COLUMNS"):
        out["columnGroups"] = sheet.groups["COLUMNS"]
    return out


def grid_data(sheet: Sheet, r0: int, r1: int, c0: int, c1: int) -> dict[str, Any]:
    """``GridData`` for a rectangle: row data up to the last row holding anything."""
    data: dict[str, Any] = {}
    if r0:
        data["startRow"] = r0
    if c0:
        data["startColumn"] = c0
    last = min(r1, _content_rows(sheet, r1))
    row_data = []
    for r in range(r0, last):
        values = []
        for c in range(c0, min(c1, _content_cols(sheet, r, c1))):
            values.append(cell_data(sheet, r, c))
        while values and not values[-1]:
            values.pop()
        row_data.append({"values": values} if values else {})
    while row_data and not row_data[-1]:
        row_data.pop()
    if row_data:
        data["rowData"] = row_data
    data["rowMetadata"] = [_dimension(sheet.row_meta.get(r), DEFAULT_ROW_PX) for r in range(r0, r1)]
    data["columnMetadata"] = [
        _dimension(sheet.col_meta.get(c), DEFAULT_COL_PX) for c in range(c0, c1)
    ]
    return data


def _content_rows(sheet: Sheet, limit: int) -> int:
    last = len(sheet.rows)
    if sheet.notes:
        last = max(last, max(r for r, _ in sheet.notes) + 1)
    for layer in sheet.formats + sheet.validations:
        end = limit if layer[1] is None else layer[1]
        last = max(last, end)
    return last


def _content_cols(sheet: Sheet, r: int, limit: int) -> int:
    last = len(sheet.rows[r]) if r < len(sheet.rows) else 0
    for nr, nc in sheet.notes:
        if nr == r:
            last = max(last, nc + 1)
    for layer in sheet.formats + sheet.validations:
        if layer[0] <= r and (layer[1] is None or r < layer[1]):
            last = max(last, limit if layer[3] is None else layer[3])
    return last


def cell_data(sheet: Sheet, r: int, c: int) -> dict[str, Any]:
    """``CellData`` of one cell: values, the emulator's formatting and notes."""
    out: dict[str, Any] = {}
    cell = sheet.cell(r, c)
    entered = user_entered_value(cell)
    if entered is not None:
        out["userEnteredValue"] = entered
        effective = effective_value(cell)
        if effective is not None:
            out["effectiveValue"] = effective
        out["formattedValue"] = render(cell, FORMATTED)
    fmt = sheet.cell_format(r, c)
    if fmt:
        out["userEnteredFormat"] = normalize_colors(fmt)
    note = sheet.notes.get((r, c))
    if note:
        out["note"] = note
    rule = sheet.cell_validation(r, c)
    if rule:
        out["dataValidation"] = rule
    return out


def _dimension(meta: dict[str, Any] | None, default_px: int) -> dict[str, Any]:
    out: dict[str, Any] = {"pixelSize": default_px}
    if meta:
        out.update(meta)
    return out
