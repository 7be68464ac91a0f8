"""A SQLite store that the cache treats as a network store (writes go through the outbox),
so the benchmark can measure the outbox path without a server."""

from __future__ import annotations

from sheetcache import SQLiteBackend


class OutboxedSQLite(SQLiteBackend):
    local = False
    flush_interval = 0.5
