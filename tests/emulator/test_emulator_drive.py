"""Drive v3 calls gspread makes: create, list, open, delete, share, copy, export, import."""

from __future__ import annotations

import gspread
import pytest
from gspread.utils import ExportFormat

from sheetcache.emulator import SheetsEmulator


def test_create_open_list_delete(gc: gspread.Client) -> None:
    sh = gc.create("ledger")
    other = gc.create("other")
    assert sh.title == "ledger" and sh.sheet1.title == "Sheet1"
    assert gc.open("ledger").id == sh.id
    assert gc.open_by_key(sh.id).title == "ledger"
    assert gc.open_by_url(sh.url).id == sh.id
    files = gc.list_spreadsheet_files()
    assert {f["id"] for f in files} == {sh.id, other.id}
    assert set(files[0]) == {"id", "name", "createdTime", "modifiedTime"}
    assert [f["id"] for f in gc.list_spreadsheet_files(title="other")] == [other.id]
    meta = gc.get_file_drive_metadata(sh.id)
    assert meta["name"] == "ledger" and meta["createdTime"].endswith("Z")
    gc.del_spreadsheet(sh.id)
    with pytest.raises(gspread.SpreadsheetNotFound):
        gc.open("ledger")
    with pytest.raises(gspread.exceptions.APIError) as info:
        gc.del_spreadsheet(sh.id)
    error = info.value.response.json()["error"]
    assert error["message"] == f"File not found: {sh.id}."
    assert error["errors"][0]["reason"] == "notFound"


def test_drive_delete_answers_204(emu: SheetsEmulator) -> None:
    sid = emu.create_spreadsheet("gone")
    response = emu.session().delete(f"https://www.googleapis.com/drive/v3/files/{sid}")
    assert (response.status_code, response.content) == (204, b"")
    assert emu.spreadsheet_ids() == []


def test_list_hides_what_is_not_shared(emu: SheetsEmulator) -> None:
    mine = emu.create_spreadsheet("mine", owner="alice")
    theirs = emu.create_spreadsheet("theirs", owner="bob")
    emu.restrict(theirs, ["bob"])
    assert [f["id"] for f in emu.client(user="alice").list_spreadsheet_files()] == [mine]
    with pytest.raises(gspread.exceptions.APIError, match="File not found"):
        emu.client(user="alice").get_file_drive_metadata(theirs)


def test_share_records_permissions_and_grants_access(emu: SheetsEmulator) -> None:
    owner = emu.client(user="owner@example.com")
    sh = owner.create("shared")
    emu.restrict(sh.id, ["owner@example.com"])
    with pytest.raises(PermissionError):
        emu.client(user="friend@example.com").open_by_key(sh.id)
    sh.share("friend@example.com", perm_type="user", role="writer", notify=False)
    perms = sh.list_permissions()
    assert [(p["role"], p.get("emailAddress")) for p in perms] == [
        ("owner", "owner@example.com"),
        ("writer", "friend@example.com"),
    ]
    emu.client(user="friend@example.com").open_by_key(sh.id).sheet1.update([["hi"]], "A1")
    sh.remove_permissions("friend@example.com")
    with pytest.raises(PermissionError):
        emu.client(user="friend@example.com").open_by_key(sh.id)


def test_copy_export_and_import_csv(gc: gspread.Client) -> None:
    sh = gc.create("source")
    sh.sheet1.update([["a", 1], ["b", 2]], "A1")
    copy = gc.copy(sh.id, title="copy")
    assert copy.sheet1.get_values() == [["a", "1"], ["b", "2"]]
    assert gc.export(sh.id, ExportFormat.CSV) == b"a,1\r\nb,2\r\n"
    gc.import_csv(copy.id, "x,y\n0042,=1+1\n")
    assert copy.sheet1.get_values() == [["x", "y"], ["42", "2"]]
