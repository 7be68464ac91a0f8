"""Google's hard limits: 50,000 characters per cell, 10,000,000 cells, 10 MiB bodies."""

from __future__ import annotations

import gspread
import pytest

CELL_TOO_LONG = "Your input contains more than the maximum of 50000 characters in a single cell."
TOO_MANY_CELLS = (
    "This action would increase the number of cells in the workbook above the limit of "
    "10000000 cells."
)


def _error(info: pytest.ExceptionInfo[gspread.exceptions.APIError]) -> dict:
    return info.value.response.json()["error"]


def test_a_cell_of_50000_characters_fits_one_more_is_refused(ws: gspread.Worksheet) -> None:
    ws.update([["x" * 50_000]], "A1")
    assert len(ws.acell("A1").value) == 50_000
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.update([["y" * 50_001]], "A2")
    assert _error(info) == {"code": 400, "message": CELL_TOO_LONG, "status": "INVALID_ARGUMENT"}
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.append_row(["ok", "y" * 50_001])
    assert _error(info)["message"] == CELL_TOO_LONG
    with pytest.raises(gspread.exceptions.APIError, match=r"USER_ENTERED|50000"):
        ws.update([["=" + "1" * 50_001]], "A3", value_input_option="USER_ENTERED")
    assert ws.col_values(1) == ["x" * 50_000]


def test_ten_million_cells_per_spreadsheet(gc: gspread.Client) -> None:
    sh = gc.create("big")  # Sheet1 is 26,000 cells
    sh.add_worksheet("wide", rows=100_000, cols=99)  # 9,900,000
    with pytest.raises(gspread.exceptions.APIError) as info:
        sh.add_worksheet("one too many", rows=100, cols=750)
    assert _error(info)["message"] == f"Invalid requests[0].addSheet: {TOO_MANY_CELLS}"
    tab = sh.worksheet("wide")
    with pytest.raises(gspread.exceptions.APIError, match="above the limit of 10000000 cells"):
        tab.resize(rows=101_000)
    with pytest.raises(gspread.exceptions.APIError, match="above the limit of 10000000 cells"):
        sh.sheet1.append_rows([["x"]] * 4000)
    assert [w.title for w in sh.worksheets()] == ["Sheet1", "wide"]


def test_request_bodies_over_10_mib_are_refused(ws: gspread.Worksheet) -> None:
    rows = [["z" * 40_000] for _ in range(270)]  # about 10.8 MB of JSON
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.append_rows(rows)
    assert _error(info) == {
        "code": 400,
        "message": "Request payload size exceeds the limit: 10485760 bytes.",
        "status": "INVALID_ARGUMENT",
    }
    ws.append_rows(rows[:200])  # the same connection keeps working, and 8 MB goes through
    assert len(ws.col_values(1)) == 200
