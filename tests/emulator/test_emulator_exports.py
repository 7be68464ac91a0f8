"""The public surface of ``sheetcache.emulator`` is pinned."""

from __future__ import annotations

import sheetcache.emulator as emulator


def test_all_is_sorted_and_exact() -> None:
    assert emulator.__all__ == sorted(emulator.__all__)
    assert emulator.__all__ == [
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
    for name in emulator.__all__:
        assert getattr(emulator, name).__module__.startswith("sheetcache.emulator")
