"""Spreadsheet metadata and ``spreadsheets.batchUpdate`` through unmodified gspread."""

from __future__ import annotations

import gspread
import pytest

from sheetcache.emulator import SheetsEmulator


def test_metadata_shape_matches_google(gc: gspread.Client) -> None:
    sh = gc.create("meta")
    meta = sh.fetch_sheet_metadata()
    assert meta["spreadsheetId"] == sh.id
    assert meta["spreadsheetUrl"] == f"https://docs.google.com/spreadsheets/d/{sh.id}/edit"
    props = meta["properties"]
    assert (props["title"], props["locale"], props["timeZone"]) == ("meta", "en_US", "Etc/GMT")
    assert props["defaultFormat"]["textFormat"]["fontFamily"] == "arial,sans,sans-serif"
    assert meta["sheets"] == [
        {
            "properties": {
                "sheetId": 0,
                "title": "Sheet1",
                "index": 0,
                "sheetType": "GRID",
                "gridProperties": {"rowCount": 1000, "columnCount": 26},
            }
        }
    ]


def test_unknown_spreadsheet_is_googles_404(gc: gspread.Client) -> None:
    with pytest.raises(gspread.SpreadsheetNotFound):
        gc.open_by_key("test")
    with pytest.raises(gspread.exceptions.APIError) as info:
        gc.http_client.values_get("1" + "x" * 43, "A1")
    assert info.value.response.json() == {
        "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
    }


def test_restricted_spreadsheet_is_googles_403(emu: SheetsEmulator) -> None:
    sid = emu.create_spreadsheet("private", owner="alice")
    emu.restrict(sid, ["alice"], readers=["carol"])
    with pytest.raises(PermissionError):
        emu.client(user="bob").open_by_key(sid)
    with pytest.raises(gspread.exceptions.APIError) as info:
        emu.client(user="bob").http_client.values_get(sid, "A1")
    assert info.value.response.json() == {
        "error": {
            "code": 403,
            "message": "The caller does not have permission",
            "status": "PERMISSION_DENIED",
        }
    }
    reader = emu.client(user="carol").open_by_key(sid).sheet1
    assert reader.get_values() == [[]]
    with pytest.raises(gspread.exceptions.APIError, match="does not have permission"):
        reader.update([["no"]], "A1")
    emu.client(user="alice").open_by_key(sid).sheet1.update([["yes"]], "A1")
    emu.restrict(sid, None)
    assert emu.client(user="bob").open_by_key(sid).sheet1.get_values() == [["yes"]]


def test_add_update_delete_worksheets(gc: gspread.Client) -> None:
    sh = gc.create("tabs")
    first = sh.add_worksheet("one", rows=1, cols=1)
    second = sh.add_worksheet("two", rows=10, cols=2, index=1)
    assert [w.title for w in sh.worksheets()] == ["Sheet1", "two", "one"]
    assert first.id != second.id and first.id > 0
    with pytest.raises(gspread.exceptions.APIError) as info:
        sh.add_worksheet("ONE", rows=1, cols=1)
    assert info.value.response.json()["error"]["message"] == (
        'Invalid requests[0].addSheet: A sheet with the name "ONE" already exists. '
        "Please enter another name."
    )
    second.update_title("deux")
    second.resize(rows=20, cols=3)
    second.freeze(rows=2, cols=1)
    props = sh.fetch_sheet_metadata()["sheets"][1]["properties"]
    assert props["title"] == "deux"
    assert props["gridProperties"] == {
        "rowCount": 20,
        "columnCount": 3,
        "frozenRowCount": 2,
        "frozenColumnCount": 1,
    }
    second.freeze(rows=0, cols=0)
    assert sh.fetch_sheet_metadata()["sheets"][1]["properties"]["gridProperties"] == {
        "rowCount": 20,
        "columnCount": 3,
    }
    sh.del_worksheet(first)
    sh.del_worksheet(second)
    with pytest.raises(gspread.exceptions.APIError, match="You can't remove all the sheets"):
        sh.del_worksheet(sh.sheet1)


def test_update_sheet_properties_honours_the_field_mask(gc: gspread.Client) -> None:
    sh = gc.create("mask")
    sh.batch_update(
        {
            "requests": [
                {
                    "updateSheetProperties": {
                        "properties": {
                            "sheetId": 0,
                            "title": "ignored",
                            "gridProperties": {"rowCount": 5},
                        },
                        "fields": "gridProperties.rowCount",
                    }
                }
            ]
        }
    )
    props = sh.fetch_sheet_metadata()["sheets"][0]["properties"]
    assert props["title"] == "Sheet1"
    assert props["gridProperties"] == {"rowCount": 5, "columnCount": 26}


def test_dimensions_insert_delete_append_move_data(ws: gspread.Worksheet) -> None:
    ws.update([["r1"], ["r2"], ["r3"], ["r4"]], "A1")
    ws.insert_rows([["new"]], row=2)
    ws.delete_rows(4)
    assert ws.col_values(1) == ["r1", "new", "r2", "r4"]
    ws.add_rows(5)
    ws.add_cols(4)
    meta = ws.spreadsheet.fetch_sheet_metadata()["sheets"][0]["properties"]["gridProperties"]
    assert (meta["rowCount"], meta["columnCount"]) == (1005, 30)
    ws.update([["a", "b", "c"]], "A1")
    ws.delete_columns(2)
    assert ws.row_values(1) == ["a", "c"]
    with pytest.raises(gspread.exceptions.APIError, match="You can't delete all the rows"):
        ws.delete_rows(1, 1005)


def test_batch_update_is_atomic(gc: gspread.Client, emu: SheetsEmulator) -> None:
    sh = gc.create("atomic")
    with pytest.raises(
        gspread.exceptions.APIError, match=r"Invalid requests\[1\]\.deleteSheet: No grid"
    ):
        sh.batch_update(
            {
                "requests": [
                    {"addSheet": {"properties": {"title": "new"}}},
                    {"deleteSheet": {"sheetId": 999}},
                ]
            }
        )
    assert [w.title for w in sh.worksheets()] == ["Sheet1"]
    assert emu.recorded_requests(sh.id) == []
    with pytest.raises(gspread.exceptions.APIError, match='Unknown name "frobnicate"'):
        sh.batch_update({"requests": [{"frobnicate": {}}]})


def test_formatting_is_accepted_recorded_and_reported(
    ws: gspread.Worksheet, emu: SheetsEmulator
) -> None:
    ws.format("A2:B2", {"backgroundColor": {"green": 1, "blue": 1}, "textFormat": {"bold": True}})
    ws.add_validation("C1", gspread.utils.ValidationConditionType.one_of_list, ["y", "n"])
    ws.set_basic_filter("A1:C5")
    ws.columns_auto_resize(0, 1)
    ws.hide_columns(3, 4)
    kinds = [next(iter(r)) for r in emu.recorded_formatting(ws.spreadsheet.id)]
    assert kinds == [
        "repeatCell",
        "setDataValidation",
        "setBasicFilter",
        "autoResizeDimensions",
        "updateDimensionProperties",
    ]
    got = ws.spreadsheet.fetch_sheet_metadata(
        {"ranges": "Sheet1!A2", "fields": "sheets.data.rowData.values.userEnteredFormat"}
    )
    assert got == {
        "sheets": [
            {
                "data": [
                    {
                        "rowData": [
                            {
                                "values": [
                                    {
                                        "userEnteredFormat": {
                                            "backgroundColor": {"green": 1, "blue": 1},
                                            "backgroundColorStyle": {
                                                "rgbColor": {"green": 1, "blue": 1}
                                            },
                                            "textFormat": {"bold": True},
                                        }
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ]
    }
    sheet = ws.spreadsheet.fetch_sheet_metadata()["sheets"][0]
    assert sheet["basicFilter"] == {"range": {"endRowIndex": 5, "endColumnIndex": 3}}
    columns = ws.spreadsheet.fetch_sheet_metadata({"fields": "sheets.data.columnMetadata"})
    meta = columns["sheets"][0]["data"][0]["columnMetadata"]
    assert meta[3] == {"pixelSize": 100, "hiddenByUser": True} and len(meta) == 26


def test_auto_resize_measures_the_text(ws: gspread.Worksheet) -> None:
    ws.update([["A" * 1024]], "A1")
    ws.columns_auto_resize(0, 1)
    meta = ws.spreadsheet.fetch_sheet_metadata({"fields": "sheets.data.columnMetadata"})
    widths = [c["pixelSize"] for c in meta["sheets"][0]["data"][0]["columnMetadata"]]
    assert widths[0] == 8691  # what Google answered for the same cell
    assert widths[1:] == [100] * 25


def test_notes_merges_named_protected_duplicate_copy_sort(gc: gspread.Client) -> None:
    sh = gc.create("misc")
    ws = sh.sheet1
    ws.update([[3, "c"], [1, "a"], [2, "b"]], "A1")
    ws.sort((1, "asc"))
    assert ws.get_values("A1:B3") == [["1", "a"], ["2", "b"], ["3", "c"]]
    ws.update_note("A1", "first")
    assert ws.get_note("A1") == "first"
    ws.merge_cells("A1:B1")
    assert ws.get_values("A1:B1") == [["1"]]
    assert sh.fetch_sheet_metadata()["sheets"][0]["merges"] == [
        {"endRowIndex": 1, "endColumnIndex": 2}
    ]
    ws.define_named_range("A2:B3", "body")
    assert [n["name"] for n in sh.list_named_ranges()] == ["body"]
    ws.add_protected_range("A1:B1", editor_users_emails=["me@example.com"])
    assert len(sh.list_protected_ranges(ws.id)) == 1
    dup = ws.duplicate(new_sheet_name="dup")
    assert dup.get_values("A1:B3") == ws.get_values("A1:B3")
    other = gc.create("target")
    copied = ws.copy_to(other.id)
    assert copied["title"] == "Copy of Sheet1"
    assert other.worksheet("Copy of Sheet1").get_values("A2:B2") == [["2", "b"]]


def test_grid_data_for_a_range(ws: gspread.Worksheet) -> None:
    ws.update([["x", "=1+1"]], "B2", value_input_option=gspread.utils.ValueInputOption.user_entered)
    got = ws.spreadsheet.fetch_sheet_metadata({"ranges": "Sheet1!B2:C3", "includeGridData": "true"})
    data = got["sheets"][0]["data"][0]
    assert (data["startRow"], data["startColumn"]) == (1, 1)
    assert data["rowData"] == [
        {
            "values": [
                {
                    "userEnteredValue": {"stringValue": "x"},
                    "effectiveValue": {"stringValue": "x"},
                    "formattedValue": "x",
                },
                {
                    "userEnteredValue": {"formulaValue": "=1+1"},
                    "effectiveValue": {"numberValue": 2},
                    "formattedValue": "2",
                },
            ]
        }
    ]
    assert data["rowMetadata"] == [{"pixelSize": 21}, {"pixelSize": 21}]
