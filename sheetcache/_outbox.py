"""The durable write-behind queue between a caller's miss and a network backend.

A miss appends its entry here (one SQLite insert + commit in WAL mode, synchronous=NORMAL:
it survives kill -9) and returns; :class:`Flusher` moves entries to the backend in batches.
Several processes may share one outbox file: a batch is *claimed* (owner + lease) before it
is sent, so two flushers don't send the same rows, and rows claimed by a process that died
are claimable again at once. A row is deleted only after the backend accepted it, so a crash
between send and delete re-sends it, which upserting backends absorb.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from sheetcache.backends.base import Backend, Entry

__all__ = ["Flusher", "Outbox"]

log = logging.getLogger("sheetcache")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    key           TEXT NOT NULL,
    entry         BLOB NOT NULL,      -- Entry.to_dict() as JSON
    owner         TEXT,               -- "pid:token" of the flusher that claimed it
    claimed_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (key);
"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Outbox:
    """A SQLite-backed queue of entries waiting for the backend. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], *, lease: float = 300.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lease = lease
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def append(self, entries: Sequence[Entry]) -> None:
        """Durably queue ``entries``; returns once they are committed to disk."""
        rows = [(e.key, orjson.dumps(e.to_dict())) for e in entries]
        with self._lock:
            if len(rows) == 1:
                self._db.execute("INSERT INTO outbox (key, entry) VALUES (?, ?)", rows[0])
            else:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO outbox (key, entry) VALUES (?, ?)", rows)
                self._db.execute("COMMIT")

    def find(self, key: str) -> Entry | None:
        """The newest queued entry for ``key``, so a restart serves what is not flushed yet."""
        with self._lock:
            row = self._db.execute(
                "SELECT entry FROM outbox WHERE key = ? ORDER BY id DESC LIMIT 1", (key,)
            ).fetchone()
        return None if row is None else Entry.from_dict(orjson.loads(row[0]))

    def claim(self, limit: int) -> list[tuple[int, Entry]]:
        """Claim up to ``limit`` unclaimed rows, oldest first, for this owner."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._release_dead_owners(now)
                rows = self._db.execute(
                    "SELECT id, entry FROM outbox WHERE claimed_until < ? ORDER BY id LIMIT ?",
                    (now, limit),
                ).fetchall()
                if rows:
                    self._db.executemany(
                        "UPDATE outbox SET owner = ?, claimed_until = ? WHERE id = ?",
                        [(self.owner, now + self.lease, r[0]) for r in rows],
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        claimed = []
        for row_id, blob in rows:
            try:
                claimed.append((row_id, Entry.from_dict(orjson.loads(blob))))
            except ValueError:  # a corrupt row would block the queue forever: drop it loudly
                log.error("sheetcache: dropping unreadable outbox row %s in %s", row_id, self.path)
                self.ack([row_id])
        return claimed

    def _release_dead_owners(self, now: float) -> None:
        owners = self._db.execute(
            "SELECT DISTINCT owner FROM outbox WHERE claimed_until >= ? AND owner IS NOT NULL",
            (now,),
        ).fetchall()
        dead = [o for (o,) in owners if o != self.owner and not _pid_alive(int(o.split(":")[0]))]
        if dead:
            self._db.executemany(
                "UPDATE outbox SET claimed_until = 0, owner = NULL WHERE owner = ?",
                [(o,) for o in dead],
            )

    def ack(self, ids: Sequence[int]) -> None:
        """Delete rows the backend accepted."""
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def release(self, ids: Sequence[int]) -> None:
        """Give rows back to the queue after a failed send."""
        with self._lock:
            self._db.executemany(
                "UPDATE outbox SET claimed_until = 0, owner = NULL WHERE id = ?",
                [(i,) for i in ids],
            )

    def pending(self) -> int:
        """Rows waiting, claimed or not."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Flusher:
    """Background thread that drains the outbox and pending hit counts into the backend.

    Errors never reach callers: the first failure of an outage is logged at ERROR with the
    backend's message, later ones at DEBUG, recovery at INFO; each is counted through
    ``on_error``. Retries back off exponentially up to ``max_backoff`` seconds.
    """

    def __init__(
        self,
        backend: Backend,
        outbox: Outbox | None,
        take_hits: Callable[[], dict[str, tuple[int, float]]],
        return_hits: Callable[[dict[str, tuple[int, float]]], None],
        on_error: Callable[[BaseException], None],
        *,
        interval: float = 1.0,
        batch_size: int = 500,
        max_backoff: float = 30.0,
    ) -> None:
        self.backend = backend
        self.outbox = outbox
        self._take_hits = take_hits
        self._return_hits = return_hits
        self._on_error = on_error
        self.interval = interval
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._rounds = 0  # completed rounds; flush() waits for one to start and end after it
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="sheetcache-flusher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.wait(backoff or self.interval)
            self._wake.clear()
            ok = self.run_once()
            backoff = 0.0 if ok else min(self.max_backoff, max(0.5, backoff * 2))
            with self._idle:
                self._rounds += 1
                self._idle.notify_all()

    def run_once(self) -> bool:
        """Send everything queued now; return False if the backend failed."""
        try:
            if self.outbox is not None:
                while True:
                    batch = self.outbox.claim(self.batch_size)
                    if not batch:
                        break
                    try:
                        self.backend.put_many([entry for _id, entry in batch])
                    except BaseException:
                        self.outbox.release([row_id for row_id, _e in batch])
                        raise
                    self.outbox.ack([row_id for row_id, _e in batch])
            hits = self._take_hits()
            if hits:
                try:
                    self.backend.record_hits(hits)
                except BaseException:
                    self._return_hits(hits)
                    raise
        except Exception as exc:
            if not self._failing:
                log.error(
                    "sheetcache: writing to %s failed, will retry in the background (%s: %s). "
                    "Answers are safe in the local outbox.", self.backend.url, type(exc).__name__, exc,
                )  # fmt: skip
            else:
                log.debug("sheetcache: backend still failing: %s", exc)
            self._failing = True
            self._on_error(exc)
            return False
        if self._failing:
            log.info("sheetcache: %s reachable again; queued writes sent", self.backend.url)
            self._failing = False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wake the thread and wait for a full round to finish after this call.

        Returns True if everything queued before the call has reached the backend.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._idle:
                target = self._rounds + 2  # the round in progress may have started before us
                while self._rounds < target and self._thread.is_alive():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._wake.set()  # again after each round, or the next waits an interval
                    self._idle.wait(remaining)
            if not self._failing and (self.outbox is None or self.outbox.pending() == 0):
                return True
            if not self._thread.is_alive():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)


def outbox_path(url: str) -> Path:
    """One outbox file per backend URL, shared by every process that uses that URL."""
    import hashlib

    from sheetcache.backends._registry import data_dir, redact_url

    digest = hashlib.sha256(redact_url(url).encode()).hexdigest()[:16]
    return data_dir() / "outbox" / f"outbox-v1-{digest}.db"
