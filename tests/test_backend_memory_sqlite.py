"""The backend contract on the embedded stores, plus SQLite's own rules."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from backend_contract import BackendContract, ReopenContract, entry

from sheetcache import Cache, MemoryBackend, SchemaError, SQLiteBackend
from sheetcache._outbox import Outbox
from sheetcache._urls import default_url
from sheetcache.backends.sqlite import SCHEMA_VERSION, default_path


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> Iterator[MemoryBackend]:
        b = MemoryBackend()
        yield b
        b.close()


class TestSQLiteBackend(BackendContract, ReopenContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SQLiteBackend]:
        b = SQLiteBackend(tmp_path / "cache.db")
        yield b
        b.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Callable[[], SQLiteBackend]:
        return lambda: SQLiteBackend(tmp_path / "cache.db")


def test_sqlite_refuses_a_file_with_another_schema(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, answer TEXT)")
        conn.execute("INSERT INTO entries VALUES ('k', 'precious')")
    conn.close()
    with pytest.raises(SchemaError, match="was not changed"):
        SQLiteBackend(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT answer FROM entries").fetchall() == [("precious",)]
    conn.close()


def test_sqlite_refuses_a_newer_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    SQLiteBackend(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE sheetcache_meta SET value = '99' WHERE name = 'schema_version'")
    conn.close()
    with pytest.raises(SchemaError, match="version 99"):
        SQLiteBackend(path)


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my notes, not a database\n" * 100)
    with pytest.raises(SchemaError, match="not a sheetcache SQLite file"):
        SQLiteBackend(path)
    assert path.read_text().startswith("my notes")


def test_sqlite_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Cache("sqlite://relative.db") as rel:
        rel.set("q", "a")
    assert (tmp_path / "relative.db").exists()
    with Cache(f"sqlite:///{tmp_path}/abs.db") as absolute:
        absolute.set("q", "a")
    assert (tmp_path / "abs.db").exists()


def test_entry_from_dict_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="64-character"):
        type(entry(1)).from_dict({"key": "short", "value": "x"})


# -- opening safely ------------------------------------------------------------------------


def _open_and_store(path: str, n: int, barrier: Any, results: Any, kind: str = "store") -> None:
    barrier.wait()  # every process opens the brand-new file at the same moment
    try:
        if kind == "outbox":  # processes sharing one SHEETCACHE_DIR share one outbox file
            outbox = Outbox(path)
            outbox.append([entry(n)])
            outbox.close()
        else:
            backend = SQLiteBackend(path)
            backend.put_many([entry(n)])
            backend.close()
        results.put((n, "ok"))
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which names it
        results.put((n, f"{type(exc).__name__}: {exc}"))


@pytest.mark.parametrize("kind", ["store", "outbox"])
def test_concurrent_first_opens_of_a_new_file_all_succeed(tmp_path: Path, kind: str) -> None:
    ctx = multiprocessing.get_context("fork")
    for attempt in range(3):
        path = tmp_path / f"new-{attempt}.db"
        barrier, results = ctx.Barrier(8), ctx.Queue()
        procs = [
            ctx.Process(target=_open_and_store, args=(str(path), n, barrier, results, kind))
            for n in range(8)
        ]
        for p in procs:
            p.start()
        outcomes = dict(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        assert outcomes == {n: "ok" for n in range(8)}
        if kind == "outbox":
            outbox = Outbox(path)
            assert outbox.pending() == 8
            outbox.close()
        else:
            with SQLiteBackend(path) as backend:
                assert backend.count() == 8


def _foreign_file(path: Path, *, wal: bool) -> bytes:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('precious')")
    conn.commit()
    conn.close()
    assert not Path(f"{path}-wal").exists()
    return path.read_bytes()


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_a_foreign_sqlite_file_is_refused_byte_identical(tmp_path: Path, wal: bool) -> None:
    path = tmp_path / "app.db"
    before = _foreign_file(path, wal=wal)
    with pytest.raises(SchemaError, match="another application's tables \\(notes\\)"):
        SQLiteBackend(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, -shm, -journal
    with pytest.raises(SchemaError, match="was not changed"):
        Cache(f"sqlite:///{path}")  # an explicit URL still raises
    assert path.read_bytes() == before


def _filled_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHEETCACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SHEETCACHE_URL", raising=False)
    with Cache() as cache:
        for i in range(300):
            cache.set(f"question {i}", "x" * 500, model="m")
    path = tmp_path / "cache.db"
    assert path.stat().st_size > 100_000
    return path


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_broken_default_cache_fails_open_with_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = _filled_default_cache(tmp_path, monkeypatch)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"\x00junk" * 5000)
    broken = path.read_bytes()
    calls: list[str] = []
    with caplog.at_level(logging.ERROR, logger="sheetcache"), Cache(l1_size=0) as cache:
        for _ in range(3):
            assert cache.get_or_call("question 1", lambda p: calls.append(p) or "fresh") == "fresh"
    assert len(calls) == 3  # uncached, and never an exception
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "Move it aside" in errors[0] and str(path) in errors[0]
    assert "sheetcache doctor" in errors[0]
    assert path.read_bytes() == broken
    with pytest.raises(SchemaError, match="not a sheetcache SQLite file"):
        Cache(f"sqlite:///{path}")  # the same file named explicitly: refused, loudly


def test_default_path_agrees_with_the_default_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHEETCACHE_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("SHEETCACHE_URL", raising=False)
    assert default_url() == f"sqlite://{default_path()}"


_V1_SCHEMA = """
CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, value_type TEXT NOT NULL,
    namespace TEXT NOT NULL, prompt TEXT, key_parts TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL, hits INTEGER NOT NULL DEFAULT 0, last_hit_at REAL, duration REAL,
    status TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '');
CREATE TABLE sheetcache_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO sheetcache_meta VALUES ('schema_version', '1');
"""


def test_a_version_1_file_is_upgraded_and_keeps_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = entry(7, status="approved", note="checked", hits=3)
    conn = sqlite3.connect(path)
    conn.executescript(_V1_SCHEMA)
    conn.execute(
        "INSERT INTO entries VALUES (?, ?, 'str', 'default', ?, ?, ?, NULL, 3, NULL, 0.25, "
        "'approved', 'checked')",
        (old.key, old.value, orjson.dumps(old.prompt).decode(),
         orjson.dumps(old.key_parts).decode(), old.created_at),
    )  # fmt: skip
    conn.commit()
    conn.close()
    with SQLiteBackend(path) as backend:
        assert backend.get_many([old.key]) == {old.key: old}
        usage = {"usage": {"model": "gpt-4o", "input_tokens": 12, "output_tokens": 34}}
        backend.put_many([entry(8, metadata=usage)])
    with SQLiteBackend(path) as backend:
        assert backend.get_many([entry(8).key])[entry(8).key].metadata == usage
        assert backend.count() == 2
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM sheetcache_meta").fetchone() == (str(SCHEMA_VERSION),)
    conn.close()


def test_eight_processes_upgrading_one_version_1_file_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_V1_SCHEMA)
    conn.close()
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [
        ctx.Process(target=_open_and_store, args=(str(path), n, barrier, results)) for n in range(8)
    ]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == {n: "ok" for n in range(8)}
    with SQLiteBackend(path) as backend:
        assert backend.count() == 8


def test_metadata_survives_a_reopen(tmp_path: Path) -> None:
    meta = {"usage": {"model": "m", "input_tokens": 1, "output_tokens": 2}, "note": "\u2713"}
    with SQLiteBackend(tmp_path / "c.db") as backend:
        backend.put_many([entry(1, metadata=meta), entry(2)])
    with SQLiteBackend(tmp_path / "c.db") as backend:
        got = backend.get_many([entry(1).key, entry(2).key])
    assert got[entry(1).key].metadata == meta and got[entry(2).key].metadata == {}
