"""The cache-front contract on the network stores: a real redis-server, and the Sheets
emulator over HTTP (gspread unmodified); plus Redis's failure contract and the Sheets
change notifications."""

# ruff: noqa: F811  (fixtures imported from the fixture modules are used as parameters)

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backend_contract import ChangeNotificationContract, FailureContract
from cache_contract import CacheContract, MakeCache
from redis_fixtures import (  # noqa: F401 - fixtures
    new_redis_server,
    redis_server_fixture,
    redis_url_fixture,
)
from sheets_fixtures import Sheet, emulator, sheet  # noqa: F401 - fixtures

from sheetcache import Backend, Cache
from sheetcache.backends.redis import RedisBackend


@pytest.fixture
def opened() -> Iterator[list[Cache]]:
    caches: list[Cache] = []
    yield caches
    for cache in caches:
        cache.close(timeout=10)


@pytest.fixture
def stopped_redis_url() -> Iterator[str]:
    """The URL of a redis-server that ran and then went away."""
    server = new_redis_server()
    url = f"{server.url}/0"
    try:
        yield url
    finally:
        server.close()


class TestRedisCache(CacheContract, FailureContract):
    @pytest.fixture
    def make_cache(self, redis_url: str, tmp_path: Path, opened: list[Cache]) -> MakeCache:
        def make(**options: Any) -> Cache:
            opened.append(Cache(redis_url, outbox=tmp_path / "outbox.db", **options))
            return opened[-1]

        return make

    @pytest.fixture
    def broken_backend(self) -> Iterator[Backend]:
        server = new_redis_server()
        backend = RedisBackend.from_url(f"{server.url}/0")
        backend.lookup("0" * 64)  # it works...
        server.close()  # ...until the server goes away
        yield backend
        backend.close()

    @pytest.fixture
    def broken_cache(self, tmp_path: Path) -> Iterator[Cache]:
        server = new_redis_server()
        cache = Cache(f"{server.url}/0", outbox=tmp_path / "outbox-down.db")
        server.close()
        yield cache
        cache.close(timeout=0.1)


class TestSheetsCache(CacheContract, ChangeNotificationContract):
    @pytest.fixture
    def make_cache(self, sheet: Sheet, tmp_path: Path, opened: list[Cache]) -> MakeCache:
        def make(**options: Any) -> Cache:
            opened.append(Cache(sheet.url, outbox=tmp_path / "outbox.db", **options))
            return opened[-1]

        return make

    @pytest.fixture
    def backend(self, sheet: Sheet) -> Iterator[Backend]:
        from sheetcache.backends.sheets import SheetsBackend

        b = SheetsBackend.from_url(sheet.url)
        yield b
        b.close()

    @pytest.fixture
    def reopen(self, sheet: Sheet) -> Callable[[], Backend]:
        from sheetcache.backends.sheets import SheetsBackend

        return lambda: SheetsBackend.from_url(sheet.url)
