"""A real SQLite store that behaves like a network store, with an on/off switch.

Writes go through the cache's outbox (``local = False``), and the store can be "down":
every call raises ConnectionError, either by attribute or, across processes, while a marker
file exists. It is SQLite underneath, not a mock: what lands is really on disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from sheetcache import Entry, SQLiteBackend


class SwitchableBackend(SQLiteBackend):
    local = False
    lookup_is_local = False
    flush_interval = 0.05

    def __init__(self, path: Path, down_file: Path | None = None) -> None:
        super().__init__(path)
        self.url = f"switchable://{path}"
        self.down = False
        self.writes_down = False  # reads work, writes fail
        self.down_file = down_file
        self.put_calls = 0

    def _check(self) -> None:
        if self.down or (self.down_file is not None and self.down_file.exists()):
            raise ConnectionError("store unreachable (test switch is off)")

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        self._check()
        return super().get_many(keys)

    def lookup(self, key: str) -> Entry | None:
        self._check()
        return super().lookup(key)

    def put_many(self, entries: Sequence[Entry]) -> None:
        self._check()
        if self.writes_down:
            raise ConnectionError("store refuses writes (test switch)")
        self.put_calls += 1
        super().put_many(entries)

    def record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        self._check()
        if self.writes_down:
            raise ConnectionError("store refuses writes (test switch)")
        super().record_hits(hits)

    def iter_entries(self, namespace: str | None = None) -> Iterator[Entry]:
        self._check()
        return super().iter_entries(namespace)
