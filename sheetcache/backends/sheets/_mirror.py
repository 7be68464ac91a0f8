"""The local mirror: the last sheet contents this machine saw, in SQLite.

It exists so a process that starts while Google is unreachable (offline laptop, outage,
revoked sharing) still serves the answers it had. It is a cache of the sheet, never the
truth: every successful load from Sheets replaces it. The file name carries the format
version; a file of another version is set aside and rebuilt, since nothing in it is
irreplaceable.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from pathlib import Path

import orjson

from sheetcache._urls import data_dir
from sheetcache.backends.base import Entry

__all__ = ["MIRROR_VERSION", "Mirror", "mirror_path"]

log = logging.getLogger("sheetcache")

MIRROR_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key   TEXT PRIMARY KEY,
    row   INTEGER NOT NULL,   -- sheet row (1-based) of the entry's winning row when read
    entry BLOB NOT NULL       -- Entry.to_dict() as JSON
);
CREATE TABLE IF NOT EXISTS mirror_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def mirror_path(spreadsheet_id: str, tab: str, server: str) -> Path:
    """One mirror per (server, spreadsheet, worksheet), shared by this machine's processes."""
    digest = hashlib.sha256(f"{server}\n{spreadsheet_id}\n{tab}".encode()).hexdigest()[:16]
    return data_dir() / "sheets" / f"mirror-v{MIRROR_VERSION}-{digest}.db"


class Mirror:
    """Entries and their sheet rows, persisted. Thread-safe; every method may raise
    :class:`sqlite3.Error`, which callers log and ignore (the mirror is an optimisation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._written: dict[str, tuple[Entry, int]] | None = None  # None: not read yet
        self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            columns = [r[1] for r in db.execute("PRAGMA table_info(entries)")]
            if columns != ["key", "row", "entry"]:
                raise sqlite3.DatabaseError(f"unexpected columns {columns}")
        except sqlite3.DatabaseError as exc:
            db.close()
            aside = self.path.with_suffix(".unreadable")
            log.warning("sheetcache: the Sheets mirror %s is unreadable (%s); moved to %s and "
                        "rebuilt from the sheet", self.path, exc, aside)  # fmt: skip
            self.path.replace(aside)
            db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        return db

    def load(self) -> dict[str, tuple[Entry, int]]:
        """Every mirrored entry with its row; what :meth:`sync` diffs against next."""
        with self._lock:
            rows = self._db.execute("SELECT row, entry FROM entries").fetchall()
        out: dict[str, tuple[Entry, int]] = {}
        for row, blob in rows:
            try:
                entry = Entry.from_dict(orjson.loads(blob))
            except ValueError:
                continue
            out[entry.key] = (entry, row)
        self._written = dict(out)
        return out

    def sync(self, entries: dict[str, Entry], rows: dict[str, int]) -> int:
        """Make the mirror hold ``entries`` (at ``rows``), writing only what changed since
        the last sync; returns the rows written or deleted."""
        written = self._written if self._written is not None else self.load()
        upserts = []
        for key, entry in entries.items():
            old = written.get(key)
            row = rows.get(key, 0)
            if old is None or old[1] != row or (old[0] is not entry and old[0] != entry):
                upserts.append((key, row, orjson.dumps(entry)))  # orjson reads dataclasses
        gone = [(key,) for key in written if key not in entries]
        if upserts or gone:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("DELETE FROM entries WHERE key = ?", gone)
                    self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", upserts)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        self._written = {key: (entry, rows.get(key, 0)) for key, entry in entries.items()}
        return len(upserts) + len(gone)

    def close(self) -> None:
        with self._lock:
            self._db.close()
