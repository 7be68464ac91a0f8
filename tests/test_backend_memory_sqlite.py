"""The backend contract on the embedded stores, plus SQLite's own rules."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backend_contract import BackendContract, ReopenContract, entry

from sheetcache import Cache, MemoryBackend, SchemaError, SQLiteBackend


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
