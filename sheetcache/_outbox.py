"""The durable write-behind queue between a caller's miss and a network backend.

A miss appends its entry here (one SQLite insert + commit in WAL mode, synchronous=NORMAL:
it survives kill -9) and returns; :class:`Flusher` moves entries to the backend in batches.

Several processes may share one outbox file (one ``SHEETCACHE_DIR`` per machine):

- A batch is *claimed* (owner + lease) before it is sent, so two flushers don't send the same
  rows. Rows claimed by a process that is gone (dead, a zombie, or its pid reused by another
  program) are claimable again at once; a live owner's claim is waited on, asleep.
- Each queued entry carries a *write id*, fixed when it is queued. A store that can keep it
  beside the entry (Sheets: in the row's meta) uses it to tell whether an earlier send landed:
  a row claimed before (a retry, or a dead process's batch taken over) is marked ``attempts``
  > 0, and the store checks before it sends it again.
- A row is deleted (:meth:`Outbox.ack`) only after the store accepted it; :meth:`Outbox.release`
  gives it back after a failed send. A store that wants a stronger "landed" (a replica's
  confirmation) simply acks later.
- Hit counts the flusher could not send before :meth:`Flusher.close` are kept here too
  (:meth:`Outbox.keep_hits`) and sent by the next process that opens the cache.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from sheetcache._logging import OutageLog
from sheetcache.backends.base import Backend, Entry
from sheetcache.backends.sqlite import retry_busy

__all__ = ["Flusher", "Outbox", "Queued"]

log = logging.getLogger("sheetcache")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    key           TEXT NOT NULL,
    entry         BLOB NOT NULL,      -- Entry.to_dict() as JSON
    owner         TEXT,               -- "pid:start:token" of the flusher that claimed it
    claimed_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (key);
CREATE TABLE IF NOT EXISTS hits (
    key     TEXT PRIMARY KEY,
    n       INTEGER NOT NULL,
    last_at REAL NOT NULL
);
"""
# Columns added after the first release; an older file gets them on open (no rewrite).
_ADDED = (
    ("write_id", "TEXT"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("tried_at", "REAL NOT NULL DEFAULT 0"),  # when an earlier send failed or was orphaned
    ("origin", "TEXT"),  # the owner of the process that queued it
)


@dataclass(frozen=True, slots=True)
class Queued:
    """One claimed outbox row."""

    id: int
    """The outbox row, for :meth:`Outbox.ack` / :meth:`Outbox.release`."""
    write_id: str
    """Fixed when the entry was queued; the same on every re-send."""
    entry: Entry
    attempts: int
    """Earlier claims of this row: > 0 means an earlier send may have landed."""
    tried_at: float | None = None
    """When an earlier send of this row failed or its sender died (None: never sent). A
    store that can see its writes checks from then on, for a late apply."""
    mine: bool = False
    """Queued by this process: its L1 already holds this answer."""


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` ("" where /proc is missing).

    A pid reused by another program has another start time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


def owner_alive(owner: str) -> bool:
    """Whether the process that wrote ``owner`` (``pid:start:token``) still runs.

    A zombie (exited, not yet reaped) is dead: it will never finish its batch.
    """
    parts = owner.split(":")
    try:
        pid = int(parts[0])
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    if _zombie(pid):
        return False
    started = parts[1] if len(parts) == 3 else ""
    return not started or _start_time(pid) in ("", started)


class Outbox:
    """A SQLite-backed queue of entries waiting for the backend. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], *, lease: float = 300.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lease = lease
        pid = os.getpid()
        self.owner = f"{pid}:{_start_time(pid)}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        # Several processes may open one new outbox at once (one SHEETCACHE_DIR).
        retry_busy(self._prepare, timeout=30.0)

    def _prepare(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        for name, decl in _ADDED:
            if name not in columns:
                try:
                    self._db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {decl}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):  # else: another process added it
                        raise

    def append(self, entries: Sequence[Entry]) -> None:
        """Durably queue ``entries``; returns once they are committed to disk."""
        rows = [
            (e.key, orjson.dumps(e.to_dict()), uuid.uuid4().hex[:16], self.owner) for e in entries
        ]
        sql = "INSERT INTO outbox (key, entry, write_id, origin) VALUES (?, ?, ?, ?)"
        with self._lock:
            if len(rows) == 1:
                self._db.execute(sql, rows[0])
            else:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")

    def find(self, key: str) -> Entry | None:
        """The newest queued entry for ``key``, so a restart serves what is not flushed yet."""
        with self._lock:
            row = self._db.execute(
                "SELECT entry FROM outbox WHERE key = ? ORDER BY id DESC LIMIT 1", (key,)
            ).fetchone()
        return None if row is None else Entry.from_dict(orjson.loads(row[0]))

    def claim(self, limit: int) -> list[Queued]:
        """Claim up to ``limit`` unclaimed rows, oldest first, for this owner."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._release_dead_owners(now)
                rows = self._db.execute(
                    "SELECT id, entry, write_id, attempts, tried_at, origin FROM outbox "
                    "WHERE claimed_until < ? ORDER BY id LIMIT ?",
                    (now, limit),
                ).fetchall()
                rows = [
                    (i, blob, wid or uuid.uuid4().hex[:16], n, (at or now) if n else None,
                     origin == self.owner)
                    for i, blob, wid, n, at, origin in rows
                ]  # fmt: skip
                if rows:
                    self._db.executemany(
                        "UPDATE outbox SET owner = ?, claimed_until = ?, write_id = ?, "
                        "attempts = attempts + 1 WHERE id = ?",
                        [(self.owner, now + self.lease, r[2], r[0]) for r in rows],
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        claimed = []
        for row_id, blob, write_id, attempts, tried_at, mine in rows:
            try:
                entry = Entry.from_dict(orjson.loads(blob))
            except ValueError:  # a corrupt row would block the queue forever: drop it loudly
                log.error("sheetcache: dropping unreadable outbox row %s in %s", row_id, self.path)
                self.ack([row_id])
                continue
            claimed.append(Queued(row_id, write_id, entry, int(attempts or 0), tried_at, mine))
        return claimed

    def _release_dead_owners(self, now: float) -> None:
        owners = self._db.execute(
            "SELECT DISTINCT owner FROM outbox WHERE claimed_until >= ? AND owner IS NOT NULL",
            (now,),
        ).fetchall()
        dead = [o for (o,) in owners if o != self.owner and not owner_alive(o)]
        if dead:
            # attempts stays > 0: the dead process may have sent them; the store checks.
            self._db.executemany(
                "UPDATE outbox SET claimed_until = 0, owner = NULL, tried_at = ? WHERE owner = ?",
                [(now, o) for o in dead],
            )

    def ack(self, ids: Sequence[int]) -> None:
        """Delete rows the backend accepted."""
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def release(self, ids: Sequence[int]) -> None:
        """Give rows back to the queue after a failed send (their write ids stay)."""
        now = time.time()
        with self._lock:
            self._db.executemany(
                "UPDATE outbox SET claimed_until = 0, owner = NULL, tried_at = ? WHERE id = ?",
                [(now, i) for i in ids],
            )

    def pending(self) -> int:
        """Rows waiting, claimed or not."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def claimable(self) -> int:
        """Rows this process could claim now (not under another live owner's lease)."""
        now = time.time()
        with self._lock:
            owners = self._db.execute(
                "SELECT DISTINCT owner FROM outbox WHERE claimed_until >= ? AND owner IS NOT NULL",
                (now,),
            ).fetchall()
            dead = [o for (o,) in owners if not owner_alive(o)]
            count = self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE claimed_until < ? OR owner IN "
                f"({','.join('?' * len(dead))})" if dead else
                "SELECT COUNT(*) FROM outbox WHERE claimed_until < ?",
                (now, *dead),
            ).fetchone()[0]  # fmt: skip
        return int(count)

    def keep_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        """Durably keep hit counts that could not be sent (summed with any kept before)."""
        if not hits:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO hits (key, n, last_at) VALUES (?, ?, ?) ON CONFLICT(key) DO "
                    "UPDATE SET n = n + excluded.n, last_at = max(last_at, excluded.last_at)",
                    [(k, n, at) for k, (n, at) in hits.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def take_hits(self) -> dict[str, tuple[int, float]]:
        """Remove and return the kept hit counts (the caller keeps them again on failure)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute("SELECT key, n, last_at FROM hits").fetchall()
                if rows:
                    self._db.execute("DELETE FROM hits")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return {key: (int(n), float(at)) for key, n, at in rows}

    def kept_hits(self) -> int:
        """Keys with hit counts kept for the next process."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM hits").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Flusher:
    """Background thread that drains the outbox and pending hit counts into the backend.

    Errors never reach callers: the first failure of an outage is logged at ERROR with the
    backend's message, later ones at DEBUG, recovery at INFO (:class:`OutageLog`); each is
    counted through ``on_error``. Retries back off exponentially up to ``max_backoff``.

    A backend with a ``put_queued(batch: list[Queued])`` method gets the claimed rows with
    their write ids; any other gets ``put_many(entries)``. A backend with an ``interrupt()``
    method has it called when :meth:`close` gives up, so a send stuck in retries ends.
    """

    #: With the store failing, :meth:`close` waits at most this long for a last round.
    close_budget = 2.0

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
        self._failed_rounds = 0
        self._writes = OutageLog(f"writing to {backend.url}")
        self._thread = threading.Thread(target=self._run, name="sheetcache-flusher", daemon=True)
        self._thread.start()

    @property
    def _failing(self) -> bool:
        return self._writes.failing

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.wait(backoff or self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            ok = self.run_once()
            backoff = 0.0 if ok else min(self.max_backoff, max(0.5, backoff * 2))
            with self._idle:
                self._rounds += 1
                self._failed_rounds += 0 if ok else 1
                self._idle.notify_all()

    def _send(self, batch: list[Queued]) -> None:
        put_queued = getattr(self.backend, "put_queued", None)
        if put_queued is not None:
            put_queued(batch)
        else:
            self.backend.put_many([q.entry for q in batch])

    def run_once(self) -> bool:
        """Send everything queued now; return False if the backend failed."""
        try:
            if self.outbox is not None:
                while not self._stop.is_set():
                    batch = self.outbox.claim(self.batch_size)
                    if not batch:
                        break
                    try:
                        self._send(batch)
                    except BaseException:
                        self.outbox.release([q.id for q in batch])
                        raise
                    self.outbox.ack([q.id for q in batch])
            hits = self._take_hits()
            if self.outbox is not None:
                for key, (n, at) in self.outbox.take_hits().items():
                    mine = hits.get(key)
                    hits[key] = (n, at) if mine is None else (mine[0] + n, max(mine[1], at))
            if hits:
                try:
                    self.backend.record_hits(hits)
                except BaseException:
                    self._return_hits(hits)
                    raise
        except Exception as exc:  # noqa: BLE001 - logged, counted, retried: never the caller's
            self._writes.failed(exc, "will retry in the background. Answers are safe in the "
                                "local outbox.")  # fmt: skip
            self._on_error(exc)
            return False
        if self._writes.failing:
            self._writes.ok()
        return True

    def flush(
        self,
        timeout: float | None = None,
        *,
        until_failure: bool = False,
        give_up: Callable[[], bool] | None = None,
    ) -> bool:
        """Wake the thread and wait for a full round to finish after this call.

        Returns True if everything queued before the call has reached the backend. Rows
        another live process has claimed are waited on asleep (with growing naps), never by
        spinning rounds. ``until_failure`` gives up at the first failed round; ``give_up``
        is asked every 0.1 s whether to stop waiting.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        nap = 0.02
        while True:
            with self._idle:
                target = self._rounds + 2  # the round in progress may have started before us
                failed = self._failed_rounds
                while self._rounds < target and self._thread.is_alive():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    if until_failure and self._failed_rounds > failed:
                        return False
                    if give_up is not None:
                        if give_up():
                            return False
                        remaining = 0.1 if remaining is None else min(remaining, 0.1)
                    self._wake.set()  # again after each round, or the next waits an interval
                    self._idle.wait(remaining)
            if until_failure and self._failed_rounds > failed:
                return False
            if not self._failing and (self.outbox is None or self.outbox.pending() == 0):
                return True
            if not self._thread.is_alive():
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if give_up is not None and give_up():
                return False
            if not self._failing and self.outbox is not None and self.outbox.claimable() == 0:
                # What is left is another live process's batch: sleep until it lands.
                self._stop.wait(nap if remaining is None else min(nap, remaining))
                nap = min(nap * 2, 1.0)

    def close(self, timeout: float | None = 10.0) -> tuple[int, int]:
        """A last flush (bounded), then stop; whatever did not land stays in the outbox.

        With the store failing the last flush gets :attr:`close_budget` seconds, so closing
        during an outage stays quick. Returns (answers kept, keys with hit counts kept), and
        logs a warning with both if either is non-zero.
        """
        down_since: list[float] = []

        def store_down() -> bool:
            # The store looks down (the flusher's writes fail, or its last request did):
            # allow close_budget seconds from then, not the whole timeout.
            if self._failing or getattr(self.backend, "unreachable", False):
                if not down_since:
                    down_since.append(time.monotonic())
                return time.monotonic() - down_since[0] >= self.close_budget
            return False

        flushed = self.flush(timeout, until_failure=True, give_up=store_down)
        if not flushed:
            interrupt = getattr(self.backend, "interrupt", None)
            if interrupt is not None:
                interrupt()  # ends a send stuck in retries, so the thread stops now
        self.stop(1.0 if not flushed else 5.0)
        answers = hits_kept = 0
        if self.outbox is not None:
            try:
                self.outbox.keep_hits(self._take_hits())
                answers, hits_kept = self.outbox.pending(), self.outbox.kept_hits()
            except sqlite3.Error as exc:
                log.error("sheetcache: could not keep unsent hit counts in %s: %s",
                          self.outbox.path, exc)  # fmt: skip
        if answers or hits_kept:
            assert self.outbox is not None
            log.warning(
                "sheetcache: %d answer(s) and hit counts of %d key(s) are not in %s yet; they "
                "are kept in %s and sent by the next process that opens this cache",
                answers, hits_kept, self.backend.url, self.outbox.path,
            )  # fmt: skip
        return answers, hits_kept

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
