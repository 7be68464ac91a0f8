"""Sheets v4 endpoints: ``spreadsheets.get/create``, the ``values`` family and ``copyTo``.

``spreadsheets.batchUpdate`` lives in :mod:`._batch`.
"""

from __future__ import annotations

from typing import Any

from sheetcache.emulator._a1 import col_letters, format_range
from sheetcache.emulator._common import (
    Call,
    Resolved,
    grid_limits,
    open_spreadsheet,
    resolve_range,
)
from sheetcache.emulator._errors import ApiError, bad_request, invalid_field
from sheetcache.emulator._fields import parse_mask
from sheetcache.emulator._metadata import sheet_properties, spreadsheet_json
from sheetcache.emulator._state import MAX_CELLS, Sheet, Spreadsheet, new_file_id
from sheetcache.emulator._values import (
    FORMATTED,
    FORMULA,
    MAX_CELL_CHARS,
    UNFORMATTED,
    parse_user_entered,
)

__all__ = [
    "CELL_TOO_LONG",
    "TOO_MANY_CELLS",
    "Block",
    "check_cells",
    "copy_to",
    "create_spreadsheet",
    "get_spreadsheet",
    "to_block",
    "update_response",
    "value_range",
    "values_append",
    "values_batch_clear",
    "values_batch_get",
    "values_batch_update",
    "values_clear",
    "values_get",
    "values_update",
]

CELL_TOO_LONG = (
    f"Your input contains more than the maximum of {MAX_CELL_CHARS} characters in a single cell."
)
TOO_MANY_CELLS = (
    f"This action would increase the number of cells in the workbook above the limit of "
    f"{MAX_CELLS} cells."
)

_RENDER_OPTIONS = (FORMATTED, UNFORMATTED, FORMULA)
_DATE_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")
_DIMENSIONS = ("ROWS", "COLUMNS", "DIMENSION_UNSPECIFIED")
_INPUT_OPTIONS = ("RAW", "USER_ENTERED")
_PROTO = "type.googleapis.com/google.apps.sheets.v4."


# --- reading -------------------------------------------------------------------------------


def _enum(
    call: Call, name: str, field: str, proto: str, allowed: tuple[str, ...], default: str
) -> str:
    value = call.param(name)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise invalid_field(field, _PROTO + proto, value)
    return value


def _render_options(call: Call, prefix: str = "") -> tuple[str, str]:
    value_name = "responseValueRenderOption" if prefix else "valueRenderOption"
    date_name = "responseDateTimeRenderOption" if prefix else "dateTimeRenderOption"
    option = _enum(
        call, value_name, _snake(value_name), "ValueRenderOption", _RENDER_OPTIONS, FORMATTED
    )
    date_option = _enum(
        call, date_name, _snake(date_name), "DateTimeRenderOption", _DATE_OPTIONS, "SERIAL_NUMBER"
    )
    return option, date_option


def _snake(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)


def value_range(resolved: Resolved, option: str, date_option: str, major: str) -> dict[str, Any]:
    """The ``ValueRange`` of a resolved range, trimmed the way Google trims it."""
    r0, r1, c0, c1 = resolved.clip()
    sheet = resolved.sheet
    values = sheet.read(r0, r1, c0, c1, option, date_option, columns=major == "COLUMNS")
    body: dict[str, Any] = {
        "range": format_range(sheet.title, r0, r1, c0, c1),
        "majorDimension": "COLUMNS" if major == "COLUMNS" else "ROWS",
    }
    if values:
        body["values"] = values
    return body


def values_get(call: Call, spreadsheet_id: str, range_text: str) -> dict[str, Any]:
    spreadsheet = open_spreadsheet(call, spreadsheet_id, write=False).spreadsheet
    assert spreadsheet is not None
    option, date_option = _render_options(call)
    major = _enum(call, "majorDimension", "major_dimension", "Dimension", _DIMENSIONS, "ROWS")
    return value_range(resolve_range(spreadsheet, range_text), option, date_option, major)


def values_batch_get(call: Call, spreadsheet_id: str) -> dict[str, Any]:
    spreadsheet = open_spreadsheet(call, spreadsheet_id, write=False).spreadsheet
    assert spreadsheet is not None
    option, date_option = _render_options(call)
    major = _enum(call, "majorDimension", "major_dimension", "Dimension", _DIMENSIONS, "ROWS")
    resolved = [resolve_range(spreadsheet, text) for text in call.params("ranges")]
    body: dict[str, Any] = {"spreadsheetId": spreadsheet.id}
    if resolved:
        body["valueRanges"] = [value_range(r, option, date_option, major) for r in resolved]
    return body


def get_spreadsheet(call: Call, spreadsheet_id: str) -> dict[str, Any]:
    spreadsheet = open_spreadsheet(call, spreadsheet_id, write=False).spreadsheet
    assert spreadsheet is not None
    fields = call.param("fields")
    try:
        mask = parse_mask(fields) if fields else None
    except ValueError:
        raise bad_request(f"Invalid field selection {fields}") from None
    ranges = [resolve_range(spreadsheet, text) for text in call.params("ranges")]
    return spreadsheet_json(
        spreadsheet,
        ranges=ranges or None,
        include_grid_data=call.flag("includeGridData"),
        mask=mask,
    )


# --- writing -------------------------------------------------------------------------------


class Block:
    """Validated values of one write: stored cells plus what the response reports."""

    __slots__ = ("all_text", "cells", "cols", "matrix", "rows", "updated_cols", "updated_rows")

    def __init__(self, matrix: list[list[Any]], all_text: bool, has_none: bool) -> None:
        self.matrix = matrix
        self.all_text = all_text
        self.rows = len(matrix)
        self.cols = max((len(row) for row in matrix), default=0)
        if not has_none:
            self.cells = sum(len(row) for row in matrix)
            self.updated_rows = sum(1 for row in matrix if row)
            self.updated_cols = self.cols
        else:
            filled_cols: set[int] = set()
            self.cells = 0
            self.updated_rows = 0
            for row in matrix:
                hit = [j for j, value in enumerate(row) if value is not None]
                if hit:
                    self.updated_rows += 1
                    self.cells += len(hit)
                    filled_cols.update(hit)
            self.updated_cols = len(filled_cols)


def _input_option(call: Call, value: str | None, field: str = "value_input_option") -> str:
    if value is None or value == "":
        raise bad_request("'valueInputOption' is required but not specified")
    if value not in _INPUT_OPTIONS:
        if value == "INPUT_VALUE_OPTION_UNSPECIFIED":
            raise bad_request("Invalid valueInputOption: INPUT_VALUE_OPTION_UNSPECIFIED")
        raise invalid_field(field, _PROTO + "ValueInputOption", value)
    call.value_input_option = value
    return value


def to_block(data: Any, input_option: str, where: str, error_prefix: str = "") -> Block:
    """Validate a ``ValueRange`` body and turn its values into stored cells.

    Raises:
        ApiError: the 400s Google sends for malformed values and over-long cells.
    """
    if not isinstance(data, dict):
        raise invalid_field(where, "type.googleapis.com/google.apps.sheets.v4.ValueRange", data)
    values = data.get("values")
    if values is None:
        values = []
    if not isinstance(values, list):
        raise invalid_field(
            f"{where}.values", "type.googleapis.com/google.protobuf.ListValue", values
        )
    for i, row in enumerate(values):
        if not isinstance(row, list):
            raise invalid_field(
                f"{where}.values[{i}]", "type.googleapis.com/google.protobuf.ListValue", row
            )
    major = data.get("majorDimension") or "ROWS"
    if major not in _DIMENSIONS:
        raise invalid_field(f"{where}.major_dimension", _PROTO + "Dimension", major)
    if major == "COLUMNS":
        height = max((len(col) for col in values), default=0)
        values = [[col[i] if i < len(col) else None for col in values] for i in range(height)]
    too_long = bad_request(error_prefix + CELL_TOO_LONG)
    all_text = True
    has_none = False
    matrix: list[list[Any]] = []
    raw = input_option == "RAW"
    for i, row in enumerate(values):
        out = row if raw else []
        for j, value in enumerate(row):
            kind = type(value)
            if kind is str:
                if len(value) > MAX_CELL_CHARS:
                    raise too_long
            elif value is None:
                has_none = True
            elif kind is int or kind is float or kind is bool:
                all_text = False
            else:
                raise bad_request(f"{error_prefix}Invalid values[{i}][{j}]: {_describe(value)}")
            if not raw:
                cell = parse_user_entered(value)
                if cell is not None and cell != "":
                    all_text = False
                out.append(cell)
        matrix.append(out)
    return Block(matrix, all_text, has_none)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "struct_value {...}"
    if isinstance(value, list):
        return "list_value {...}"
    return repr(value)


def check_cells(
    spreadsheet: Spreadsheet, sheet: Sheet, rows: int, cols: int, prefix: str = ""
) -> None:
    """Refuse a grid size that would take the spreadsheet over 10,000,000 cells."""
    total = spreadsheet.cell_count - sheet.cell_count + rows * cols
    if total > MAX_CELLS:
        raise bad_request(prefix + TOO_MANY_CELLS)


def update_response(
    spreadsheet: Spreadsheet,
    sheet: Sheet,
    r0: int,
    c0: int,
    block: Block,
    include_values: bool,
    option: str,
    date_option: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {"spreadsheetId": spreadsheet.id}
    if block.rows == 0 or block.cols == 0:
        body["updatedRange"] = format_range(sheet.title, r0, r0 + 1, c0, c0 + 1)
        return body
    r1, c1 = r0 + block.rows, c0 + block.cols
    body["updatedRange"] = format_range(sheet.title, r0, r1, c0, c1)
    body["updatedRows"] = block.updated_rows
    body["updatedColumns"] = block.updated_cols
    body["updatedCells"] = block.cells
    if include_values:
        values = sheet.read(r0, r1, c0, c1, option, date_option)
        data: dict[str, Any] = {"range": body["updatedRange"], "majorDimension": "ROWS"}
        if values:
            data["values"] = [row[:] for row in values]
        body["updatedData"] = data
    return body


def _place(resolved: Resolved, block: Block, prefix: str = "") -> tuple[int, int]:
    """Where a ``values.update`` writes, after Google's range and grid checks."""
    sheet = resolved.sheet
    bounds = resolved.bounds
    r0, c0 = bounds.start_row, bounds.start_col
    if resolved.bounded:
        if bounds.end_row is not None and r0 + block.rows > bounds.end_row:
            raise bad_request(
                f"{prefix}Requested writing within range [{resolved.text}], but tried writing "
                f"to row [{bounds.end_row + 1}]"
            )
        if bounds.end_col is not None and c0 + block.cols > bounds.end_col:
            raise bad_request(
                f"{prefix}Requested writing within range [{resolved.text}], but tried writing "
                f"to column [{col_letters(bounds.end_col)}]"
            )
    if (
        r0 >= sheet.row_count
        or c0 >= sheet.col_count
        or r0 + block.rows > sheet.row_count
        or c0 + block.cols > sheet.col_count
    ):
        raise grid_limits(resolved.text, sheet)
    return r0, c0


def values_update(call: Call, spreadsheet_id: str, range_text: str) -> dict[str, Any]:
    file = open_spreadsheet(call, spreadsheet_id, write=True)
    spreadsheet = file.spreadsheet
    assert spreadsheet is not None
    option = _input_option(call, call.param("valueInputOption"))
    render_option, date_option = _render_options(call, "response")
    block = to_block(call.body if call.body is not None else {}, option, "data")
    resolved = resolve_range(spreadsheet, range_text)
    r0, c0 = _place(resolved, block)
    resolved.sheet.write(r0, c0, block.matrix, block.all_text)
    call.store.changed(file)
    return update_response(
        spreadsheet,
        resolved.sheet,
        r0,
        c0,
        block,
        call.flag("includeValuesInResponse"),
        render_option,
        date_option,
    )


def values_batch_update(call: Call, spreadsheet_id: str) -> dict[str, Any]:
    file = open_spreadsheet(call, spreadsheet_id, write=True)
    spreadsheet = file.spreadsheet
    assert spreadsheet is not None
    body = call.body if isinstance(call.body, dict) else {}
    option = _input_option(call, body.get("valueInputOption"))
    include = bool(body.get("includeValuesInResponse"))
    render_option = body.get("responseValueRenderOption") or FORMATTED
    date_option = body.get("responseDateTimeRenderOption") or "SERIAL_NUMBER"
    data = body.get("data") or []
    if not isinstance(data, list):
        raise invalid_field("data", "type.googleapis.com/google.apps.sheets.v4.ValueRange", data)
    planned = []
    # Validate everything before writing anything: the request applies whole or not at all.
    for k, item in enumerate(data):
        block = to_block(item, option, f"data[{k}]", f"Invalid data[{k}]: ")
        range_text = item.get("range")
        if not isinstance(range_text, str) or not range_text:
            raise bad_request(f"Invalid data[{k}]: range is required")
        resolved = resolve_range(spreadsheet, range_text)
        planned.append((resolved, block, _place(resolved, block)))
    responses = []
    rows_hit: set[tuple[int, int]] = set()
    cols_hit: set[tuple[int, int]] = set()
    sheets_hit: set[int] = set()
    total_cells = 0
    for resolved, block, (r0, c0) in planned:
        sheet = resolved.sheet
        sheet.write(r0, c0, block.matrix, block.all_text)
        responses.append(
            update_response(spreadsheet, sheet, r0, c0, block, include, render_option, date_option)
        )
        if block.cells:
            sheets_hit.add(sheet.sheet_id)
            total_cells += block.cells
            for i, row in enumerate(block.matrix):
                if any(value is not None for value in row):
                    rows_hit.add((sheet.sheet_id, r0 + i))
                for j, value in enumerate(row):
                    if value is not None:
                        cols_hit.add((sheet.sheet_id, c0 + j))
    if planned:
        call.store.changed(file)
    out: dict[str, Any] = {"spreadsheetId": spreadsheet.id}
    if responses:
        out["totalUpdatedRows"] = len(rows_hit)
        out["totalUpdatedColumns"] = len(cols_hit)
        out["totalUpdatedCells"] = total_cells
        out["totalUpdatedSheets"] = len(sheets_hit)
        out["responses"] = responses
    return out


def values_append(call: Call, spreadsheet_id: str, range_text: str) -> dict[str, Any]:
    file = open_spreadsheet(call, spreadsheet_id, write=True)
    spreadsheet = file.spreadsheet
    assert spreadsheet is not None
    option = _input_option(call, call.param("valueInputOption"))
    insert = call.param("insertDataOption") or "OVERWRITE"
    if insert not in ("OVERWRITE", "INSERT_ROWS"):
        raise invalid_field("insert_data_option", _PROTO + "InsertDataOption", insert)
    render_option, date_option = _render_options(call, "response")
    block = to_block(call.body if call.body is not None else {}, option, "data")
    resolved = resolve_range(spreadsheet, range_text)
    sheet = resolved.sheet
    r0, r1, c0, c1 = resolved.clip()
    table = sheet.find_table(r0, r1, c0, c1)
    out: dict[str, Any] = {"spreadsheetId": spreadsheet.id}
    if table is not None:
        top, bottom, left, right = table
        out["tableRange"] = format_range(sheet.title, top, bottom, left, right)
        row, col = bottom, left
    else:
        row, col = r0, c0
    if block.rows and block.cols:
        # Appending past the end of the grid grows it, in both modes (Google's note on
        # OVERWRITE); INSERT_ROWS always adds the rows it writes.
        rows_needed = max(sheet.row_count, row + block.rows)
        if insert == "INSERT_ROWS":
            rows_needed = max(sheet.row_count + block.rows, row + block.rows)
        cols_needed = max(sheet.col_count, col + block.cols)
        check_cells(spreadsheet, sheet, rows_needed, cols_needed)
        if insert == "INSERT_ROWS" and row < sheet.row_count:
            sheet.insert("ROWS", row, block.rows)
        sheet.set_size(max(sheet.row_count, rows_needed), max(sheet.col_count, cols_needed))
        sheet.write(row, col, block.matrix, block.all_text)
        call.store.changed(file)
    out["updates"] = update_response(
        spreadsheet,
        sheet,
        row,
        col,
        block,
        call.flag("includeValuesInResponse"),
        render_option,
        date_option,
    )
    return out


def _clear(resolved: Resolved) -> str:
    r0, r1, c0, c1 = resolved.clip()
    resolved.sheet.clear(r0, r1, c0, c1)
    return format_range(resolved.sheet.title, r0, r1, c0, c1)


def values_clear(call: Call, spreadsheet_id: str, range_text: str) -> dict[str, Any]:
    file = open_spreadsheet(call, spreadsheet_id, write=True)
    spreadsheet = file.spreadsheet
    assert spreadsheet is not None
    cleared = _clear(resolve_range(spreadsheet, range_text))
    call.store.changed(file)
    return {"spreadsheetId": spreadsheet.id, "clearedRange": cleared}


def values_batch_clear(call: Call, spreadsheet_id: str) -> dict[str, Any]:
    file = open_spreadsheet(call, spreadsheet_id, write=True)
    spreadsheet = file.spreadsheet
    assert spreadsheet is not None
    body = call.body if isinstance(call.body, dict) else {}
    ranges = body.get("ranges") or []
    if not isinstance(ranges, list):
        raise invalid_field("ranges", "type.googleapis.com/google.protobuf.ListValue", ranges)
    resolved = [resolve_range(spreadsheet, str(text)) for text in ranges]
    for item in resolved:
        item.clip()  # every range is checked before any is cleared
    cleared = [_clear(item) for item in resolved]
    call.store.changed(file)
    out: dict[str, Any] = {"spreadsheetId": spreadsheet.id}
    if cleared:
        out["clearedRanges"] = cleared
    return out


# --- spreadsheets.create and sheets.copyTo -------------------------------------------------


def create_spreadsheet(call: Call) -> dict[str, Any]:
    """``POST /v4/spreadsheets``: a spreadsheet built from the request's properties and sheets."""
    body = call.body if isinstance(call.body, dict) else {}
    props = body.get("properties") or {}
    title = props.get("title") or "Untitled spreadsheet"
    file = call.store.create_spreadsheet(title, owner=call.user, file_id=new_file_id())
    spreadsheet = file.spreadsheet
    assert spreadsheet is not None
    for key in ("locale", "timeZone", "autoRecalc"):
        if props.get(key):
            spreadsheet.props[key] = props[key]
    sheets = body.get("sheets") or []
    if sheets:
        spreadsheet.sheets = []
        for i, item in enumerate(sheets):
            sheet_props = (item or {}).get("properties") or {}
            grid = sheet_props.get("gridProperties") or {}
            sheet = spreadsheet.add_sheet(
                sheet_props.get("title") or f"Sheet{i + 1}",
                int(grid.get("rowCount") or 1000),
                int(grid.get("columnCount") or 26),
                sheet_id=sheet_props.get("sheetId", 0 if i == 0 else None),
            )
            check_cells(spreadsheet, sheet, sheet.row_count, sheet.col_count)
    return spreadsheet_json(spreadsheet)


def copy_to(call: Call, spreadsheet_id: str, sheet_id: str) -> dict[str, Any]:
    """``sheets.copyTo``: copy one sheet into another spreadsheet the caller can write."""
    source = open_spreadsheet(call, spreadsheet_id, write=False).spreadsheet
    assert source is not None
    body = call.body if isinstance(call.body, dict) else {}
    destination_id = body.get("destinationSpreadsheetId")
    if not destination_id:
        raise bad_request("destinationSpreadsheetId is required")
    try:
        sheet = source.sheet_by_id(int(sheet_id))
    except ValueError:
        sheet = None
    if sheet is None:
        raise ApiError(404, f"No grid with id: {sheet_id}")
    target_file = open_spreadsheet(call, str(destination_id), write=True)
    target = target_file.spreadsheet
    assert target is not None
    copy = sheet.clone()
    copy.props["sheetId"] = target.new_sheet_id() if target is not source else source.new_sheet_id()
    title = f"Copy of {sheet.title}"
    n = 2
    while target.sheet_by_title(title) is not None:
        title = f"Copy of {sheet.title} {n}"
        n += 1
    copy.props["title"] = title
    if target.cell_count + copy.cell_count > MAX_CELLS:
        raise bad_request(TOO_MANY_CELLS)
    target.insert_sheet(copy, None)
    call.store.changed(target_file)
    return sheet_properties(copy)
