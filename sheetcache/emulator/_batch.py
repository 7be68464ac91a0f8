"""``spreadsheets.batchUpdate``: structural, value and formatting requests, all or nothing.

The batch runs against a clone of the spreadsheet (sheets are copied on first write, see
``Spreadsheet.writable``) that replaces the original only when every request succeeded, which
is Google's contract: "if any request is not valid, then the entire request will fail and
nothing will be applied".

Requests fall in three groups:

* applied: sheets, dimensions, properties, values (``updateCells``, ``repeatCell``,
  ``sortRange``, ``copyPaste``...), merges, named and protected ranges, filters, formats and
  validation rules (kept so ``spreadsheets.get`` reports them; validation is not enforced);
* accepted and recorded only (borders, conditional formats, banding, charts...): answered
  like Google does, with no other effect;
* not implemented, when faking them would silently lose data (``deleteRange``, ``pasteData``...):
  answered 501 so a test notices.

Every committed request is appended to ``Spreadsheet.batch_log``.
"""

from __future__ import annotations

import copy
import secrets
import string
from collections.abc import Callable
from typing import Any

from sheetcache.emulator._common import (
    Call,
    grid_bounds,
    normalize_grid_range,
    open_spreadsheet,
)
from sheetcache.emulator._errors import ApiError, bad_request, invalid_field, unknown_field
from sheetcache.emulator._fields import Mask, merge_masked, parse_mask
from sheetcache.emulator._metadata import sheet_properties, spreadsheet_json
from sheetcache.emulator._sheets_api import TOO_MANY_CELLS
from sheetcache.emulator._state import (
    DEFAULT_COLS,
    DEFAULT_ROWS,
    MAX_CELLS,
    Sheet,
    Spreadsheet,
    cut_span,
    shift_span,
)
from sheetcache.emulator._values import (
    FORMATTED,
    Entered,
    cell_from_extended_value,
    render,
    text_width_px,
)

__all__ = [
    "FORMATTING_KINDS",
    "batch_update",
]

#: Request kinds that only change how cells look; ``SheetsEmulator.recorded_formatting``
#: returns these.
FORMATTING_KINDS = frozenset(
    {
        "repeatCell",
        "updateCells",
        "setDataValidation",
        "setBasicFilter",
        "clearBasicFilter",
        "updateDimensionProperties",
        "autoResizeDimensions",
        "updateBorders",
        "mergeCells",
        "unmergeCells",
        "addConditionalFormatRule",
        "updateConditionalFormatRule",
        "deleteConditionalFormatRule",
        "addBanding",
        "updateBanding",
        "deleteBanding",
        "addFilterView",
        "updateFilterView",
        "deleteFilterView",
    }
)

Handler = Callable[[Spreadsheet, dict[str, Any]], dict[str, Any]]


def batch_update(call: Call, spreadsheet_id: str) -> dict[str, Any]:
    file = open_spreadsheet(call, spreadsheet_id, write=True)
    spreadsheet = file.spreadsheet
    assert spreadsheet is not None
    body = call.body if isinstance(call.body, dict) else {}
    requests = body.get("requests")
    if requests is not None and not isinstance(requests, list):
        raise invalid_field("requests", "type.googleapis.com/google.protobuf.ListValue", requests)
    if not requests:
        raise bad_request("Must specify at least one request.")
    txn = spreadsheet.clone()
    replies = []
    for i, request in enumerate(requests):
        kinds = (
            [k for k, v in request.items() if v is not None] if isinstance(request, dict) else []
        )
        if len(kinds) != 1:
            raise bad_request(f"Invalid requests[{i}]: No request set.")
        kind = kinds[0]
        params = request[kind]
        if not isinstance(params, dict):
            raise invalid_field(
                f"requests[{i}].{kind}", "type.googleapis.com/google.apps.sheets.v4.Request", params
            )
        handler = _HANDLERS.get(kind)
        if handler is None:
            if kind in _RECORDED:
                replies.append(_RECORDED[kind](params))
                continue
            if kind in _NOT_IMPLEMENTED:
                raise ApiError(
                    501,
                    f"The sheetcache emulator does not implement the {kind} request "
                    "(Google would apply it).",
                )
            raise unknown_field(kind, f"requests[{i}]")
        try:
            replies.append(handler(txn, params))
        except ApiError as exc:
            if exc.code != 400:
                raise
            raise ApiError(
                400, f"Invalid requests[{i}].{kind}: {exc.message}", details=exc.details
            ) from None
    spreadsheet.adopt(txn)
    spreadsheet.batch_log.extend(copy.deepcopy(requests))
    file.name = spreadsheet.title
    call.store.changed(file)
    out: dict[str, Any] = {"spreadsheetId": spreadsheet.id, "replies": replies}
    if body.get("includeSpreadsheetInResponse"):
        out["updatedSpreadsheet"] = spreadsheet_json(
            spreadsheet, include_grid_data=bool(body.get("responseIncludeGridData"))
        )
    return out


# --- helpers -------------------------------------------------------------------------------


def _sheet(txn: Spreadsheet, sheet_id: Any) -> Sheet:
    sheet = txn.sheet_by_id(int(sheet_id or 0))
    if sheet is None:
        raise bad_request(f"No grid with id: {sheet_id or 0}")
    return txn.writable(sheet)


def _grid(txn: Spreadsheet, grid_range: Any) -> tuple[Sheet, int, int, int, int]:
    """A ``GridRange`` on a writable sheet, cut to the grid."""
    sheet, bounds = grid_bounds(txn, grid_range or {})
    sheet = txn.writable(sheet)
    r0, r1, c0, c1 = bounds.clip(sheet.row_count, sheet.col_count)
    return sheet, r0, max(r0, r1), c0, max(c0, c1)


def _dimension_range(txn: Spreadsheet, dr: Any) -> tuple[Sheet, str, int, int]:
    if not isinstance(dr, dict):
        raise bad_request("A DimensionRange is required.")
    sheet = _sheet(txn, dr.get("sheetId"))
    dimension = dr.get("dimension")
    if dimension not in ("ROWS", "COLUMNS"):
        raise bad_request("Invalid dimension, must be ROWS or COLUMNS.")
    count = sheet.row_count if dimension == "ROWS" else sheet.col_count
    start = int(dr.get("startIndex") or 0)
    end = dr.get("endIndex")
    end = count if end is None else int(end)
    if start < 0 or end < start:
        raise bad_request("Invalid dimension range: start index must not be after end index.")
    return sheet, dimension, start, end


def _check_cells(txn: Spreadsheet, sheet: Sheet | None, rows: int, cols: int) -> None:
    total = txn.cell_count - (sheet.cell_count if sheet is not None else 0) + rows * cols
    if total > MAX_CELLS:
        raise bad_request(TOO_MANY_CELLS)


def _mask(fields: Any) -> Mask:
    if not fields or not isinstance(fields, str):
        raise bad_request("At least one field must be specified in 'fields'.")
    try:
        return parse_mask(fields)
    except ValueError:
        raise bad_request(f"Invalid field mask: {fields}") from None


def _unique_title(txn: Spreadsheet, title: str, ignore: Sheet | None = None) -> None:
    if not title:
        raise bad_request("Sheet title cannot be empty.")
    for sheet in txn.sheets:
        if sheet is not ignore and sheet.title.lower() == title.lower():
            raise bad_request(
                f'A sheet with the name "{title}" already exists. Please enter another name.'
            )


def _drop_defaults(props: dict[str, Any]) -> dict[str, Any]:
    # proto3 JSON omits zero/false values: a frozen count set back to 0 disappears.
    grid = props.get("gridProperties")
    if isinstance(grid, dict):
        for key in ("frozenRowCount", "frozenColumnCount", "hideGridlines"):
            if not grid.get(key):
                grid.pop(key, None)
        for key in ("rowGroupControlAfter", "columnGroupControlAfter"):
            if grid.get(key) is False:
                grid.pop(key)
    for key in ("hidden", "rightToLeft"):
        if not props.get(key):
            props.pop(key, None)
    return props


def _shift_named(txn: Spreadsheet, sheet_id: int, dimension: str, move: Callable[..., Any]) -> None:
    start_key, end_key = (
        ("startRowIndex", "endRowIndex")
        if dimension == "ROWS"
        else ("startColumnIndex", "endColumnIndex")
    )
    kept = []
    for named in txn.named_ranges:
        rng = named.get("range") or {}
        if int(rng.get("sheetId") or 0) == sheet_id:
            span = move(int(rng.get(start_key) or 0), rng.get(end_key))
            if span is None:
                continue
            rng[start_key], end = span
            if end is not None:
                rng[end_key] = end
            named["range"] = normalize_grid_range(rng)
        kept.append(named)
    txn.named_ranges = kept


def _clean(value: Any) -> Any:
    """A deep copy without ``null`` members: Google never echoes unset fields."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _random_id(length: int = 12) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


# --- sheets --------------------------------------------------------------------------------


def _add_sheet(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    props = _clean(p.get("properties") or {})
    title = props.get("title") or txn.free_title("Sheet")
    _unique_title(txn, title)
    sheet_id = props.get("sheetId")
    if sheet_id is not None:
        sheet_id = int(sheet_id)
        if sheet_id < 0 or txn.sheet_by_id(sheet_id) is not None:
            raise bad_request(
                f"A sheet with the id {sheet_id} already exists. Please enter another id."
            )
    else:
        sheet_id = txn.new_sheet_id()
    grid = dict(props.get("gridProperties") or {})
    grid["rowCount"] = int(grid.get("rowCount") or DEFAULT_ROWS)
    grid["columnCount"] = int(grid.get("columnCount") or DEFAULT_COLS)
    _check_cells(txn, None, grid["rowCount"], grid["columnCount"])
    new_props: dict[str, Any] = {
        "sheetId": sheet_id,
        "title": title,
        "index": 0,
        "sheetType": props.get("sheetType") or "GRID",
        "gridProperties": grid,
    }
    for key in ("hidden", "tabColor", "tabColorStyle", "rightToLeft"):
        if props.get(key) is not None:
            new_props[key] = props[key]
    sheet = Sheet(_drop_defaults(new_props))
    txn.insert_sheet(sheet, props.get("index"))
    txn.writable(sheet)
    return {"addSheet": {"properties": sheet_properties(sheet)}}


def _delete_sheet(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet_id = int(p.get("sheetId") or 0)
    sheet = txn.sheet_by_id(sheet_id)
    if sheet is None:
        raise bad_request(f"No grid with id: {sheet_id}")
    if len(txn.sheets) == 1:
        raise bad_request("You can't remove all the sheets in a document.")
    txn.sheets.remove(sheet)
    txn.renumber()
    txn.named_ranges = [
        named
        for named in txn.named_ranges
        if int((named.get("range") or {}).get("sheetId") or 0) != sheet_id
    ]
    return {}


def _update_sheet_properties(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    props = _clean(p.get("properties") or {})
    mask = _mask(p.get("fields"))
    sheet = _sheet(txn, props.get("sheetId"))
    merged = copy.deepcopy(sheet.props)
    merge_masked(merged, props, mask)
    merged["sheetId"] = sheet.sheet_id
    merged["sheetType"] = sheet.props.get("sheetType", "GRID")
    if merged.get("title") != sheet.title:
        _unique_title(txn, str(merged.get("title") or ""), ignore=sheet)
    grid = merged.setdefault("gridProperties", {})
    rows = int(grid.get("rowCount") or 0)
    cols = int(grid.get("columnCount") or 0)
    if rows < 1 or cols < 1:
        raise bad_request("A sheet must have at least one row and one column.")
    if int(grid.get("frozenRowCount") or 0) >= rows:
        raise bad_request("You can't freeze all visible rows on the sheet.")
    if int(grid.get("frozenColumnCount") or 0) >= cols:
        raise bad_request("You can't freeze all visible columns on the sheet.")
    _check_cells(txn, sheet, rows, cols)
    new_index = merged.get("index")
    merged["index"] = sheet.props.get("index", 0)
    sheet.props = _drop_defaults(merged)
    sheet.set_size(rows, cols)
    if "index" in mask and new_index is not None:
        old = txn.sheets.index(sheet)
        target = int(new_index)
        # Google counts the destination in "before the move" positions.
        if target > old:
            target -= 1
        txn.sheets.remove(sheet)
        txn.sheets.insert(max(0, min(target, len(txn.sheets))), sheet)
        txn.renumber()
    return {}


def _update_spreadsheet_properties(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    mask = _mask(p.get("fields"))
    merged = copy.deepcopy(txn.props)
    merge_masked(merged, _clean(p.get("properties") or {}), mask)
    if not merged.get("title"):
        raise bad_request("The spreadsheet title cannot be empty.")
    txn.props = merged
    return {}


def _duplicate_sheet(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    source = txn.sheet_by_id(int(p.get("sourceSheetId") or 0))
    if source is None:
        raise bad_request(f"No grid with id: {p.get('sourceSheetId') or 0}")
    new_id = p.get("newSheetId")
    if new_id is not None:
        new_id = int(new_id)
        if new_id < 0 or txn.sheet_by_id(new_id) is not None:
            raise bad_request(
                f"A sheet with the id {new_id} already exists. Please enter another id."
            )
    else:
        new_id = txn.new_sheet_id()
    title = p.get("newSheetName")
    if title:
        _unique_title(txn, title)
    else:
        title = f"Copy of {source.title}"
        n = 2
        while any(s.title.lower() == title.lower() for s in txn.sheets):
            title = f"Copy of {source.title} {n}"
            n += 1
    _check_cells(txn, None, source.row_count, source.col_count)
    copy_sheet = source.clone()
    copy_sheet.props["sheetId"] = new_id
    copy_sheet.props["title"] = title
    index = p.get("insertSheetIndex")
    txn.insert_sheet(copy_sheet, txn.sheets.index(source) + 1 if index is None else int(index))
    txn.writable(copy_sheet)
    return {"duplicateSheet": {"properties": sheet_properties(copy_sheet)}}


# --- dimensions ----------------------------------------------------------------------------


def _append_dimension(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet = _sheet(txn, p.get("sheetId"))
    length = int(p.get("length") or 0)
    if length <= 0:
        raise bad_request("length must be greater than zero.")
    if p.get("dimension") == "ROWS":
        rows, cols = sheet.row_count + length, sheet.col_count
    elif p.get("dimension") == "COLUMNS":
        rows, cols = sheet.row_count, sheet.col_count + length
    else:
        raise bad_request("Invalid dimension, must be ROWS or COLUMNS.")
    _check_cells(txn, sheet, rows, cols)
    sheet.set_size(rows, cols)
    return {}


def _insert_dimension(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(txn, p.get("range"))
    count = sheet.row_count if dimension == "ROWS" else sheet.col_count
    if start > count:
        raise bad_request(f"Cannot insert {dimension.lower()} at index {start}: beyond the grid.")
    n = end - start
    if n <= 0:
        raise bad_request("The range to insert must not be empty.")
    if dimension == "ROWS":
        _check_cells(txn, sheet, sheet.row_count + n, sheet.col_count)
    else:
        _check_cells(txn, sheet, sheet.row_count, sheet.col_count + n)
    sheet.insert(dimension, start, n)
    _shift_named(txn, sheet.sheet_id, dimension, lambda s, e: shift_span(s, e, start, n))
    return {}


def _delete_dimension(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(txn, p.get("range"))
    count = sheet.row_count if dimension == "ROWS" else sheet.col_count
    end = min(end, count)
    if start >= end:
        raise bad_request("The range to delete must not be empty.")
    if start == 0 and end >= count:
        noun = "rows" if dimension == "ROWS" else "columns"
        raise bad_request(f"You can't delete all the {noun} on the sheet.")
    sheet.delete(dimension, start, end)
    _shift_named(txn, sheet.sheet_id, dimension, lambda s, e: cut_span(s, e, start, end))
    return {}


def _move_dimension(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(txn, p.get("source"))
    dest = int(p.get("destinationIndex") or 0)
    n = end - start
    if n <= 0 or start <= dest <= end:
        return {}
    if dimension == "ROWS":
        rows = sheet.rows + [[] for _ in range(max(0, sheet.row_count - len(sheet.rows)))]
        moving = rows[start:end]
        del rows[start:end]
        at = dest if dest < start else dest - n
        rows[at:at] = moving
        sheet.replace_rows(rows)
    else:
        width = sheet.col_count
        moved = []
        for row in sheet.rows:
            padded = row + [""] * (width - len(row))
            moving = padded[start:end]
            del padded[start:end]
            at = dest if dest < start else dest - n
            padded[at:at] = moving
            moved.append(padded)
        sheet.replace_rows(moved)
    return {}


def _update_dimension_properties(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(txn, p.get("range"))
    mask = _mask(p.get("fields"))
    props = p.get("properties") or {}
    meta = sheet.row_meta if dimension == "ROWS" else sheet.col_meta
    count = sheet.row_count if dimension == "ROWS" else sheet.col_count
    for index in range(start, min(end, count)):
        entry = meta.setdefault(index, {})
        merge_masked(entry, props, mask)
        if not entry.get("hiddenByUser"):
            entry.pop("hiddenByUser", None)
        if not entry:
            del meta[index]
    return {}


def _auto_resize(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(txn, p.get("dimensions"))
    if dimension == "COLUMNS":
        for c in range(start, min(end, sheet.col_count)):
            widest = 0
            for row in sheet.rows:
                if c < len(row) and row[c] != "":
                    widest = max(widest, text_width_px(str(render(row[c], FORMATTED))))
            if widest:
                sheet.col_meta.setdefault(c, {})["pixelSize"] = widest
    else:
        for r in range(start, min(end, len(sheet.rows))):
            lines = max(
                (
                    str(render(cell, FORMATTED)).count("\n") + 1
                    for cell in sheet.rows[r]
                    if cell != ""
                ),
                default=0,
            )
            if lines:
                sheet.row_meta.setdefault(r, {})["pixelSize"] = 21 if lines == 1 else lines * 17 + 4
    return {}


def _add_dimension_group(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(txn, p.get("range"))
    groups = sheet.groups.setdefault(dimension, [])
    depth = 1 + sum(
        1
        for g in groups
        if g["range"].get("startIndex", 0) <= start and end <= g["range"].get("endIndex", 0)
    )
    rng = {"sheetId": sheet.sheet_id, "dimension": dimension, "startIndex": start, "endIndex": end}
    groups.append({"range": normalize_grid_range(rng) | {"dimension": dimension}, "depth": depth})
    return {"addDimensionGroup": {"dimensionGroups": copy.deepcopy(groups)}}


def _delete_dimension_group(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(txn, p.get("range"))
    groups = sheet.groups.setdefault(dimension, [])
    for group in groups:
        rng = group["range"]
        if rng.get("startIndex", 0) == start and rng.get("endIndex") == end:
            groups.remove(group)
            break
    else:
        raise bad_request("No dimension group matches the range.")
    return {"deleteDimensionGroup": {"dimensionGroups": copy.deepcopy(groups)}}


def _update_dimension_group(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    group = p.get("dimensionGroup") or {}
    sheet, dimension, start, end = _dimension_range(txn, group.get("range"))
    mask = _mask(p.get("fields"))
    for existing in sheet.groups.setdefault(dimension, []):
        rng = existing["range"]
        if rng.get("startIndex", 0) == start and rng.get("endIndex") == end:
            merge_masked(existing, group, mask)
            existing["range"] = rng
            return {}
    raise bad_request("No dimension group matches the range.")


# --- cells ---------------------------------------------------------------------------------


def _set_value(sheet: Sheet, r: int, c: int, cell: Any) -> None:
    sheet.write(r, c, [[cell]], type(cell) is str)


def _apply_cell(
    txn: Spreadsheet, sheet: Sheet, r: int, c: int, data: dict[str, Any], mask: Mask
) -> None:
    everything = "*" in mask
    if everything or "userEnteredValue" in mask:
        value = data.get("userEnteredValue")
        _set_value(sheet, r, c, cell_from_extended_value(value) if value else "")
    if everything or "userEnteredFormat" in mask:
        layer_mask = mask.get("userEnteredFormat") or {"*": {}}
        sheet.add_format(
            r, r + 1, c, c + 1, layer_mask, _clean(data.get("userEnteredFormat") or {})
        )
    if everything or "note" in mask:
        note = data.get("note")
        if note:
            sheet.notes[(r, c)] = str(note)
        else:
            sheet.notes.pop((r, c), None)
    if everything or "dataValidation" in mask:
        sheet.validations.append([r, r + 1, c, c + 1, _clean(data.get("dataValidation"))])


def _repeat_cell(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, r0, r1, c0, c1 = _grid(txn, p.get("range"))
    mask = _mask(p.get("fields"))
    cell = p.get("cell") or {}
    everything = "*" in mask
    if everything or "userEnteredFormat" in mask:
        bounds = grid_bounds(txn, p.get("range") or {})[1]
        sheet.add_format(
            bounds.start_row,
            bounds.end_row,
            bounds.start_col,
            bounds.end_col,
            mask.get("userEnteredFormat") or {"*": {}},
            _clean(cell.get("userEnteredFormat") or {}),
        )
    if everything or "dataValidation" in mask:
        sheet.validations.append([r0, r1, c0, c1, _clean(cell.get("dataValidation"))])
    value_keys = [k for k in ("userEnteredValue", "note") if everything or k in mask]
    if value_keys:
        value_mask: Mask = {k: {} for k in value_keys}
        for r in range(r0, r1):
            for c in range(c0, c1):
                _apply_cell(txn, sheet, r, c, cell, value_mask)
    return {}


def _update_cells(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    mask = _mask(p.get("fields"))
    rows = p.get("rows") or []
    if p.get("range") is not None:
        sheet, r0, r1, c0, c1 = _grid(txn, p["range"])
        for i, r in enumerate(range(r0, r1)):
            values = (rows[i].get("values") or []) if i < len(rows) else []
            for j, c in enumerate(range(c0, c1)):
                _apply_cell(txn, sheet, r, c, values[j] if j < len(values) else {}, mask)
        return {}
    start = p.get("start") or {}
    sheet = _sheet(txn, start.get("sheetId"))
    r0 = int(start.get("rowIndex") or 0)
    c0 = int(start.get("columnIndex") or 0)
    for i, row in enumerate(rows):
        for j, data in enumerate((row or {}).get("values") or []):
            r, c = r0 + i, c0 + j
            if r >= sheet.row_count or c >= sheet.col_count:
                raise bad_request(
                    f"GridCoordinate exceeds grid limits. Max rows: {sheet.row_count}, "
                    f"max columns: {sheet.col_count}"
                )
            _apply_cell(txn, sheet, r, c, data or {}, mask)
    return {}


def _append_cells(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet = _sheet(txn, p.get("sheetId"))
    mask = _mask(p.get("fields"))
    rows = p.get("rows") or []
    start = len(sheet.rows)
    width = max((len((row or {}).get("values") or []) for row in rows), default=0)
    need_rows = max(sheet.row_count, start + len(rows))
    need_cols = max(sheet.col_count, width)
    _check_cells(txn, sheet, need_rows, need_cols)
    sheet.set_size(need_rows, need_cols)
    for i, row in enumerate(rows):
        for j, data in enumerate((row or {}).get("values") or []):
            _apply_cell(txn, sheet, start + i, j, data or {}, mask)
    return {}


def _set_data_validation(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, r0, r1, c0, c1 = _grid(txn, p.get("range"))
    sheet.validations.append([r0, r1, c0, c1, _clean(p.get("rule"))])
    return {}


def _sort_key(value: Any) -> tuple[int, Any]:
    if type(value) is Entered:
        value = value.value
    if isinstance(value, bool):
        return 2, value
    if isinstance(value, (int, float)):
        return 0, value
    return 1, str(value).lower()


def _sort_range(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, r0, r1, c0, c1 = _grid(txn, p.get("range"))
    r1 = min(r1, len(sheet.rows))
    if r1 <= r0:
        return {}
    block = [[sheet.cell(r, c) for c in range(c0, c1)] for r in range(r0, r1)]
    order = list(range(len(block)))
    for spec in reversed(p.get("sortSpecs") or [{"dimensionIndex": c0}]):
        col = int(spec.get("dimensionIndex") or 0) - c0
        if not 0 <= col < c1 - c0:
            raise bad_request("sortSpecs dimensionIndex is outside the range.")
        descending = spec.get("sortOrder") == "DESCENDING"
        filled = [i for i in order if block[i][col] != ""]
        # Blank cells stay at the bottom whichever the order, as in Sheets.
        empty = [i for i in order if block[i][col] == ""]
        filled.sort(key=lambda i: _sort_key(block[i][col]), reverse=descending)
        order = filled + empty
    sheet.clear(r0, r1, c0, c1)
    sheet.write(
        r0, c0, [block[i] for i in order], all(type(v) is str for row in block for v in row)
    )
    return {}


def _read_block(
    sheet: Sheet, r0: int, r1: int, c0: int, c1: int, values_only: bool
) -> list[list[Any]]:
    block = []
    for r in range(r0, r1):
        row = []
        for c in range(c0, c1):
            cell = sheet.cell(r, c)
            if values_only and type(cell) is Entered and cell.formula is not None:
                cell = cell.value
            row.append(cell)
        block.append(row)
    return block


def _copy_paste(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    src, sr0, sr1, sc0, sc1 = _grid(txn, p.get("source"))
    dst, dr0, dr1, dc0, dc1 = _grid(txn, p.get("destination"))
    paste = p.get("pasteType") or "PASTE_NORMAL"
    if paste in ("PASTE_FORMAT", "PASTE_DATA_VALIDATION", "PASTE_CONDITIONAL_FORMATTING"):
        return {}
    block = _read_block(src, sr0, sr1, sc0, sc1, values_only=paste == "PASTE_VALUES")
    if p.get("pasteOrientation") == "TRANSPOSE":
        block = [list(col) for col in zip(*block, strict=False)] if block else []
    height, width = len(block), len(block[0]) if block else 0
    if not height or not width:
        return {}
    # A destination that is a whole multiple of the source is tiled; otherwise one copy.
    tile_r = max(1, (dr1 - dr0) // height) if (dr1 - dr0) % height == 0 else 1
    tile_c = max(1, (dc1 - dc0) // width) if (dc1 - dc0) % width == 0 else 1
    for tr in range(tile_r):
        for tc in range(tile_c):
            r, c = dr0 + tr * height, dc0 + tc * width
            rows = [row[: max(0, dst.col_count - c)] for row in block[: max(0, dst.row_count - r)]]
            dst.write(r, c, rows, all(type(v) is str for row in rows for v in row))
    return {}


def _cut_paste(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    src, r0, r1, c0, c1 = _grid(txn, p.get("source"))
    dest = p.get("destination") or {}
    dst = _sheet(txn, dest.get("sheetId"))
    block = _read_block(src, r0, r1, c0, c1, values_only=False)
    src.clear(r0, r1, c0, c1)
    r, c = int(dest.get("rowIndex") or 0), int(dest.get("columnIndex") or 0)
    rows = [row[: max(0, dst.col_count - c)] for row in block[: max(0, dst.row_count - r)]]
    dst.write(r, c, rows, all(type(v) is str for row in rows for v in row))
    return {}


# --- merges, filters, named and protected ranges -------------------------------------------


def _intersects(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def span(rng: dict[str, Any], start: str, end: str) -> tuple[int, float]:
        stop = rng.get(end)
        return int(rng.get(start) or 0), float("inf") if stop is None else int(stop)

    ar0, ar1 = span(a, "startRowIndex", "endRowIndex")
    br0, br1 = span(b, "startRowIndex", "endRowIndex")
    ac0, ac1 = span(a, "startColumnIndex", "endColumnIndex")
    bc0, bc1 = span(b, "startColumnIndex", "endColumnIndex")
    return ar0 < br1 and br0 < ar1 and ac0 < bc1 and bc0 < ac1


def _merge_cells(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, r0, r1, c0, c1 = _grid(txn, p.get("range"))
    kind = p.get("mergeType") or "MERGE_ALL"
    if kind == "MERGE_COLUMNS":
        pieces = [(r0, r1, c, c + 1) for c in range(c0, c1)]
    elif kind == "MERGE_ROWS":
        pieces = [(r, r + 1, c0, c1) for r in range(r0, r1)]
    else:
        pieces = [(r0, r1, c0, c1)]
    for a, b, c, d in pieces:
        if (b - a) * (d - c) <= 1:
            continue
        merge = {
            "sheetId": sheet.sheet_id,
            "startRowIndex": a,
            "endRowIndex": b,
            "startColumnIndex": c,
            "endColumnIndex": d,
        }
        sheet.merges = [m for m in sheet.merges if not _intersects(m, merge)]
        sheet.merges.append(normalize_grid_range(merge))
        # Only the top-left value of a merge survives, as in the Sheets UI.
        anchor = sheet.cell(a, c)
        sheet.clear(a, b, c, d)
        if anchor != "":
            _set_value(sheet, a, c, anchor)
    return {}


def _unmerge_cells(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, r0, r1, c0, c1 = _grid(txn, p.get("range"))
    area = {"startRowIndex": r0, "endRowIndex": r1, "startColumnIndex": c0, "endColumnIndex": c1}
    sheet.merges = [m for m in sheet.merges if not _intersects(m, area)]
    return {}


def _set_basic_filter(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    flt = _clean(p.get("filter") or {})
    rng = flt.get("range") or {}
    sheet = _sheet(txn, rng.get("sheetId"))
    flt["range"] = normalize_grid_range(rng)
    sheet.basic_filter = flt
    return {}


def _clear_basic_filter(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    _sheet(txn, p.get("sheetId")).basic_filter = None
    return {}


def _add_named_range(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    named = _clean(p.get("namedRange") or {})
    name = named.get("name")
    if not name or not isinstance(name, str) or not (name[0].isalpha() or name[0] == "_"):
        raise bad_request(f"Invalid namedRange name: {name}")
    if txn.named_range(name) is not None:
        raise bad_request(f"A named range with the name {name} already exists.")
    grid_bounds(txn, named.get("range") or {})
    named["namedRangeId"] = named.get("namedRangeId") or _random_id()
    named["range"] = normalize_grid_range(named.get("range") or {})
    txn.named_ranges.append(named)
    return {"addNamedRange": {"namedRange": copy.deepcopy(named)}}


def _find_named(txn: Spreadsheet, named_id: Any) -> dict[str, Any]:
    for named in txn.named_ranges:
        if named.get("namedRangeId") == named_id:
            return named
    raise bad_request(f"No named range with id: {named_id}")


def _delete_named_range(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    txn.named_ranges.remove(_find_named(txn, p.get("namedRangeId")))
    return {}


def _update_named_range(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    update = p.get("namedRange") or {}
    named = _find_named(txn, update.get("namedRangeId"))
    merge_masked(named, update, _mask(p.get("fields")))
    named["range"] = normalize_grid_range(named.get("range") or {})
    return {}


def _add_protected_range(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    protected = _clean(p.get("protectedRange") or {})
    protected["protectedRangeId"] = protected.get("protectedRangeId") or (
        secrets.randbelow(2**31 - 1) + 1
    )
    rng = protected.get("range") or {}
    sheet = _sheet(txn, rng.get("sheetId"))
    protected["range"] = normalize_grid_range(rng)
    protected.setdefault("requestingUserCanEdit", True)
    sheet.protected.append(protected)
    return {"addProtectedRange": {"protectedRange": copy.deepcopy(protected)}}


def _find_protected(txn: Spreadsheet, protected_id: Any) -> tuple[Sheet, dict[str, Any]]:
    for sheet in txn.sheets:
        for protected in sheet.protected:
            if protected.get("protectedRangeId") == protected_id:
                writable = txn.writable(sheet)
                index = sheet.protected.index(protected)
                return writable, writable.protected[index]
    raise bad_request(f"No protected range with id: {protected_id}")


def _delete_protected_range(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    sheet, protected = _find_protected(txn, p.get("protectedRangeId"))
    sheet.protected.remove(protected)
    return {}


def _update_protected_range(txn: Spreadsheet, p: dict[str, Any]) -> dict[str, Any]:
    update = p.get("protectedRange") or {}
    _, protected = _find_protected(txn, update.get("protectedRangeId"))
    merge_masked(protected, update, _mask(p.get("fields")))
    return {}


_HANDLERS: dict[str, Handler] = {
    "addSheet": _add_sheet,
    "deleteSheet": _delete_sheet,
    "updateSheetProperties": _update_sheet_properties,
    "updateSpreadsheetProperties": _update_spreadsheet_properties,
    "duplicateSheet": _duplicate_sheet,
    "appendDimension": _append_dimension,
    "insertDimension": _insert_dimension,
    "deleteDimension": _delete_dimension,
    "moveDimension": _move_dimension,
    "updateDimensionProperties": _update_dimension_properties,
    "autoResizeDimensions": _auto_resize,
    "addDimensionGroup": _add_dimension_group,
    "deleteDimensionGroup": _delete_dimension_group,
    "updateDimensionGroup": _update_dimension_group,
    "repeatCell": _repeat_cell,
    "updateCells": _update_cells,
    "appendCells": _append_cells,
    "setDataValidation": _set_data_validation,
    "sortRange": _sort_range,
    "copyPaste": _copy_paste,
    "cutPaste": _cut_paste,
    "mergeCells": _merge_cells,
    "unmergeCells": _unmerge_cells,
    "setBasicFilter": _set_basic_filter,
    "clearBasicFilter": _clear_basic_filter,
    "addNamedRange": _add_named_range,
    "deleteNamedRange": _delete_named_range,
    "updateNamedRange": _update_named_range,
    "addProtectedRange": _add_protected_range,
    "deleteProtectedRange": _delete_protected_range,
    "updateProtectedRange": _update_protected_range,
}


def _with_id(
    reply_key: str, body_key: str, id_key: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def reply(p: dict[str, Any]) -> dict[str, Any]:
        item = copy.deepcopy(p.get(body_key) or {})
        item.setdefault(id_key, secrets.randbelow(2**31 - 1) + 1)
        return {reply_key: {body_key: item}}

    return reply


# Accepted, recorded, answered as Google does, otherwise without effect.
_RECORDED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "updateBorders": lambda p: {},
    "addConditionalFormatRule": lambda p: {},
    "updateConditionalFormatRule": lambda p: {"updateConditionalFormatRule": {}},
    "deleteConditionalFormatRule": lambda p: {"deleteConditionalFormatRule": {}},
    "addBanding": _with_id("addBanding", "bandedRange", "bandedRangeId"),
    "updateBanding": lambda p: {},
    "deleteBanding": lambda p: {},
    "addFilterView": _with_id("addFilterView", "filter", "filterViewId"),
    "updateFilterView": lambda p: {},
    "deleteFilterView": lambda p: {},
    "duplicateFilterView": lambda p: {"duplicateFilterView": {"filter": {}}},
    "addChart": _with_id("addChart", "chart", "chartId"),
    "updateChartSpec": lambda p: {},
    "deleteEmbeddedObject": lambda p: {},
    "updateEmbeddedObjectPosition": lambda p: {"updateEmbeddedObjectPosition": {}},
    "updateEmbeddedObjectBorder": lambda p: {},
    "createDeveloperMetadata": lambda p: {
        "createDeveloperMetadata": {"developerMetadata": p.get("developerMetadata") or {}}
    },
    "updateDeveloperMetadata": lambda p: {"updateDeveloperMetadata": {}},
    "deleteDeveloperMetadata": lambda p: {"deleteDeveloperMetadata": {}},
    "addSlicer": _with_id("addSlicer", "slicer", "slicerId"),
    "updateSlicerSpec": lambda p: {},
}

# Requests that change values in ways the emulator does not model: refusing them beats
# pretending they worked.
_NOT_IMPLEMENTED = frozenset(
    {
        "findReplace",
        "pasteData",
        "textToColumns",
        "autoFill",
        "insertRange",
        "deleteRange",
        "randomizeRange",
        "trimWhitespace",
        "deleteDuplicates",
        "addDataSource",
        "updateDataSource",
        "deleteDataSource",
        "refreshDataSource",
        "cancelDataSourceRefresh",
        "addTable",
        "updateTable",
        "deleteTable",
    }
)
