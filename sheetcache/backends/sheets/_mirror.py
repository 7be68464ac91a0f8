"""The local mirror: the entries this machine last read from the sheet, in SQLite.

The in-memory index holds keys and row numbers only; the entries themselves (prompts,
answers, notes) live here and a hit reads its entry from here (one indexed select, a few
microseconds), so a process's memory grows with the number of keys, not with the data.

It also lets a process that starts while Google is unreachable (offline laptop, outage,
revoked sharing) serve the answers it had. It is a cache of the sheet, never the truth.

One file per (server, spreadsheet, worksheet) is shared by the machine's processes. Each
row carries ``seen``, the time the sheet was read (or written) to learn it, and an upsert
only replaces a row learned no later: a process whose read is older than another's write
never puts an older answer back. Each process decides itself which keys to delete (the
ones it knew and a full read no longer finds), so it never deletes what another process
appended after its read. With ``?mirror=off`` the backend keeps a private, temporary
file instead, removed at close.

The file name carries the format version; a file of another version or shape is set aside
and rebuilt, since nothing in it is irreplaceable.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import orjson

from sheetcache._urls import data_dir
from sheetcache.backends.base import Entry

__all__ = ["MIRROR_VERSION", "Mirror", "mirror_path", "pack", "unpack"]

log = logging.getLogger("sheetcache")

MIRROR_VERSION = 2

_COLUMNS = ["key", "seen", "fp", "namespace", "wid", "entry"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key       TEXT PRIMARY KEY,
    seen      REAL NOT NULL,     -- when the sheet was read or written to learn this entry
    fp        INTEGER NOT NULL,  -- fingerprint of the entry (what changed is rewritten)
    namespace TEXT NOT NULL,
    wid       TEXT,              -- write id of the append that made the row, if any
    entry     BLOB NOT NULL      -- pack(entry)
) WITHOUT ROWID;
"""
_UPSERT = (
    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
    "seen = excluded.seen, fp = excluded.fp, namespace = excluded.namespace, "
    "wid = excluded.wid, entry = excluded.entry "
    "WHERE excluded.seen >= entries.seen AND (excluded.fp != entries.fp OR "
    "excluded.wid IS NOT entries.wid)"
)


def mirror_path(spreadsheet_id: str, tab: str, server: str) -> Path:
    """One mirror per (server, spreadsheet, worksheet), shared by this machine's processes."""
    digest = hashlib.sha256(f"{server}\n{spreadsheet_id}\n{tab}".encode()).hexdigest()[:16]
    return data_dir() / "sheets" / f"mirror-v{MIRROR_VERSION}-{digest}.db"


def pack(entry: Entry) -> bytes:
    """An entry as the mirror stores it: a JSON array in field order (no field names)."""
    return orjson.dumps(
        [
            entry.value, entry.value_type, entry.namespace, entry.prompt, entry.key_parts,
            entry.created_at, entry.expires_at, entry.hits, entry.last_hit_at, entry.duration,
            entry.status, entry.note, entry.metadata,
        ]
    )  # fmt: skip


def unpack(key: str, blob: bytes) -> Entry:
    """Inverse of :func:`pack`."""
    return Entry(key, *orjson.loads(blob))


class Mirror:
    """Entries by key, persisted.

    Thread-safe; every method may raise :class:`sqlite3.Error` (callers that can do without
    it log and go on).
    """

    def __init__(self, path: Path | None) -> None:
        self.private = path is None
        if path is None:
            fd, name = tempfile.mkstemp(prefix="sheetcache-mirror-", suffix=".db")
            os.close(fd)
            path = Path(name)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = self._connect()
        # Hits read through a connection of their own: in WAL mode a reader never waits for
        # a writer, so a hit does not queue behind a big load's upserts.
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")  # a cache of the sheet: a lost tail is re-read
        db.executescript(_SCHEMA)
        return db

    def _connect(self) -> sqlite3.Connection:
        try:
            db = self._open()
            columns = [r[1] for r in db.execute("PRAGMA table_info(entries)")]
            if columns != _COLUMNS:
                db.close()
                raise sqlite3.DatabaseError(f"unexpected columns {columns}")
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_suffix(".unreadable")
            log.warning("sheetcache: the Sheets mirror %s is unreadable (%s); moved to %s and "
                        "rebuilt from the sheet", self.path, exc, aside)  # fmt: skip
            self.path.replace(aside)
            db = self._open()
        return db

    # -- reads (the hit path) -------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The mirrored entry of ``key``, or None."""
        with self._read_lock:
            row = self._reader.execute("SELECT entry FROM entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else unpack(key, row[0])

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            with self._lock:
                rows = self._db.execute(
                    f"SELECT key, entry FROM entries WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            for key, blob in rows:
                out[key] = unpack(key, blob)
        return out

    def write_ids(self, keys: Sequence[str]) -> dict[str, str | None]:
        """Key -> the write id of its mirrored row, for the keys present."""
        out: dict[str, str | None] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            with self._lock:
                rows = self._db.execute(
                    f"SELECT key, wid FROM entries WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            out.update(rows)
        return out

    def iter_keys(self, keys: Iterable[str], batch: int = 500) -> Iterator[Entry]:
        """The entries of ``keys`` (those present), a batch at a time: bounded memory."""
        chunk: list[str] = []
        for key in keys:
            chunk.append(key)
            if len(chunk) >= batch:
                yield from self.get_many(chunk).values()
                chunk = []
        if chunk:
            yield from self.get_many(chunk).values()

    def all_keys(self) -> list[str]:
        """Every mirrored key (to serve from while the sheet is unreachable)."""
        with self._lock:
            return [k for (k,) in self._db.execute("SELECT key FROM entries")]

    def namespaces(self, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            with self._lock:
                out.update(self._db.execute(
                    f"SELECT key, namespace FROM entries WHERE key IN "
                    f"({','.join('?' * len(chunk))})", chunk,
                ).fetchall())  # fmt: skip
        return out

    # -- writes ---------------------------------------------------------------------------

    def upsert(self, rows: Sequence[tuple[str, float, int, str, str | None, bytes]]) -> None:
        """Write ``(key, seen, fp, namespace, wid, pack(entry))`` rows.

        Each only over a row learned no later, and only if it differs.
        """
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_UPSERT, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, keys: Iterable[str], before: float | None = None) -> None:
        """Delete ``keys`` (only rows learned before ``before``, if given)."""
        params = [(k,) if before is None else (k, before) for k in keys]
        if not params:
            return
        sql = "DELETE FROM entries WHERE key = ?" + ("" if before is None else " AND seen < ?")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(sql, params)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()
        if self.private:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{self.path}{suffix}")


def entry_row(
    entry: Entry, seen: float, fp: int, wid: str | None, blob: bytes
) -> tuple[str, float, int, str, str | None, bytes]:
    """The :meth:`Mirror.upsert` row of ``entry``."""
    return (entry.key, seen, fp, entry.namespace, wid, blob)
