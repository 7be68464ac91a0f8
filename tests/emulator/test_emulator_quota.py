"""Per-minute quotas: separate read and write buckets, per user and per project, Google's 429."""

from __future__ import annotations

import gspread
import pytest

from sheetcache.emulator import ManualClock, QuotaLimits, SheetsEmulator


def _read(client: gspread.Client, sid: str) -> gspread.exceptions.APIError | None:
    try:
        client.http_client.values_get(sid, "A1")
    except gspread.exceptions.APIError as exc:
        return exc
    return None


def test_sixty_reads_a_minute_per_user_then_googles_429(
    quota_emu: SheetsEmulator, clock: ManualClock
) -> None:
    sid = quota_emu.create_spreadsheet("q")
    alice = quota_emu.client(user="alice")
    assert all(_read(alice, sid) is None for _ in range(60))
    refused = _read(alice, sid)
    assert refused is not None and refused.response.status_code == 429
    body = refused.response.json()["error"]
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert body["message"] == (
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute "
        "per user' of service 'sheets.googleapis.com' for consumer 'project_number:123456789012'."
    )
    info = body["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (info["reason"], info["domain"]) == ("RATE_LIMIT_EXCEEDED", "googleapis.com")
    assert info["metadata"] == {
        "quota_location": "global",
        "quota_metric": "sheets.googleapis.com/read_requests",
        "quota_limit": "ReadRequestsPerMinutePerUser",
        "quota_limit_value": "60",
        "consumer": "projects/123456789012",
        "service": "sheets.googleapis.com",
    }
    assert body["details"][1]["@type"] == "type.googleapis.com/google.rpc.Help"
    # Writes have their own bucket; so does every other user.
    alice.http_client.values_update(
        sid, "A1", params={"valueInputOption": "RAW"}, body={"values": [["w"]]}
    )
    assert _read(quota_emu.client(user="bob"), sid) is None
    clock.advance(30)
    assert _read(alice, sid) is not None
    clock.advance(31)  # the window slides: a minute after the first reads, they are forgotten
    assert _read(alice, sid) is None


def test_writes_are_limited_separately(quota_emu: SheetsEmulator) -> None:
    ws = quota_emu.client().create("w").sheet1
    quota_emu.reset_quota()
    for i in range(60):
        ws.update([[i]], "A1")
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.update([["one more"]], "A1")
    metadata = info.value.response.json()["error"]["details"][0]["metadata"]
    assert metadata["quota_limit"] == "WriteRequestsPerMinutePerUser"
    assert metadata["quota_metric"] == "sheets.googleapis.com/write_requests"
    assert ws.acell("A1").value == "59"  # reads still pass, and the refused write changed nothing
    assert quota_emu.quota.used("write", "emulator-user") == 60


def test_project_limit_spans_users(clock: ManualClock) -> None:
    limits = QuotaLimits(read_per_user=3, write_per_user=3, read_per_project=5, write_per_project=5)
    with SheetsEmulator(quota=limits, clock=clock) as emu:
        sid = emu.create_spreadsheet("p")
        users = [emu.client(user=name) for name in ("a", "b")]
        outcomes = [_read(users[i % 2], sid) for i in range(6)]
        assert [o is None for o in outcomes] == [True] * 5 + [False]
        last = outcomes[-1]
        assert last is not None
        error = last.response.json()["error"]
        assert "limit 'Read requests per minute' of service" in error["message"]
        assert error["details"][0]["metadata"]["quota_limit"] == "ReadRequestsPerMinutePerProject"
        emu.reset_quota()
        assert _read(users[0], sid) is None


def test_quota_off_and_drive_never_counted(clock: ManualClock) -> None:
    with SheetsEmulator(quota=QuotaLimits(read_per_user=1, write_per_user=1), clock=clock) as emu:
        gc = emu.client()
        for _ in range(5):
            gc.list_spreadsheet_files()  # Drive calls do not use the Sheets quota
        sid = emu.create_spreadsheet("x")
        assert _read(gc, sid) is None
        assert _read(gc, sid) is not None
        emu.quota.enabled = False
        assert all(_read(gc, sid) is None for _ in range(5))
