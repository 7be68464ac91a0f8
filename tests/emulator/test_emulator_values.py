"""The ``values`` endpoints through unmodified gspread: ranges, trimming, input parsing."""

from __future__ import annotations

import gspread
import pytest
from gspread.utils import DateTimeOption, Dimension, ValueInputOption, ValueRenderOption

from sheetcache.emulator import SheetsEmulator

GRID = [["A1", "B1", "", "D1"], ["", "b2", "", ""], ["", "", "", ""], ["A4", "B4", "", "D4"]]


def test_get_trims_trailing_cells_and_rows_keeps_interior_empty_rows(ws: gspread.Worksheet) -> None:
    ws.update(GRID, "A1")
    got = ws.spreadsheet.values_get("'Sheet1'!A1:F10")
    assert got == {
        "range": "Sheet1!A1:F10",
        "majorDimension": "ROWS",
        "values": [["A1", "B1", "", "D1"], ["", "b2"], [], ["A4", "B4", "", "D4"]],
    }


def test_empty_range_has_no_values_key_and_range_is_clipped_to_grid(ws: gspread.Worksheet) -> None:
    assert ws.spreadsheet.values_get("'Sheet1'") == {
        "range": "Sheet1!A1:Z1000",
        "majorDimension": "ROWS",
    }
    assert ws.spreadsheet.values_get("'Sheet1'!A1:C")["range"] == "Sheet1!A1:C1000"
    assert ws.spreadsheet.values_get("'Sheet1'!A1:1")["range"] == "Sheet1!A1:Z1"
    assert ws.spreadsheet.values_get("Sheet1!B:B")["range"] == "Sheet1!B1:B1000"
    assert ws.spreadsheet.values_get("Sheet1!3:4")["range"] == "Sheet1!A3:Z4"
    assert ws.spreadsheet.values_get("Sheet1!A1:AB2000")["range"] == "Sheet1!A1:Z1000"


@pytest.mark.parametrize(
    ("a1", "expected"),
    [
        ("A1", [["A1"]]),
        ("A1:B2", [["A1", "B1"], ["", "b2"]]),
        ("A:A", [["A1"], [], [], ["A4"]]),
        ("A1:1", [["A1", "B1", "", "D1"]]),
        ("A2:H", [["", "b2"], [], ["A4", "B4", "", "D4"]]),
        ("$B$1:$D$1", [["B1", "", "D1"]]),
        ("D4:A1", [["A1", "B1", "", "D1"], ["", "b2"], [], ["A4", "B4", "", "D4"]]),
    ],
)
def test_a1_forms(ws: gspread.Worksheet, a1: str, expected: list[list[str]]) -> None:
    ws.update(GRID, "A1")
    assert ws.spreadsheet.values_get(f"'Sheet1'!{a1}").get("values") == expected


def test_titles_quoted_with_doubled_quotes_and_unquoted_in_answers(gc: gspread.Client) -> None:
    sh = gc.create("titles")
    tab = sh.add_worksheet("It's a tab", rows=5, cols=3)
    tab.update([["x"]], "B2")
    got = sh.values_get("'It''s a tab'!A1:C3")
    assert got["range"] == "'It''s a tab'!A1:C3"
    assert got["values"] == [[], ["", "x"]]
    plain = sh.add_worksheet("data_2", rows=5, cols=3)
    assert sh.values_get("data_2")["range"] == "data_2!A1:C5"
    assert plain.title == "data_2"
    assert sh.values_get("A1:B1")["range"] == "Sheet1!A1:B1"  # no sheet: the first one
    with pytest.raises(gspread.exceptions.APIError, match="Unable to parse range: 'Nope'!A1"):
        sh.values_get("'Nope'!A1")


def test_major_dimension_columns_on_read_and_write(ws: gspread.Worksheet) -> None:
    ws.update(GRID, "A1")
    assert ws.get("A1:D4", major_dimension=Dimension.cols) == [
        ["A1", "", "", "A4"],
        ["B1", "b2", "", "B4"],
        [],
        ["D1", "", "", "D4"],
    ]
    ws.spreadsheet.values_update(
        "'Sheet1'!F1",
        params={"valueInputOption": "RAW"},
        body={"majorDimension": "COLUMNS", "values": [["c1", "c2"], ["d1"]]},
    )
    assert ws.get("F1:G2") == [["c1", "d1"], ["c2"]]


def test_update_response_and_values_in_response(ws: gspread.Worksheet) -> None:
    res = ws.spreadsheet.values_update(
        "'Sheet1'!B2",
        params={"valueInputOption": "RAW", "includeValuesInResponse": True},
        body={"values": [["x", "", 1], ["y"]]},
    )
    assert res["updatedRange"] == "Sheet1!B2:D3"
    assert (res["updatedRows"], res["updatedColumns"], res["updatedCells"]) == (2, 3, 4)
    assert res["updatedData"] == {
        "range": "Sheet1!B2:D3",
        "majorDimension": "ROWS",
        "values": [["x", "", "1"], ["y"]],
    }


def test_null_cells_are_skipped_empty_strings_clear(ws: gspread.Worksheet) -> None:
    ws.update([["a", "b", "c"]], "A1")
    ws.spreadsheet.values_update(
        "'Sheet1'!A1", params={"valueInputOption": "RAW"}, body={"values": [[None, "", "C"]]}
    )
    assert ws.get_values("A1:C1") == [["a", "", "C"]]


def test_raw_keeps_text_user_entered_parses_like_sheets(
    ws: gspread.Worksheet, emu: SheetsEmulator
) -> None:
    raw = ["0042", "=1+1", "TRUE", "1,234", "'quoted"]
    ws.update([raw], "A1", value_input_option=ValueInputOption.raw)
    ws.update([raw], "A2", value_input_option=ValueInputOption.user_entered)
    unformatted = ws.get("A1:E2", value_render_option=ValueRenderOption.unformatted)
    assert unformatted == [raw, [42, 2, True, 1234, "quoted"]]
    assert ws.get("A1:E2") == [raw, ["42", "2", "TRUE", "1,234", "quoted"]]
    formulas = ws.get("A2:B2", value_render_option=ValueRenderOption.formula)
    assert formulas == [[42, "=1+1"]]
    sid = ws.spreadsheet.id
    assert emu.cell(sid, "Sheet1!B1").input_option == "RAW"
    assert emu.cell(sid, "Sheet1!B1").formula is None
    assert emu.cell(sid, "Sheet1!B2").formula == "=1+1"
    assert emu.cell(sid, "Sheet1!A2").input_option == "USER_ENTERED"
    assert emu.cell(sid, "Sheet1!Z9").input_option is None


def test_numbers_booleans_dates_render_per_option(ws: gspread.Worksheet) -> None:
    ws.update(
        [[1, 1.45, 0.4, True, "2024-01-15"]], "A1", value_input_option=ValueInputOption.user_entered
    )
    assert ws.get("A1:E1") == [["1", "1.45", "0.4", "TRUE", "2024-01-15"]]
    assert ws.get("A1:E1", value_render_option=ValueRenderOption.unformatted) == [
        [1, 1.45, 0.4, True, 45306]
    ]
    assert ws.get(
        "E1",
        value_render_option=ValueRenderOption.unformatted,
        date_time_render_option=DateTimeOption.formatted_string,
    ) == [["2024-01-15"]]


def test_unsupported_formulas_say_so_instead_of_pretending(ws: gspread.Worksheet) -> None:
    ws.update(
        [["=SUM(A2:A3)", "=1/0", "=(1+"]], "A1", value_input_option=ValueInputOption.user_entered
    )
    assert ws.get("A1:C1") == [["#NAME?", "#DIV/0!", "#ERROR!"]]


def test_write_past_the_requested_range_or_the_grid_is_refused(gc: gspread.Client) -> None:
    sh = gc.create("bounds")
    small = sh.add_worksheet("small", rows=3, cols=2)
    with pytest.raises(gspread.exceptions.APIError) as info:
        sh.values_update(
            "small!A1:B1", params={"valueInputOption": "RAW"}, body={"values": [["a", "b", "c"]]}
        )
    assert info.value.response.json()["error"]["message"] == (
        "Requested writing within range [small!A1:B1], but tried writing to column [C]"
    )
    with pytest.raises(gspread.exceptions.APIError, match=r"tried writing to row \[2\]"):
        sh.values_update(
            "small!A1:B1", params={"valueInputOption": "RAW"}, body={"values": [["a"], ["b"]]}
        )
    with pytest.raises(gspread.exceptions.APIError) as info:
        small.update([["x"]], "A4")
    error = info.value.response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"] == "Range ('small'!A4) exceeds grid limits. Max rows: 3, max columns: 2"
    assert "values" not in sh.values_get("small")


def test_malformed_values_get_googles_400(ws: gspread.Worksheet) -> None:
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.spreadsheet.values_update(
            "'Sheet1'!A1", params={"valueInputOption": "RAW"}, body={"values": "X"}
        )
    error = info.value.response.json()["error"]
    assert error["message"] == (
        "Invalid value at 'data.values' (type.googleapis.com/google.protobuf.ListValue), \"X\""
    )
    assert error["details"][0]["fieldViolations"][0]["field"] == "data.values"
    with pytest.raises(gspread.exceptions.APIError, match="'valueInputOption' is required"):
        ws.spreadsheet.values_update("'Sheet1'!A1", body={"values": [["a"]]})


def test_append_finds_the_table_and_reports_table_range(ws: gspread.Worksheet) -> None:
    first = ws.append_row(["a", "b", "c"])
    assert "tableRange" not in first
    assert first["updates"]["updatedRange"] == "Sheet1!A1:C1"
    second = ws.append_rows([["d", "e", "f"], ["g", "h", "i"]])
    assert second["tableRange"] == "Sheet1!A1:C1"
    assert second["updates"]["updatedRange"] == "Sheet1!A2:C3"
    ws.update([["note"]], "F10")  # data elsewhere does not join the table
    third = ws.append_row(["j"], table_range="A1")
    assert third["tableRange"] == "Sheet1!A1:C3"
    assert third["updates"]["updatedRange"] == "Sheet1!A4"
    assert ws.get_values("A1:C4") == [
        ["a", "b", "c"],
        ["d", "e", "f"],
        ["g", "h", "i"],
        ["j", "", ""],
    ]


def test_append_with_a_gap_appends_under_the_last_block(ws: gspread.Worksheet) -> None:
    ws.append_row(["x", "", "z"])
    res = ws.append_row(["x", "", "z"])
    # What Google answered in the recorded traffic: the block of the last cell (C1 alone).
    assert res["tableRange"] == "Sheet1!C1"
    assert res["updates"]["updatedRange"] == "Sheet1!C2:E2"


def test_append_into_an_empty_range_writes_at_its_start(ws: gspread.Worksheet) -> None:
    ws.update([["h1", "h2"], ["r1", "r1"], ["r2", "r2"]], "A1")
    ws.insert_row(["new", "row"], index=2)  # insertDimension, then append to 'Sheet1'!A2
    assert ws.get_values("A1:B4") == [["h1", "h2"], ["new", "row"], ["r1", "r1"], ["r2", "r2"]]


def test_append_grows_the_grid_and_insert_rows_shifts(gc: gspread.Client) -> None:
    sh = gc.create("grow")
    tab = sh.add_worksheet("tiny", rows=2, cols=2)
    tab.append_rows([["a", "b"], ["c", "d"], ["e", "f", "g"]])
    props = sh.fetch_sheet_metadata()["sheets"][1]["properties"]["gridProperties"]
    assert (props["rowCount"], props["columnCount"]) == (3, 3)
    sh.values_append(
        "tiny!A1",
        params={"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"},
        body={"values": [["x", "y"]]},
    )
    assert tab.get_values() == [["a", "b", ""], ["c", "d", ""], ["e", "f", "g"], ["x", "y", ""]]
    sh.values_update("tiny!A4", params={"valueInputOption": "RAW"}, body={"values": [["z"]]})
    assert sh.fetch_sheet_metadata()["sheets"][1]["properties"]["gridProperties"]["rowCount"] == 4


def test_batch_get_batch_update_clear_batch_clear(ws: gspread.Worksheet) -> None:
    res = ws.batch_update(
        [{"range": "A1:B1", "values": [["a", "b"]]}, {"range": "A3", "values": [["c"], ["d"]]}]
    )
    assert (res["totalUpdatedRows"], res["totalUpdatedColumns"], res["totalUpdatedCells"]) == (
        3,
        2,
        4,
    )
    assert res["totalUpdatedSheets"] == 1
    assert [r["updatedRange"] for r in res["responses"]] == ["Sheet1!A1:B1", "Sheet1!A3:A4"]
    assert ws.batch_get(["A1:B1", "A3:A4"]) == [[["a", "b"]], [["c"], ["d"]]]
    cleared = ws.batch_clear(["A1:A1", "A4"])
    assert cleared["clearedRanges"] == ["Sheet1!A1", "Sheet1!A4"]
    assert ws.get_values("A1:B4") == [["", "b"], ["", ""], ["c", ""]]
    assert ws.clear()["clearedRange"] == "Sheet1!A1:Z1000"
    assert "values" not in ws.spreadsheet.values_get("Sheet1")


def test_batch_update_is_all_or_nothing(ws: gspread.Worksheet) -> None:
    with pytest.raises(gspread.exceptions.APIError, match=r"Invalid data\[1\]"):
        ws.batch_update(
            [{"range": "A1", "values": [["kept?"]]}, {"range": "A2", "values": [["x" * 50_001]]}]
        )
    assert "values" not in ws.spreadsheet.values_get("Sheet1")


def test_named_ranges_resolve_in_values_requests(ws: gspread.Worksheet) -> None:
    ws.update(GRID, "A1")
    ws.define_named_range("A1:B2", "corner")
    assert ws.get("corner") == [["A1", "B1"], ["", "b2"]]
    assert ws.spreadsheet.values_get("corner")["range"] == "Sheet1!A1:B2"
