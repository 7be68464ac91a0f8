"""Counters of the cache front: a lock-free hit log folded into totals when read."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from sheetcache._l1 import HitRecord, L1Item

__all__ = ["CacheStats", "Counters"]


@dataclass(frozen=True)
class CacheStats:
    """Counters since this :class:`~sheetcache.Cache` was opened."""

    hits: int = 0
    """Answers served without calling the function (incl. waiters on a concurrent miss)."""
    misses: int = 0
    """Calls that went to the function."""
    errors: int = 0
    """Backend failures the cache absorbed (reads, writes, locks)."""
    saved_seconds: float = 0.0
    """Time the original calls took, summed over hits: wall time the cache saved."""
    pending_writes: int = 0
    """Answers waiting in the local outbox for the backend (0 for local stores)."""
    saved_tokens: int = 0
    """Input + output tokens of the original calls, summed over hits (from ``usage``)."""
    saved_usd: float = 0.0
    """Dollars the original calls cost, summed over the hits whose price is known."""
    unpriced_hits: int = 0
    """Hits whose dollar saving is unknown (no usage recorded, or no price for the model):
    :attr:`saved_usd` leaves them out."""

    @property
    def hit_rate(self) -> float:
        """Hits / (hits + misses), 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class Counters:
    """Hits, misses, errors and savings; the per-key hit counts the flusher sends.

    A hit only appends its item to :attr:`hit_log` (``deque.append`` is atomic): no lock,
    no clock, no arithmetic. :meth:`fold` turns the log into totals when someone reads them
    (stats, the flusher), so ``last_hit_at`` is the time of that fold, at most one flush
    interval late.
    """

    def __init__(self) -> None:
        self.hit_log: deque[L1Item | HitRecord] = deque()
        self._lock = threading.Lock()
        self.hits = self.misses = self.errors = 0
        self.saved_seconds = self.saved_usd = 0.0
        self.saved_tokens = self.unpriced_hits = 0
        self._pending: dict[str, list[float]] = {}  # key -> [hits, last hit at]

    def miss(self) -> None:
        with self._lock:
            self.misses += 1

    def error(self, _exc: BaseException | None = None) -> None:
        with self._lock:
            self.errors += 1

    def fold(self, *, pending: bool = True) -> None:
        """Move logged hits into the totals (and, if ``pending``, the per-key counts)."""
        with self._lock:
            self._fold(pending)

    def _fold(self, pending: bool) -> None:
        log = self.hit_log
        drained = [log.popleft() for _ in range(len(log))]  # others may append meanwhile
        if not drained:
            return
        now = time.time()
        # Count per item in C first: a re-run hits the same items again and again.
        for item, n in Counter(drained).items():
            self.hits += n
            self.saved_seconds += item.duration * n
            self.saved_tokens += item.tokens * n
            if item.usd is None:
                self.unpriced_hits += n
            else:
                self.saved_usd += item.usd * n
            if pending and item.key:
                counts = self._pending.get(item.key)
                if counts is None:
                    self._pending[item.key] = [n, now]
                else:
                    counts[0] += n
                    counts[1] = now

    def snapshot(self, pending_writes: int) -> CacheStats:
        with self._lock:
            self._fold(True)
            return CacheStats(
                self.hits, self.misses, self.errors, self.saved_seconds, pending_writes,
                self.saved_tokens, self.saved_usd, self.unpriced_hits,
            )  # fmt: skip

    def take_hits(self) -> dict[str, tuple[int, float]]:
        """Per-key hit counts since the last take, for the store (the flusher's hook)."""
        with self._lock:
            self._fold(True)
            pending, self._pending = self._pending, {}
        return {k: (int(v[0]), v[1]) for k, v in pending.items()}

    def return_hits(self, hits: dict[str, tuple[int, float]]) -> None:
        """Put back counts the store did not take (it failed), for the next flush."""
        with self._lock:
            for key, (n, at) in hits.items():
                counts = self._pending.setdefault(key, [0, at])
                counts[0] += n
                counts[1] = max(counts[1], at)
