"""A Google Sheets API emulator for offline tests: real HTTP, unmodified gspread.

Google's servers are out of reach wherever sheetcache is built, so its Sheets backend is tested
against this: same paths, JSON shapes, limits, errors and per-minute quotas as Google's, plus
fault injection (latency, failing statuses, dropped connections, writes whose response is
lost). Use it for your own tests too, the way moto stands in for AWS::

    from sheetcache.emulator import SheetsEmulator

    with SheetsEmulator() as emu:         # 127.0.0.1, a free port, a background thread
        gc = emu.client()                 # a gspread.Client routed to the emulator
        ws = gc.create("cache").sheet1
        ws.append_row(["key", "value"])
        emu.faults.fail_next(1, status=503)

Code that builds its own gspread client takes an endpoint instead:
``routed_client("http://127.0.0.1:8765", user="alice")``.

What is and is not emulated is listed in ``docs/emulator.md``.
"""

from sheetcache.emulator._emulator import CellInfo, SheetsEmulator
from sheetcache.emulator._faults import Fault, Faults
from sheetcache.emulator._persist import StateFileError
from sheetcache.emulator._quota import ManualClock, Quota, QuotaLimits
from sheetcache.emulator._server import RequestRecord
from sheetcache.emulator._transport import (
    EmulatorAdapter,
    EmulatorCredentials,
    routed_client,
    routed_session,
)

__all__ = [
    "CellInfo",
    "EmulatorAdapter",
    "EmulatorCredentials",
    "Fault",
    "Faults",
    "ManualClock",
    "Quota",
    "QuotaLimits",
    "RequestRecord",
    "SheetsEmulator",
    "StateFileError",
    "routed_client",
    "routed_session",
]
