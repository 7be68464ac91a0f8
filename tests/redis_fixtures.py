"""Redis fixtures: a real ``redis-server`` per test session, a fresh key prefix per test.

Import the fixtures into a test module (``from redis_fixtures import redis_url_fixture``):
each is registered under the name without ``_fixture`` (``redis_url``), so test arguments
don't shadow the imported function.
Without ``redis-server`` on PATH the tests fail with the install command, unless
``SHEETCACHE_ALLOW_SKIP_REDIS=1`` is set, which turns that into a skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis_server import NOT_FOUND, RedisServer, find_redis_server

__all__ = [
    "new_redis_server",
    "redis_client_fixture",
    "redis_server_fixture",
    "redis_url_fixture",
    "require_redis_cli",
    "require_redis_server",
]


def require_redis_server() -> None:
    """Fail (or skip, if allowed) when ``redis-server`` is not installed."""
    if find_redis_server() is None:
        if os.environ.get("SHEETCACHE_ALLOW_SKIP_REDIS") == "1":
            pytest.skip(NOT_FOUND)
        pytest.fail(NOT_FOUND, pytrace=False)


def require_redis_cli() -> None:
    """Fail (or skip, if allowed) when ``redis-cli`` (it creates the test cluster) is missing."""
    require_redis_server()
    if shutil.which("redis-cli") is None:
        hint = "redis-cli not found: apt-get install redis-tools"
        if os.environ.get("SHEETCACHE_ALLOW_SKIP_REDIS") == "1":
            pytest.skip(hint)
        pytest.fail(hint, pytrace=False)


def new_redis_server(**options: object) -> RedisServer:
    """A server of the test's own (for outages and passwords); close it in a finally."""
    require_redis_server()
    return RedisServer(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    server = new_redis_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(name="redis_url")
def redis_url_fixture(redis_server: RedisServer) -> str:
    """A URL with a key prefix of its own: every test starts from an empty store."""
    return f"{redis_server.url}/0?prefix=t{uuid.uuid4().hex[:12]}"


@pytest.fixture(name="redis_client")
def redis_client_fixture(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client on the test server, to look at what the backend stored."""
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=0)
    yield client
    client.close()
