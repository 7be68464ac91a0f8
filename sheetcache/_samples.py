"""Samples at temperature > 0: up to n different answers per key, served in rotation.

Sample ``i`` (from 0) is its own stored entry: sample 0 under the plain key, the others
with the extra key part ``sheetcache.sample: i``, so each is a row a reviewer can judge.
Until n are stored, a call fills the first missing sample through the ordinary miss
protocol; then it serves the least-served one. "Served" is the entry's stored hit count:
on a local store the protocol records each sample hit at once, so processes sharing a
SQLite file rotate together; network stores get hit counts in batches, so each cache also
adds the hits it served itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sheetcache._cachekey import cache_key
from sheetcache._l1 import hit_record
from sheetcache._miss import FETCH_MANY, MISS, RECORD_HITS, Request, Steps, miss_steps
from sheetcache.backends.base import Entry

if TYPE_CHECKING:
    from sheetcache._cache import Cache

__all__ = ["SAMPLE_PART", "Samples"]

SAMPLE_PART = "sheetcache.sample"


class Samples:
    """The rotation state of one cache (what it served, where refresh mode is)."""

    def __init__(self, front: Cache) -> None:
        self.front = front
        self._served_here: dict[str, int] = {}  # sample key -> hits served (network stores)
        self._refresh_slots: dict[str, int] = {}

    def steps(self, req: Request, n: int) -> Steps:
        """The protocol for ``samples=n``: fill the first missing sample or serve one."""
        reqs = self._requests(req, n)
        front = self.front
        if req.serve:
            found: dict[str, Entry] = yield FETCH_MANY, reqs
            slot = self._pick(reqs, found, allow_partial=req.replay)
            if slot is not None:
                chosen, entry, value = slot
                local = front.backend.local
                if local:  # the store is the shared rotation counter: count there now
                    yield RECORD_HITS, {chosen.k.key: (1, time.time())}
                else:
                    self._served_here[chosen.k.key] = self._served_here.get(chosen.k.key, 0) + 1
                # On a local store the hit is already in the store: don't send it twice.
                front._log_hit(hit_record("" if local else chosen.k.key, entry.duration,
                                          entry.metadata))  # fmt: skip
                return value
            if req.replay:
                raise front._miss_error(req)
            missing = next((r for r in reqs if r.k.key not in found), reqs[-1])
        else:  # refresh: replace the samples in turn
            missing = reqs[self._next_refresh_slot(req.k.key, n)]
        return (yield from miss_steps(front, missing))

    def _requests(self, req: Request, n: int) -> list[Request]:
        reqs = [req]
        with_lookup = bool(req.k.lookup)
        for i in range(1, n):
            parts = {**req.key_parts, SAMPLE_PART: i}
            k = cache_key(req.prompt, self.front.namespace, parts, with_lookup=with_lookup)
            reqs.append(Request(req.prompt, parts, k, req.serve, req.replay, req.store, req.ttl,
                                legacy=False))  # fmt: skip
        return reqs

    def _pick(
        self, reqs: list[Request], found: dict[str, Entry], *, allow_partial: bool
    ) -> tuple[Request, Entry, Any] | None:
        """The least-served usable sample once all exist (or any, if ``allow_partial``);
        unusable ones leave ``found`` so they are filled again.
        """
        now = time.time()
        usable: list[tuple[int, int, Request, Entry]] = []
        for i, req in enumerate(reqs):
            entry = found.get(req.k.key)
            if entry is None or entry.status == "rejected" or entry.is_expired(now):
                found.pop(req.k.key, None)
                continue
            usable.append((entry.hits + self._served_here.get(req.k.key, 0), i, req, entry))
        if not usable or (len(usable) < len(reqs) and not allow_partial):
            return None
        decode: Callable[[Entry | None, float], Any] = self.front._usable
        for _score, _i, req, entry in sorted(usable, key=lambda u: (u[0], u[1])):
            value = decode(entry, now)
            if value is not MISS:
                return req, entry, value
            found.pop(req.k.key, None)  # undecodable: fill it again
        return None

    def _next_refresh_slot(self, key: str, n: int) -> int:
        slot = self._refresh_slots.get(key, 0)
        self._refresh_slots[key] = (slot + 1) % n
        return slot
