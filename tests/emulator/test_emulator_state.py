"""``state_path``: spreadsheets survive a restart; foreign files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sheetcache.emulator import SheetsEmulator, StateFileError


def test_everything_a_client_wrote_comes_back(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with SheetsEmulator(quota=False, state_path=state) as emu:
        gc = emu.client(user="owner")
        sh = gc.create("kept")
        ws = sh.sheet1
        ws.update([["text", "0042"]], "A1")
        ws.update([["0042", "=1+1"]], "A2", value_input_option="USER_ENTERED")
        ws.format("A1", {"textFormat": {"bold": True}})
        ws.update_note("B1", "a note")
        ws.freeze(rows=1)
        sh.add_worksheet("other", rows=3, cols=3)
        emu.restrict(sh.id, ["owner"])
    assert json.loads(state.read_text())["format"] == "sheetcache-emulator-state"
    with SheetsEmulator(quota=False, state_path=state) as emu:
        assert emu.get_values(sh.id) == [["text", "0042"], ["42", "2"]]
        assert emu.cell(sh.id, "Sheet1!B2").formula == "=1+1"
        assert emu.cell(sh.id, "Sheet1!A2").input_option == "USER_ENTERED"
        ws = emu.client(user="owner").open_by_key(sh.id).sheet1
        assert ws.frozen_row_count == 1
        assert ws.get_note("B1") == "a note"
        assert [w.title for w in ws.spreadsheet.worksheets()] == ["Sheet1", "other"]
        with pytest.raises(PermissionError):
            emu.client(user="stranger").open_by_key(sh.id)


def test_saved_in_the_background_without_a_stop(tmp_path: Path, wait_for) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "state.json"
    with SheetsEmulator(quota=False, state_path=state, save_interval=0.05) as emu:
        sid = emu.client().create("soon on disk").id
        wait_for(lambda: state.exists() and sid in state.read_text(), what="the state file")
        assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_other_versions_are_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps({"format": "sheetcache-emulator-state", "version": 99, "store": {}})
    )
    with pytest.raises(StateFileError, match="version 99"):
        SheetsEmulator(state_path=state).start()
    assert json.loads(state.read_text())["version"] == 99
