"""The cache-front and failure contracts on the embedded stores (memory, SQLite), and on a
network-like store that writes through the outbox."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backend_contract import FailureContract
from cache_contract import CacheContract, MakeCache
from switchable import SwitchableBackend

from sheetcache import Cache, MemoryBackend, SQLiteBackend


@pytest.fixture
def opened() -> Iterator[list[Cache]]:
    caches: list[Cache] = []
    yield caches
    for cache in caches:
        cache.close(timeout=10)


@pytest.fixture
def broken() -> Iterator[list[Cache]]:
    """Caches on a failing store: closed without waiting for a flush that cannot succeed."""
    caches: list[Cache] = []
    yield caches
    for cache in caches:
        cache.close(timeout=0.1)


class TestMemoryCache(CacheContract):
    @pytest.fixture
    def make_cache(self, opened: list[Cache]) -> MakeCache:
        backend = MemoryBackend()

        def make(**options: Any) -> Cache:
            opened.append(Cache(backend, **options))
            return opened[-1]

        return make


def _broken_sqlite(path: Path) -> SQLiteBackend:
    backend = SQLiteBackend(path)
    with sqlite3.connect(path) as conn:  # someone broke the file under the open store
        conn.execute("DROP TABLE entries")
    conn.close()
    return backend


class TestSQLiteCache(CacheContract, FailureContract):
    @pytest.fixture
    def make_cache(self, tmp_path: Path, opened: list[Cache]) -> MakeCache:
        def make(**options: Any) -> Cache:
            opened.append(Cache(f"sqlite:///{tmp_path}/cache.db", **options))
            return opened[-1]

        return make

    @pytest.fixture
    def broken_backend(self, tmp_path: Path) -> Iterator[SQLiteBackend]:
        backend = _broken_sqlite(tmp_path / "broken.db")
        yield backend
        backend.close()

    @pytest.fixture
    def broken_cache(self, tmp_path: Path, broken: list[Cache]) -> Cache:
        broken.append(Cache(_broken_sqlite(tmp_path / "broken.db")))
        return broken[-1]


class TestOutboxCache(CacheContract):
    """A store that is not local: every write goes through the outbox and the flusher."""

    @pytest.fixture
    def make_cache(self, tmp_path: Path, opened: list[Cache]) -> MakeCache:
        def make(**options: Any) -> Cache:
            backend = SwitchableBackend(tmp_path / "remote.db")
            opened.append(Cache(backend, outbox=tmp_path / "outbox.db", **options))
            return opened[-1]

        return make

    @pytest.fixture
    def broken_cache(self, tmp_path: Path, broken: list[Cache]) -> Cache:
        backend = SwitchableBackend(tmp_path / "down.db")
        backend.down = True
        broken.append(Cache(backend, outbox=tmp_path / "outbox-down.db"))
        return broken[-1]
