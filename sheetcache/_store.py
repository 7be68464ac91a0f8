"""The front's fail-open view of its store: the backend, the outbox, and old key formats.

Every method here is an I/O step of the miss protocol (:mod:`sheetcache._miss`) and never
raises: a failure is counted, logged once per outage (:class:`~sheetcache._logging.OutageLog`)
and answered with "nothing found", "no lock" or "not stored", because the caller's call
must go through whatever the store does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sheetcache._keys import legacy_key, parse_canonical
from sheetcache._logging import OutageLog
from sheetcache._outbox import Outbox
from sheetcache._stats import Counters
from sheetcache.backends.base import Backend, Entry

if TYPE_CHECKING:
    from sheetcache._miss import Request

__all__ = ["LEGACY_GIVE_UP", "Store"]

log = logging.getLogger("sheetcache")

#: With ``legacy_keys=None``, legacy lookups stop after this many misses in a row found
#: nothing under the old key: the store then holds no (more) entries of the old format.
LEGACY_GIVE_UP = 1000

_UNCACHED = "calls go through uncached until it recovers"
_UNSTORED = "answers are returned but not stored"


class Store:
    """Reads, writes and locks of one :class:`~sheetcache.Cache`, all fail-open.

    Args:
        backend: the store.
        outbox: the durable write-behind queue (None for local stores, which are written
            through).
        counters: where failures are counted.
        namespace: the cache's namespace (old-format keys include it).
        owner: the cache's lock token.
        lock_timeout: how long a cross-process lock is taken for.
        legacy_keys: see :class:`~sheetcache.Cache`.
    """

    def __init__(
        self, backend: Backend, outbox: Outbox | None, counters: Counters, *, namespace: str,
        owner: str, lock_timeout: float, legacy_keys: bool | None,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.outbox = outbox
        self.counters = counters
        self.namespace = namespace
        self.owner = owner
        self.lock_timeout = lock_timeout
        self.legacy_keys = legacy_keys
        # A store without cross-process locks (the base class's try_lock) skips that step.
        self.has_locks = type(backend).try_lock is not Backend.try_lock
        self._legacy_misses = 0  # misses in a row with nothing under the legacy key
        self._reads = OutageLog(f"reading from {backend.url}")
        self._writes = OutageLog(f"storing in {backend.url}")
        self._locks = OutageLog(f"locking in {backend.url}")
        self._queueing = OutageLog(f"queueing in {outbox.path}" if outbox else "queueing")

    # -- reads --------------------------------------------------------------------------

    def fetch(self, req: Request) -> Entry | None:
        """The entry for ``req``: from the store, else the outbox, else an old key format."""
        key = req.k.key
        try:
            entry = self.backend.lookup(key)
            if self._reads.failing:
                self._reads.ok()
        except Exception as exc:  # noqa: BLE001 - fail open: a broken store is a miss
            self.counters.error(exc)
            self._reads.failed(exc, _UNCACHED)
            entry = None
        if (entry is None or entry.status == "rejected") and self.outbox is not None:
            # Not flushed yet: a fresh answer (perhaps the one replacing a rejected row).
            entry = self._queued(key) or entry
        if entry is None and req.legacy and self._look_for_legacy():
            entry = self._fetch_legacy(req)
            self._legacy_misses = 0 if entry is not None else self._legacy_misses + 1
        return entry

    def fetch_many(self, reqs: Sequence[Request]) -> dict[str, Entry]:
        """The stored (or queued) entries among ``reqs``' keys, by key."""
        keys = [r.k.key for r in reqs]
        try:
            found = self.backend.get_many(keys)
            if self._reads.failing:
                self._reads.ok()
        except Exception as exc:  # noqa: BLE001
            self.counters.error(exc)
            self._reads.failed(exc, _UNCACHED)
            found = {}
        if self.outbox is not None:
            for key in keys:
                if key not in found or found[key].status == "rejected":
                    queued = self._queued(key)
                    if queued is not None:
                        found[key] = queued
        return found

    def _queued(self, key: str) -> Entry | None:
        assert self.outbox is not None
        try:
            return self.outbox.find(key)
        except Exception as exc:  # noqa: BLE001 - an unreadable queued row is a miss
            self.counters.error(exc)
            log.warning("sheetcache: queued answer %s unreadable (%s)", key, exc)
            return None

    def _look_for_legacy(self) -> bool:
        if self.legacy_keys is None:
            return self._legacy_misses < LEGACY_GIVE_UP
        return self.legacy_keys

    def _fetch_legacy(self, req: Request) -> Entry | None:
        """The entry stored under the old key format's key, re-keyed to the current one."""
        try:
            old = legacy_key(req.prompt, self.namespace, req.key_parts)
        except Exception:  # noqa: BLE001 - a question the old format could not key
            return None
        if old is None or old == req.k.key:
            return None
        try:
            found = self.backend.get_many([old]).get(old)
        except Exception as exc:  # noqa: BLE001
            # Secondary: an outage of the store is reported by the primary read above, and
            # a store that serves lookups but not full reads must not log on every miss.
            self.counters.error(exc)
            log.debug("sheetcache: looking up the old-format key failed: %s", exc)
            return None
        if found is None and self.outbox is not None:
            found = self._queued(old)
        if found is None or found.status == "rejected" or found.is_expired():
            return None
        namespace, prompt, key_parts = parse_canonical(req.k.canonical)
        entry = dataclasses.replace(
            found, key=req.k.key, namespace=namespace, prompt=prompt, key_parts=key_parts
        )
        self.write(entry, False)  # re-key: later lookups find it under the current key
        log.info("sheetcache: served %s from its key format 1 key %s and re-keyed it",
                 req.k.key[:12], old[:12])  # fmt: skip
        return entry

    # -- locks --------------------------------------------------------------------------

    def try_lock(self, key: str) -> bool | None:
        """Take ``key``'s cross-process lock; None if there is no lock service to ask."""
        try:
            got = self.backend.try_lock(key, self.lock_timeout, self.owner)
            if self._locks.failing:
                self._locks.ok()
            return got
        except Exception as exc:  # noqa: BLE001 - no lock service: compute, don't fail
            self.counters.error(exc)
            self._locks.failed(exc, "concurrent processes may each compute the same answer")
            return None

    def unlock(self, key: str) -> None:
        try:
            self.backend.unlock(key, self.owner)
        except Exception as exc:  # noqa: BLE001 - the lock expires on its own
            self.counters.error(exc)

    # -- writes -------------------------------------------------------------------------

    def write(self, entry: Entry, direct: bool) -> None:
        """Durable local write: the backend if it is local (or we hold its lock), else the
        outbox. Never raises: the caller already has the answer.
        """
        if direct or self.outbox is None:
            try:
                self.backend.put_many([entry])
                if self._writes.failing:
                    self._writes.ok()
                return
            except Exception as exc:  # noqa: BLE001
                self.counters.error(exc)
                self._writes.failed(exc, _UNSTORED)
                if self.outbox is None:
                    return
        try:
            self.outbox.append([entry])
            if self._queueing.failing:
                self._queueing.ok()
        except Exception as exc:  # noqa: BLE001
            self.counters.error(exc)
            self._queueing.failed(exc, _UNSTORED)

    def record_hits(self, hits: dict[str, tuple[int, float]]) -> None:
        """Count hits in the store now (samples rotate by them); kept for the flusher on
        failure.
        """
        try:
            self.backend.record_hits(hits)
        except Exception as exc:  # noqa: BLE001
            self.counters.error(exc)
            self.counters.return_hits(hits)
