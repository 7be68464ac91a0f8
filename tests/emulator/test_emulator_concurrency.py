"""Concurrent writers: no lost rows, no interleaving within a request."""

from __future__ import annotations

import threading

from sheetcache.emulator import SheetsEmulator

THREADS = 6
APPENDS = 15
ROWS_PER_APPEND = 5


def test_concurrent_appends_lose_nothing_and_never_interleave(emu: SheetsEmulator) -> None:
    sid = emu.create_spreadsheet("concurrent")
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def writer(n: int) -> None:
        try:
            ws = emu.client(user=f"writer-{n}").open_by_key(sid).sheet1
            start.wait()
            for a in range(APPENDS):
                ws.append_rows([[f"w{n}", f"a{a}", f"r{r}"] for r in range(ROWS_PER_APPEND)])
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = emu.get_values(sid)
    assert len(rows) == THREADS * APPENDS * ROWS_PER_APPEND
    assert len({tuple(r) for r in rows}) == len(rows)
    # Each request's rows landed together and in order.
    for i in range(0, len(rows), ROWS_PER_APPEND):
        block = rows[i : i + ROWS_PER_APPEND]
        assert {(r[0], r[1]) for r in block} == {(block[0][0], block[0][1])}
        assert [r[2] for r in block] == [f"r{k}" for k in range(ROWS_PER_APPEND)]


def test_concurrent_readers_and_writers_see_whole_requests(emu: SheetsEmulator) -> None:
    sid = emu.create_spreadsheet("mixed")
    width = 8
    stop = threading.Event()
    torn: list[list[str]] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            ws = emu.client(user="writer").open_by_key(sid).sheet1
            for i in range(40):
                ws.update([[f"v{i}"] * width], "A1")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            stop.set()

    def reader() -> None:
        try:
            ws = emu.client(user="reader").open_by_key(sid).sheet1
            while not stop.is_set():
                row = ws.row_values(1)
                if row and len(set(row)) != 1:
                    torn.append(row)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and torn == []
    assert emu.get_values(sid) == [["v39"] * width]
