"""The cache front: keys, the in-process L1, single-flight, fail-open, write-behind.

Data path (docs/architecture.md tells the same story in prose):

- hit:   canonical key bytes -> L1 dict -> answer. No hashing beyond the canonical JSON, no
         lock held while looking, no I/O. Hit counts are summed in memory for the flusher.
- miss:  sha256 -> backend.lookup (and the outbox, for answers not flushed yet) -> single
         flight -> call_fn -> L1 + durable local write (the backend itself when it is local,
         else the outbox) -> answer returned. The network write happens later, in batches.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

import orjson
import xxhash

from sheetcache._codec import decode_value, encode_value, is_immutable
from sheetcache._errors import ConfigError
from sheetcache._keys import canonical_bytes, has_non_finite, lookup_bytes
from sheetcache._outbox import Flusher, Outbox
from sheetcache._urls import backend_from_url, default_url, outbox_path
from sheetcache.backends.base import Backend, Entry

__all__ = ["Cache", "CacheStats"]

log = logging.getLogger("sheetcache")

T = TypeVar("T")
_UNSET: Any = object()
_MISS: Any = object()  # "not found", distinct from a cached None
_DECODE: Any = object()  # L1 holds text only: decode on every hit so callers can't alias
_l1_hash = xxhash.xxh3_64_intdigest  # ~0.2 us for 2 KB where sha256 takes ~3.5 us here


@dataclass(frozen=True)
class CacheStats:
    """Counters since this :class:`Cache` was opened."""

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

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class _Flight:
    """One in-progress miss that concurrent identical calls wait on (threads and tasks).

    A plain lock, held from creation until the leader finishes, is the signal: waiters
    acquire and release it. Much cheaper to create than a threading.Event on every miss.
    """

    __slots__ = (
        "_gate",
        "finished",
        "value",
        "error",
        "duration",
        "stored",
        "_async_waiters",
        "_lock",
    )

    def __init__(self) -> None:
        self._gate = threading.Lock()
        self._gate.acquire()
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.duration = 0.0
        self.stored: tuple[str, str] | None = None  # (value_type, text) once encoded
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    def finish(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error
        with self._lock:
            self.finished = True
            waiters, self._async_waiters = self._async_waiters, []
        self._gate.release()
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_set_done, fut)

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def wait(self) -> Any:
        with self._gate:
            pass
        return self.result()

    async def await_result(self) -> Any:
        fut: asyncio.Future[None] | None = None
        with self._lock:
            if not self.finished:
                loop = asyncio.get_running_loop()
                fut = loop.create_future()
                self._async_waiters.append((loop, fut))
        if fut is not None:
            await fut
        return self.result()


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _seconds(ttl: float | timedelta | None, what: str = "ttl") -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ConfigError(
            f"{what} must be a positive number of seconds, a timedelta or None, not {ttl!r}"
        )
    return float(seconds)


class Cache:
    """A cache in front of LLM calls (or any slow, costly, deterministic-enough call).

    Args:
        url: where entries live: ``memory://``, ``sqlite:///path.db``, ``redis://...``,
            ``sheets://ID/TAB``, or a :class:`~sheetcache.backends.base.Backend`.
            Default: ``$SHEETCACHE_URL``, else SQLite in the user cache dir.
        namespace: part of every key; caches with different namespaces never share answers.
        ttl: default lifetime of new entries (seconds or timedelta); None = forever.
        l1_size: entries kept in the in-process L1 (LRU) in front of the backend.
        outbox: file for the durable write-behind queue of non-local backends. Default: one
            per backend URL under ``$SHEETCACHE_DIR`` (or the user cache dir).
        lock_timeout: with a backend that has cross-process locks (Redis), how long another
            process may hold a key's lock before this one computes the answer itself.

    Example:
        >>> cache = Cache("memory://")
        >>> cache.get_or_call("What is 2+2?", lambda p: "4", model="gpt-4o", temperature=0)
        '4'
        >>> cache.stats.misses, cache.get_or_call("What is 2+2?", str.upper, model="gpt-4o",
        ...     temperature=0)
        (1, '4')
    """

    def __init__(
        self,
        url: str | Backend | None = None,
        *,
        namespace: str = "default",
        ttl: float | timedelta | None = None,
        l1_size: int = 10_000,
        outbox: str | Path | None = None,
        lock_timeout: float = 120.0,
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ConfigError(f"namespace must be a non-empty str, not {namespace!r}")
        if not isinstance(l1_size, int) or l1_size < 0:
            raise ConfigError(f"l1_size must be an int >= 0, not {l1_size!r}")
        self.namespace = namespace
        self.ttl = _seconds(ttl)
        self.lock_timeout = lock_timeout
        self.backend: Backend = (
            url if isinstance(url, Backend) else backend_from_url(url or default_url())
        )
        self.url = self.backend.url
        # xxh3 of the lookup bytes -> (lookup bytes, key, expires_at, value or _DECODE,
        # value_type, text, duration, bytes hold "null"). The bytes rule out hash collisions.
        self._l1: OrderedDict[int, tuple[Any, ...]] = OrderedDict()
        self._l1_size = l1_size
        self._lock = threading.Lock()  # counters and pending hits
        self._hits = self._misses = self._errors = 0
        self._saved = 0.0
        self._pending_hits: dict[str, list[Any]] = {}
        self._flights: dict[str, _Flight] = {}
        self._flights_lock = threading.Lock()
        self._read_failing = False
        self._closed = False
        self._outbox = (
            None if self.backend.local else Outbox(outbox or outbox_path(self.backend.url))
        )
        self._flusher = Flusher(
            self.backend, self._outbox, self._take_hits, self._return_hits, self._count_error,
            interval=self.backend.flush_interval,
            batch_size=self.backend.flush_batch_size,
        )  # fmt: skip
        self.backend.subscribe(self._forget_keys)
        _open_caches.add(self)

    # -- public API ---------------------------------------------------------------------

    def key(self, prompt: Any, **key_parts: Any) -> str:
        """The stored key of ``prompt`` with ``key_parts``: 64 hex chars (sha256)."""
        return hashlib.sha256(canonical_bytes(prompt, self.namespace, key_parts)).hexdigest()

    def get_or_call(
        self,
        prompt: Any,
        call_fn: Callable[[Any], T],
        /,
        *,
        refresh: bool = False,
        store: bool = True,
        ttl: float | timedelta | None = _UNSET,
        **key_parts: Any,
    ) -> T:
        """Return the cached answer for ``prompt`` and ``key_parts``, or ``call_fn(prompt)``.

        Args:
            prompt: a str or a list of chat messages (dicts); part of the key.
            call_fn: called with ``prompt`` on a miss. Its exceptions propagate, uncached.
            refresh: skip the lookup, call ``call_fn`` and store its answer over the old one.
            store: False to look up only: a miss is not stored.
            ttl: lifetime of a newly stored answer (default: the cache's ``ttl``).
            **key_parts: everything else that changes the answer (model, temperature,
                system prompt, tools, output schema, template version, ...).

        Raises:
            TypeError: a key part cannot be canonicalised (before ``call_fn`` runs).
            UnsupportedValueError: the answer cannot be stored; ``.value`` holds it.
        """
        lk = lookup_bytes(prompt, self.namespace, key_parts)
        if not refresh:
            value = self._l1_get(lk, prompt, key_parts)
            if value is not _MISS:
                return value  # type: ignore[no-any-return]
        ck = canonical_bytes(prompt, self.namespace, key_parts)
        key = hashlib.sha256(ck).hexdigest()
        if not refresh:
            value = self._lookup(lk, key)
            if value is not _MISS:
                return value  # type: ignore[no-any-return]
        return self._call(lk, ck, key, prompt, key_parts, call_fn, refresh, store, ttl)  # type: ignore[no-any-return]

    async def aget_or_call(
        self,
        prompt: Any,
        acall_fn: Callable[[Any], Awaitable[T]],
        /,
        *,
        refresh: bool = False,
        store: bool = True,
        ttl: float | timedelta | None = _UNSET,
        **key_parts: Any,
    ) -> T:
        """Async :meth:`get_or_call`: ``acall_fn(prompt)`` is awaited on a miss.

        Concurrent identical misses from tasks (and threads) share one call.
        """
        lk = lookup_bytes(prompt, self.namespace, key_parts)
        if not refresh:
            value = self._l1_get(lk, prompt, key_parts)
            if value is not _MISS:
                return value  # type: ignore[no-any-return]
        ck = canonical_bytes(prompt, self.namespace, key_parts)
        key = hashlib.sha256(ck).hexdigest()
        if not refresh:
            if self.backend.lookup_is_local:
                value = self._lookup(lk, key)
            else:
                value = await asyncio.to_thread(self._lookup, lk, key)
            if value is not _MISS:
                return value  # type: ignore[no-any-return]
        flight, leader = self._join(key)
        if not leader:
            return await self._follow(flight)  # type: ignore[no-any-return]
        locked = False
        try:
            if not refresh:
                value = self._l1_get(lk, prompt, key_parts)
                if value is not _MISS:
                    flight.finish(value)
                    return value  # type: ignore[no-any-return]
                locked, value = await self._await_other_process_async(lk, key)
                if value is not _MISS:
                    flight.finish(value)
                    return value  # type: ignore[no-any-return]
            self._count_miss()
            started = time.perf_counter()
            value = await acall_fn(prompt)
            flight.duration = time.perf_counter() - started
            if store:
                flight.stored = await self._store_async(
                    lk, ck, key, value, flight.duration, ttl, locked
                )
            flight.finish(value)
            return value  # type: ignore[no-any-return]
        except BaseException as exc:
            flight.finish(error=exc)
            raise
        finally:
            self._land(key, flight, locked)

    def get(self, prompt: Any, **key_parts: Any) -> Any:
        """The cached answer, or None on a miss (a cached None is also None: use
        :meth:`get_or_call` to tell them apart)."""
        lk = lookup_bytes(prompt, self.namespace, key_parts)
        value = self._l1_get(lk, prompt, key_parts)
        if value is _MISS:
            ck = canonical_bytes(prompt, self.namespace, key_parts)
            value = self._lookup(lk, hashlib.sha256(ck).hexdigest())
        if value is _MISS:
            self._count_miss()
            return None
        return value

    def set(
        self, prompt: Any, value: Any, *, ttl: float | timedelta | None = _UNSET, **key_parts: Any
    ) -> str:
        """Store ``value`` as the answer to ``prompt`` with ``key_parts``; return the key.

        Raises:
            UnsupportedValueError: ``value`` cannot be stored (nothing was written).
        """
        lk = lookup_bytes(prompt, self.namespace, key_parts)
        ck = canonical_bytes(prompt, self.namespace, key_parts)
        key = hashlib.sha256(ck).hexdigest()
        self._store(lk, ck, key, value, None, ttl, direct=False)
        return key

    def delete(self, prompt: Any, **key_parts: Any) -> bool:
        """Remove one answer; True if it existed in the backend."""
        key = hashlib.sha256(canonical_bytes(prompt, self.namespace, key_parts)).hexdigest()
        self._forget_keys({key})
        return self.backend.delete_many([key]) > 0

    @overload
    def cached(self, fn: Callable[..., T], /) -> Callable[..., T]: ...
    @overload
    def cached(
        self, fn: None = None, /, *, ttl: float | timedelta | None = ..., **key_parts: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]: ...
    def cached(self, fn: Any = None, /, *, ttl: Any = _UNSET, **key_parts: Any) -> Any:
        """Decorate a sync or async function so calls with equal arguments are cached.

        The key holds the function's module and qualified name, its bound arguments (with
        defaults applied, so ``f(1)`` and ``f(x=1)`` share an entry) and ``key_parts``.
        See :func:`sheetcache._decorator.cached` for the details.

        Example:
            >>> cache = Cache("memory://")
            >>> @cache.cached(model="gpt-4o", temperature=0)
            ... def ask(question: str) -> str:
            ...     return question.upper()
            >>> ask("hi"), ask(question="hi"), cache.stats.hits
            ('HI', 'HI', 1)
        """
        from sheetcache._decorator import cached

        return cached(self, fn, ttl=ttl, **key_parts)

    @property
    def stats(self) -> CacheStats:
        """A snapshot of this cache's counters."""
        with self._lock:
            hits, misses, errors, saved = self._hits, self._misses, self._errors, self._saved
        pending = 0
        if self._outbox is not None and not self._closed:
            try:
                pending = self._outbox.pending()
            except Exception:  # noqa: BLE001 - stats must not raise
                pending = -1
        return CacheStats(hits, misses, errors, saved, pending)

    def entries(self, namespace: str | None = None) -> Iterator[Entry]:
        """Every stored entry (of ``namespace`` if given), streamed from the backend."""
        return self.backend.iter_entries(namespace)

    def refresh(self) -> None:
        """Make changes from other processes and reviewers visible now (Sheets)."""
        self.backend.refresh()

    def prune(self, older_than: float | timedelta | None = None) -> int:
        """Delete expired entries and, if given, those created more than ``older_than`` ago.

        Returns how many were deleted.
        """
        age = _seconds(older_than, "older_than")
        now = time.time()
        cutoff = None if age is None else now - age

        def doomed(e: Entry) -> bool:
            return e.is_expired(now) or (cutoff is not None and e.created_at < cutoff)

        deleted = self.backend.delete_where(doomed)
        self._l1.clear()
        return deleted

    def clear(self, namespace: str | None = None) -> int:
        """Delete every entry (of ``namespace`` if given) from the backend and L1."""
        deleted = self.backend.clear(namespace)
        self._l1.clear()
        return deleted

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until queued writes and hit counts reached the backend.

        Returns False if ``timeout`` passed first (they stay queued, durably).
        """
        return self._flusher.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush (for at most ``timeout`` seconds), then release the backend and files."""
        if self._closed:
            return
        # A last flush, bounded (short when the store is down); what is left stays queued.
        self._flusher.close(timeout)
        self._closed = True
        if self._outbox is not None:
            self._outbox.close()
        self.backend.close()
        _open_caches.discard(self)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cache({self.url!r}, namespace={self.namespace!r})"

    # -- hits ---------------------------------------------------------------------------

    def _l1_get(self, lk: bytes, prompt: Any, key_parts: dict[str, Any]) -> Any:
        h = _l1_hash(lk)
        item = self._l1.get(h)
        if item is None:
            return _MISS
        exact, key, expires_at, value, value_type, text, duration, has_null = item
        if exact != lk:  # a 64-bit hash collision: never answer a different question
            return _MISS
        # The bytes hold a null, so this lookup's may be a NaN in disguise: let the
        # canonical form (which raises on NaN) judge whenever the cheap walk can't rule it out.
        if has_null and (has_non_finite(prompt) or has_non_finite(key_parts)):
            canonical_bytes(prompt, self.namespace, key_parts)
        now = time.time()
        if expires_at is not None and expires_at <= now:
            self._l1.pop(h, None)
            return _MISS
        try:  # noqa: SIM105 - cheaper than contextlib.suppress on the hit path
            self._l1.move_to_end(h)
        except KeyError:  # evicted by another thread just now; still a valid answer
            pass
        if value is _DECODE:
            value = decode_value(value_type, text)
        self._count_hit(key, now, duration)
        return value

    def _l1_put(self, lk: bytes, entry: Entry, value: Any) -> None:
        if self._l1_size == 0:
            return
        held = value if is_immutable(value) else _DECODE
        item = (lk, entry.key, entry.expires_at, held, entry.value_type, entry.value,
                entry.duration, b"null" in lk)  # fmt: skip
        self._l1[_l1_hash(lk)] = item
        while len(self._l1) > self._l1_size:
            try:
                self._l1.popitem(last=False)
            except KeyError:  # another thread emptied it
                break

    def _count_hit(self, key: str, now: float, duration: float | None) -> None:
        with self._lock:
            self._hits += 1
            self._saved += duration or 0.0
            pending = self._pending_hits.get(key)
            if pending is None:
                self._pending_hits[key] = [1, now]
            else:
                pending[0] += 1
                pending[1] = now

    def _count_miss(self) -> None:
        with self._lock:
            self._misses += 1

    def _lookup(self, lk: bytes, key: str) -> Any:
        """Backend (then outbox) lookup on an L1 miss; fills L1 on success."""
        try:
            entry = self.backend.lookup(key)
            if self._read_failing:
                self._read_failing = False
                log.info("sheetcache: reading from %s works again", self.url)
        except Exception as exc:  # fail open: a broken store is a miss, never an error
            self._count_error(exc)
            if not self._read_failing:
                log.error(
                    "sheetcache: reading from %s failed (%s: %s); calls go through uncached "
                    "until it recovers", self.url, type(exc).__name__, exc,
                )  # fmt: skip
            self._read_failing = True
            entry = None
        if (entry is None or entry.status == "rejected") and self._outbox is not None:
            # Not flushed yet: a fresh answer (perhaps the one replacing a rejected row).
            try:
                entry = self._outbox.find(key) or entry
            except Exception as exc:  # noqa: BLE001
                self._count_error(exc)
        if entry is None or entry.status == "rejected":
            return _MISS
        now = time.time()
        if entry.is_expired(now):
            return _MISS
        try:
            value = decode_value(entry.value_type, entry.value)
        except Exception as exc:  # noqa: BLE001 - a value that won't decode is a miss
            log.warning("sheetcache: entry %s does not decode as %s (%s); treating it as a miss",
                        key, entry.value_type, exc)  # fmt: skip
            return _MISS
        self._l1_put(lk, entry, value)
        self._count_hit(key, now, entry.duration)
        return value

    def _forget_keys(self, keys: Collection[str]) -> None:
        """Drop L1 items whose stored entry changed outside this process."""
        if keys:
            for h in [h for h, item in list(self._l1.items()) if item[1] in keys]:
                self._l1.pop(h, None)

    # -- misses -------------------------------------------------------------------------

    def _join(self, key: str) -> tuple[_Flight, bool]:
        with self._flights_lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = _Flight()
            return flight, True

    def _land(self, key: str, flight: _Flight, locked: bool) -> None:
        with self._flights_lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        if locked:
            try:
                self.backend.unlock(key)
            except Exception as exc:  # noqa: BLE001 - the lock expires on its own
                self._count_error(exc)

    def _followed(self, flight: _Flight, value: Any) -> Any:
        with self._lock:
            self._hits += 1
            self._saved += flight.duration
        if flight.stored is not None and not is_immutable(value):
            # Each follower gets its own copy, as a hit would: no caller can alias another's.
            return decode_value(*flight.stored)
        return value

    def _wait(self, flight: _Flight) -> Any:
        return self._followed(flight, flight.wait())

    async def _follow(self, flight: _Flight) -> Any:
        return self._followed(flight, await flight.await_result())

    def _call(
        self, lk: bytes, ck: bytes, key: str, prompt: Any, key_parts: dict[str, Any],
        call_fn: Callable[[Any], Any], refresh: bool, store: bool, ttl: Any,
    ) -> Any:  # fmt: skip
        flight, leader = self._join(key)
        if not leader:
            return self._wait(flight)
        locked = False
        try:
            if not refresh:
                # The previous leader for this key may have finished between our L1 check
                # and our joining: look again rather than call twice.
                value = self._l1_get(lk, prompt, key_parts)
                if value is not _MISS:
                    flight.finish(value)
                    return value
                locked, value = self._await_other_process(lk, key)
                if value is not _MISS:
                    flight.finish(value)
                    return value
            self._count_miss()
            started = time.perf_counter()
            value = call_fn(prompt)
            flight.duration = time.perf_counter() - started
            if store:
                flight.stored = self._store(lk, ck, key, value, flight.duration, ttl, direct=locked)
            flight.finish(value)
            return value
        except BaseException as exc:
            flight.finish(error=exc)
            raise
        finally:
            self._land(key, flight, locked)

    def _await_other_process(self, lk: bytes, key: str) -> tuple[bool, Any]:
        """Cross-process single-flight. Returns (we hold the lock, answer found or _MISS)."""
        got = self._try_lock(key)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while got is False and time.monotonic() < deadline:
            # Polling, not a sleep for synchronisation: the other process has no way to
            # signal us here; the backoff keeps the polls few.
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
            value = self._lookup(lk, key)
            if value is not _MISS:
                return False, value
            got = self._try_lock(key)
        if got:
            # The holder may have stored and unlocked between our last look and our lock.
            return True, self._lookup(lk, key)
        if got is None:
            return False, _MISS
        log.warning("sheetcache: waited %ss for another process to answer %s; calling anyway",
                    self.lock_timeout, key)  # fmt: skip
        return False, _MISS

    async def _await_other_process_async(self, lk: bytes, key: str) -> tuple[bool, Any]:
        got = await asyncio.to_thread(self._try_lock, key) if not self.backend.local else None
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while got is False and time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
            value = await asyncio.to_thread(self._lookup, lk, key)
            if value is not _MISS:
                return False, value
            got = await asyncio.to_thread(self._try_lock, key)
        if got:
            return True, await asyncio.to_thread(self._lookup, lk, key)
        return False, _MISS

    def _try_lock(self, key: str) -> bool | None:
        try:
            return self.backend.try_lock(key, self.lock_timeout)
        except Exception as exc:  # noqa: BLE001 - no lock service: compute, don't fail
            self._count_error(exc)
            return None

    def _make_entry(
        self, ck: bytes, key: str, value: Any, duration: float | None, ttl: Any
    ) -> Entry:
        value_type, text = encode_value(value)
        lifetime = self.ttl if ttl is _UNSET else _seconds(ttl)
        now = time.time()
        _version, namespace, prompt, key_parts = orjson.loads(ck)
        return Entry(
            key, text, value_type, namespace, prompt, key_parts, now,
            None if lifetime is None else now + lifetime, 0, None, duration,
        )  # fmt: skip

    def _store(
        self, lk: bytes, ck: bytes, key: str, value: Any, duration: float | None, ttl: Any,
        *, direct: bool,
    ) -> tuple[str, str]:  # fmt: skip
        """Encode, fill L1, write durably; return (value_type, text)."""
        entry = self._make_entry(ck, key, value, duration, ttl)
        self._l1_put(lk, entry, value)
        self._write(entry, direct)
        return entry.value_type, entry.value

    async def _store_async(
        self, lk: bytes, ck: bytes, key: str, value: Any, duration: float | None, ttl: Any,
        direct: bool,
    ) -> tuple[str, str]:  # fmt: skip
        entry = self._make_entry(ck, key, value, duration, ttl)
        self._l1_put(lk, entry, value)
        if direct and not self.backend.local:
            await asyncio.to_thread(self._write, entry, True)
        else:
            self._write(entry, False)
        return entry.value_type, entry.value

    def _write(self, entry: Entry, direct: bool) -> None:
        """Durable local write: the backend if it is local (or we hold its lock), else the
        outbox. Never raises: the caller already has the answer."""
        if direct or self._outbox is None:
            try:
                self.backend.put_many([entry])
                return
            except Exception as exc:  # noqa: BLE001
                self._count_error(exc)
                log.error("sheetcache: storing %s in %s failed (%s: %s)",
                          entry.key, self.url, type(exc).__name__, exc)  # fmt: skip
                if self._outbox is None:
                    return
        try:
            self._outbox.append([entry])
        except Exception as exc:  # noqa: BLE001
            self._count_error(exc)
            log.error("sheetcache: queueing %s in %s failed (%s: %s)",
                      entry.key, self._outbox.path, type(exc).__name__, exc)  # fmt: skip

    # -- flusher hooks ------------------------------------------------------------------

    def _take_hits(self) -> dict[str, tuple[int, float]]:
        with self._lock:
            pending, self._pending_hits = self._pending_hits, {}
        return {k: (v[0], v[1]) for k, v in pending.items()}

    def _return_hits(self, hits: dict[str, tuple[int, float]]) -> None:
        with self._lock:
            for key, (n, at) in hits.items():
                pending = self._pending_hits.setdefault(key, [0, at])
                pending[0] += n
                pending[1] = max(pending[1], at)

    def _count_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1


_open_caches: weakref.WeakSet[Cache] = weakref.WeakSet()


@atexit.register
def _flush_open_caches() -> None:
    """Best effort at interpreter exit: queued answers are durable anyway."""
    for cache in list(_open_caches):
        with contextlib.suppress(Exception):  # exiting: nothing useful left to do
            cache.close(timeout=5.0)
