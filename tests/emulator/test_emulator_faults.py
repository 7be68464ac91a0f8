"""Fault injection: latency, failing statuses, dropped connections, lost responses, outages."""

from __future__ import annotations

import time

import gspread
import pytest
import requests

from sheetcache.emulator import SheetsEmulator


def test_latency_is_added_to_every_request(emu: SheetsEmulator, ws: gspread.Worksheet) -> None:
    emu.faults.latency_ms = 150
    started = time.perf_counter()
    ws.acell("A1")
    assert time.perf_counter() - started >= 0.15
    assert emu.requests[-1].duration >= 0.15
    emu.faults.latency_ms = 0


def test_fail_next_answers_googles_error_and_applies_nothing(
    emu: SheetsEmulator, ws: gspread.Worksheet
) -> None:
    emu.faults.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(gspread.exceptions.APIError) as info:
            ws.update([["lost"]], "A1")
        assert info.value.response.json() == {
            "error": {
                "code": 503,
                "message": "The service is currently unavailable.",
                "status": "UNAVAILABLE",
            }
        }
    assert ws.get_values("A1") == [[]]
    assert [r.fault for r in emu.requests[-3:]] == ["fail", "fail", None]
    emu.faults.fail_next(1, status=500)
    with pytest.raises(gspread.exceptions.APIError, match="Internal error encountered"):
        ws.acell("A1")


def test_injected_429_looks_like_a_quota_refusal(
    emu: SheetsEmulator, ws: gspread.Worksheet
) -> None:
    emu.faults.fail_next(1, status=429, methods="write")
    ws.acell("A1")  # a read does not match the rule
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.update([["x"]], "A1")
    error = info.value.response.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert emu.faults.pending == []


def test_dropped_connection_applies_nothing(emu: SheetsEmulator, ws: gspread.Worksheet) -> None:
    emu.faults.drop_next(1, methods=["POST"])
    with pytest.raises(requests.exceptions.ConnectionError):
        ws.append_row(["dropped"])
    assert ws.get_values() == [[]]
    record = next(r for r in emu.requests if r.fault == "drop")
    assert (record.method, record.status) == ("POST", None)
    ws.append_row(["after"])
    assert ws.get_values() == [["after"]]


def test_lost_response_commits_the_write_so_a_naive_retry_duplicates(
    emu: SheetsEmulator, ws: gspread.Worksheet
) -> None:
    emu.faults.lose_response_next(1, methods="write")
    with pytest.raises(requests.exceptions.ConnectionError):
        ws.append_row(["k1", "v1"])
    assert ws.get_values() == [["k1", "v1"]]  # applied although the client saw an error
    ws.append_row(["k1", "v1"])  # the naive retry
    assert ws.get_values() == [["k1", "v1"], ["k1", "v1"]]
    assert [r.fault for r in emu.requests if r.kind == "write"][-2:] == ["lose_response", None]


def test_outage_until_cleared(emu: SheetsEmulator, ws: gspread.Worksheet) -> None:
    emu.faults.outage(status=503)
    for _ in range(3):
        with pytest.raises(gspread.exceptions.APIError, match="503"):
            ws.acell("A1")
    emu.faults.clear()
    assert ws.acell("A1").value is None


def test_faults_affect_drive_calls_too(emu: SheetsEmulator, gc: gspread.Client) -> None:
    emu.faults.drop_next(1)
    with pytest.raises(requests.exceptions.ConnectionError):
        gc.create("never")
    assert emu.spreadsheet_ids() == []
    assert gc.create("later").title == "later"
