"""``sqlite:///abs/path.db`` / ``sqlite://relative.db``: the embedded default store.

One table, versioned in ``sheetcache_meta``. WAL mode lets several processes read while one
writes; each thread gets its own connection.

Before anything is written, an existing file is inspected read-only (its header, then its
tables through an ``immutable`` connection that creates no ``-wal``/``-shm`` files): a file
that is not SQLite, is truncated, is corrupt or belongs to another application is refused
with :class:`~sheetcache.SchemaError` and left byte-identical. A version-1 file (before
``metadata``) is upgraded in place by adding the column; a newer version is refused.

The *default* cache file (``Cache()`` with no URL) fails open instead: a broken file there
must not stop a program at start-up, so the backend logs one error saying what to do and
serves no hits until the file is moved aside (see :attr:`SQLiteBackend.unusable`).
"""

from __future__ import annotations

import logging
import os
import shlex
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from sheetcache._errors import BackendError, ConfigError, SchemaError
from sheetcache.backends.base import Backend, Entry, chunks

__all__ = ["SCHEMA_VERSION", "SQLiteBackend", "default_path"]

log = logging.getLogger("sheetcache")

SCHEMA_VERSION = 2

_COLUMNS = (
    "key", "value", "value_type", "namespace", "prompt", "key_parts", "created_at",
    "expires_at", "hits", "last_hit_at", "duration", "status", "note", "metadata",
)  # fmt: skip

# Columns each older version had, and the statements that bring it to the next version.
_V1_COLUMNS = _COLUMNS[:-1]
_UPGRADES = {1: ("ALTER TABLE entries ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'",)}

_SCHEMA = """
CREATE TABLE entries (
    key         TEXT PRIMARY KEY,   -- sha256 hex of the canonical key JSON
    value       TEXT NOT NULL,      -- the answer as text
    value_type  TEXT NOT NULL,      -- how to decode value (sheetcache._codec)
    namespace   TEXT NOT NULL,
    prompt      TEXT,               -- JSON, as given
    key_parts   TEXT NOT NULL,      -- JSON
    created_at  REAL NOT NULL,
    expires_at  REAL,
    hits        INTEGER NOT NULL DEFAULT 0,
    last_hit_at REAL,
    duration    REAL,
    status      TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    metadata    TEXT NOT NULL DEFAULT '{}'  -- JSON facts about the call (usage), since v2
);
CREATE TABLE sheetcache_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERT = f"INSERT OR REPLACE INTO entries ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM entries"
# The hit path skips prompt and key_parts: decoding them would cost more than the select.
# metadata stays, for the savings a hit counts; it is parsed only when not empty.
_LOOKUP = (
    "SELECT key, value, value_type, namespace, created_at, expires_at, hits, last_hit_at, "
    "duration, status, note, metadata FROM entries WHERE key = ?"
)
_MAGIC = b"SQLite format 3\x00"
_T = TypeVar("_T")


def _row_to_entry(row: Sequence[Any]) -> Entry:
    entry = Entry(
        row[0], row[1], row[2], row[3],
        None if row[4] is None else orjson.loads(row[4]),
        orjson.loads(row[5]),
        *row[6:13],
    )  # fmt: skip
    if row[13] and row[13] != "{}":
        entry.metadata = orjson.loads(row[13])
    return entry


def _entry_to_row(e: Entry) -> tuple[Any, ...]:
    return (
        e.key, e.value, e.value_type, e.namespace,
        None if e.prompt is None else orjson.dumps(e.prompt).decode(),
        orjson.dumps(e.key_parts or {}).decode(),
        e.created_at, e.expires_at, e.hits, e.last_hit_at, e.duration, e.status, e.note,
        orjson.dumps(e.metadata).decode() if e.metadata else "{}",
    )  # fmt: skip


def path_from_url(url: str) -> Path:
    """``sqlite:///abs/x.db`` is absolute, ``sqlite://x.db`` relative to the working dir."""
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if not rest or rest == "/":
        raise ConfigError(
            f"{url!r} names no file: use sqlite:///absolute/path.db or sqlite://relative.db"
        )
    return Path(os.path.expanduser(rest))


def default_path() -> Path:
    """The file ``Cache()`` uses without a URL: ``cache.db`` in ``$SHEETCACHE_DIR`` or the
    user cache dir. Mirrors ``sheetcache._urls`` (a test pins that they agree); repeated here
    because a backend must not import the layer above it.
    """
    env = os.environ.get("SHEETCACHE_DIR")
    if env:
        return (Path(env).expanduser() / "cache.db").absolute()
    from platformdirs import user_cache_dir

    return (Path(user_cache_dir("sheetcache")) / "cache.db").absolute()


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def retry_busy(
    fn: Callable[[], _T], timeout: float, on_retry: Callable[[], None] | None = None
) -> _T:
    """Run ``fn``, retrying for up to ``timeout`` s while another process holds a lock that
    SQLite's busy handler does not wait on (switching a new file to WAL returns SQLITE_BUSY
    at once, so several processes opening one new file would otherwise fail).

    Raises:
        sqlite3.OperationalError: not a lock, or still locked at the deadline.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
            if on_retry is not None:
                on_retry()
            time.sleep(delay)  # back-off between attempts, not synchronisation
            delay = min(delay * 2, 0.1)


class SQLiteBackend(Backend):
    """Entries in a local SQLite file (WAL, ``synchronous=NORMAL``: survives a killed process).

    Args:
        path: the database file; its folder is created if missing.
        timeout: seconds to wait for another process's lock (first opens included).
        fail_open: if the file can't be used (not a sheetcache file, corrupt, truncated),
            log one error and behave as an empty store that keeps nothing, instead of
            raising. ``from_url`` sets it for the default cache file only.

    Raises:
        SchemaError: the file is not a sheetcache database of a version this one reads;
            it was not changed (not with ``fail_open``).
    """

    local = True
    lookup_is_local = True

    unusable: SchemaError | None = None
    """Why the file can't be used, when opened with ``fail_open``; None when it works."""

    _why = ""

    @property
    def reason(self) -> str:
        """Why the file was refused, in a few words ("it is truncated (...)")."""
        return self._why or str(self.unusable or "")

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 30.0, fail_open: bool = False
    ) -> None:
        self.path = Path(path)
        # sqlite:// + "/abs/path" gives the documented sqlite:///abs/path form.
        self.url = f"sqlite://{self.path}"
        self._timeout = timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        try:
            self._inspect()  # refuse before touching: nothing is written until this passes
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._retry_busy(lambda: self._prepare(self._conn()))
        except SchemaError as exc:
            if not fail_open:
                self.close()
                raise
            self._disable(exc)

    @classmethod
    def from_url(cls, url: str) -> SQLiteBackend:
        path = path_from_url(url)
        return cls(path, fail_open=path.absolute() == default_path())

    # -- opening -----------------------------------------------------------------------

    def _inspect(self) -> None:
        """Refuse a file that is not ours, reading only: no lock, no journal, no WAL files."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:  # new, or being created by another process right now
            return
        with self.path.open("rb") as f:
            header = f.read(100)
        if not header.startswith(_MAGIC):
            raise self._refusal("it is not an SQLite database")
        if len(header) < 100:
            raise self._refusal(f"it is truncated ({size} bytes)")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        # The page count is valid when the two change counters agree (SQLite file format 1.3).
        if header[24:28] == header[92:96] and size < pages * page_size:
            raise self._refusal(
                f"it is truncated ({size} bytes where its header says {pages * page_size})"
            )
        tables = self._tables_read_only()
        if tables and not {"entries", "sheetcache_meta"} <= tables:
            raise self._refusal(
                f"it holds another application's tables ({', '.join(sorted(tables))})"
            )

    def _tables_read_only(self) -> set[str]:
        wal = Path(f"{self.path}-wal")
        # immutable=1 takes no lock and creates no -wal/-shm; with a -wal present (the file
        # is open elsewhere) read through it instead, or recent changes would be missed.
        attempts = ["mode=ro"] if wal.exists() else ["immutable=1", "mode=ro"]
        last: sqlite3.Error | None = None
        for flag in attempts:
            try:
                conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?{flag}", uri=True)
            except sqlite3.Error as exc:
                last = exc
                continue
            try:
                rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                return {r[0] for r in rows}
            except sqlite3.Error as exc:
                if _is_busy(exc):
                    return {"entries", "sheetcache_meta"}  # in use: _prepare decides, locked
                # An immutable read can see a checkpoint half-written; look once more, locked.
                last = exc
            finally:
                conn.close()
        raise self._refusal(f"it is corrupt ({last})")

    def _refusal(self, why: str) -> SchemaError:
        self._why = why
        return SchemaError(
            f"{self.path} is not a sheetcache SQLite file: {why}. The file was not changed: "
            "point the cache URL at another file, or move this one aside"
        )

    def _disable(self, exc: SchemaError) -> None:
        self.unusable = exc
        self.close()
        fix = f"mv {shlex.quote(str(self.path))} {shlex.quote(str(self.path) + '.broken')}"
        log.error(
            "sheetcache: the default cache file %s cannot be used (%s); calls go through "
            "uncached until it is fixed. Move it aside (%s) and a new cache is created on the "
            "next start; `sheetcache doctor` says the same.", self.path, self.reason, fix,
        )  # fmt: skip
        # The hit and store paths answer "nothing here" quietly (logged once, above); the
        # commands that read or delete raise, so `sheetcache stats` etc. say what is wrong.
        self.lookup = lambda key: None  # type: ignore[method-assign]
        self.put_many = lambda entries: None  # type: ignore[method-assign]
        self.record_hits = lambda hits: None  # type: ignore[method-assign]

    def _retry_busy(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` under :func:`retry_busy`, turning what stays wrong into clear errors."""
        try:
            return retry_busy(fn, self._timeout, self._drop_thread_conn)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):  # permissions, a full disk, a missing folder
                raise BackendError(f"cannot open {self.path}: {exc}") from None
            raise BackendError(
                f"{self.path} stayed locked by another process for {self._timeout:g} s"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise self._refusal(f"it is corrupt ({exc})") from None

    def _drop_thread_conn(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._conns_lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                if self.unusable is not None:
                    raise self.unusable
                raise RuntimeError(f"{self!r} is closed")
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                # Reads through a memory map skip a read() syscall per page: cold hits ~2x faster.
                conn.execute("PRAGMA mmap_size=268435456")
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            with _transaction(conn):
                # Another process may have created it while we waited for the lock.
                if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='entries'").fetchone():
                    # executescript() would commit first: run the statements one by one.
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT INTO sheetcache_meta VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
            return
        version, columns = self._version(conn)
        if version in _UPGRADES and columns == sorted(_V1_COLUMNS):
            with _transaction(conn):
                # Re-read under the write lock: another process may have upgraded it already.
                if self._version(conn)[0] == version:
                    for statement in _UPGRADES[version]:
                        conn.execute(statement)
                    conn.execute(
                        "UPDATE sheetcache_meta SET value = ? WHERE name = 'schema_version'",
                        (str(SCHEMA_VERSION),),
                    )
            version, columns = self._version(conn)
        if version != SCHEMA_VERSION or columns != sorted(_COLUMNS):
            raise SchemaError(
                f"{self.path} holds schema version {version or 'unknown'} with columns "
                f"{columns or 'none'}; this sheetcache reads version {SCHEMA_VERSION}. "
                "The file was not changed: open it with the sheetcache version that wrote it, "
                "or use a new file."
            )

    @staticmethod
    def _version(conn: sqlite3.Connection) -> tuple[int | None, list[str]]:
        version: int | None = None
        try:
            row = conn.execute(
                "SELECT value FROM sheetcache_meta WHERE name='schema_version'"
            ).fetchone()
            version = int(row[0]) if row and str(row[0]).isdigit() else None
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise
        columns = sorted(r[1] for r in conn.execute("PRAGMA table_info(entries)"))
        return version, columns

    # -- the store ---------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        conn = self._conn()
        found: dict[str, Entry] = {}
        for batch in chunks(keys, 500):
            sql = f"{_SELECT} WHERE key IN ({', '.join('?' * len(batch))})"
            for row in conn.execute(sql, batch):
                found[row[0]] = _row_to_entry(row)
        return found

    def lookup(self, key: str) -> Entry | None:
        row = self._conn().execute(_LOOKUP, (key,)).fetchone()
        if row is None:
            return None
        entry = Entry(row[0], row[1], row[2], row[3], None, {}, *row[4:11])
        if row[11] and row[11] != "{}":
            entry.metadata = orjson.loads(row[11])
        return entry

    def put_many(self, entries: Sequence[Entry]) -> None:
        rows = [_entry_to_row(e) for e in entries]
        conn = self._conn()
        if len(rows) == 1:  # autocommit: one statement is its own transaction
            conn.execute(_INSERT, rows[0])
            return
        with _transaction(conn):
            conn.executemany(_INSERT, rows)

    def delete_many(self, keys: Sequence[str]) -> int:
        conn = self._conn()
        deleted = 0
        with _transaction(conn):
            for batch in chunks(keys, 500):
                sql = f"DELETE FROM entries WHERE key IN ({', '.join('?' * len(batch))})"
                deleted += conn.execute(sql, batch).rowcount
        return deleted

    def iter_entries(self, namespace: str | None = None) -> Iterator[Entry]:
        # Page by key so a long export never holds a read transaction (or all rows) open.
        conn = self._conn()
        last = ""
        where = "key > ?" + ("" if namespace is None else " AND namespace = ?")
        while True:
            params: tuple[Any, ...] = (last,) if namespace is None else (last, namespace)
            rows = conn.execute(
                f"{_SELECT} WHERE {where} ORDER BY key LIMIT 1000", params
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_to_entry(row)
            last = rows[-1][0]

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            row = self._conn().execute("SELECT COUNT(*) FROM entries").fetchone()
        else:
            row = (
                self._conn()
                .execute("SELECT COUNT(*) FROM entries WHERE namespace = ?", (namespace,))
                .fetchone()
            )
        return int(row[0])

    def record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        conn = self._conn()
        with _transaction(conn):
            conn.executemany(
                "UPDATE entries SET hits = hits + ?, last_hit_at = MAX(COALESCE(last_hit_at, 0), ?)"
                " WHERE key = ?",
                [(n, at, key) for key, (n, at) in hits.items()],
            )

    def clear(self, namespace: str | None = None) -> int:
        conn = self._conn()
        if namespace is None:
            return conn.execute("DELETE FROM entries").rowcount
        return conn.execute("DELETE FROM entries WHERE namespace = ?", (namespace,)).rowcount

    def integrity_problems(self, limit: int = 5) -> list[str]:
        """What ``PRAGMA quick_check`` finds wrong with the file ([] when it is sound).

        Reads every page, so it takes a while on a big file: for ``sheetcache doctor``,
        never the hot path.
        """
        try:
            rows = self._conn().execute(f"PRAGMA quick_check({int(limit)})").fetchall()
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
        problems = [str(r[0]) for r in rows]
        return [] if problems == ["ok"] else problems

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (the connection is in autocommit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
