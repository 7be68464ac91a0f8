"""The cache front: the public :class:`Cache`, wiring keys, the L1, flights and the store.

Data paths (docs/architecture.md tells the same story in prose):

- hit:   mode check -> lookup bytes -> L1 item -> answer. No sha256, no lock, no clock
         (unless the entry expires), no I/O: the hit is logged for :class:`~._stats.Counters`.
- miss:  the one protocol in :mod:`._miss` (store lookup, flight, cross-process lock, call,
         durable local write), driven by :meth:`Cache.get_or_call` and
         :meth:`Cache.aget_or_call` alike. The network write happens later, in batches.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

import orjson

from sheetcache import _explain, _modes
from sheetcache._answer import Lookup
from sheetcache._cachekey import cache_key
from sheetcache._codec import decode_value, encode_value, is_immutable
from sheetcache._errors import CacheMissError, ConfigError
from sheetcache._explain import SCAN_LIMIT, Explanation
from sheetcache._flight import Flight, Flights
from sheetcache._keys import (
    canonical_bytes,
    has_non_finite,
    lookup_bytes,
    parse_canonical,
)
from sheetcache._l1 import DECODE, L1, HitRecord, L1Item, hit_record, l1_hash, may_hold_null
from sheetcache._miss import (
    CALL,
    MISS,
    Request,
    Steps,
    miss_steps,
    run_async,
    run_sync,
    unwrap,
)
from sheetcache._modes import OFF, OVERRIDES, READ_WRITE, REFRESH, REPLAY
from sheetcache._outbox import Flusher, Outbox, outbox_path
from sheetcache._samples import Samples
from sheetcache._stats import CacheStats, Counters
from sheetcache._store import Store
from sheetcache.backends._registry import backend_from_url, default_url
from sheetcache.backends.base import Backend, Entry

__all__ = ["Cache", "CacheStats"]

log = logging.getLogger("sheetcache")

T = TypeVar("T")
_UNSET: Any = object()
_ids = itertools.count(1)
_NO_RECORD = HitRecord("", 0.0, 0, None)  # a follower of an answer that was not stored


def _seconds(ttl: float | timedelta | None, what: str = "ttl") -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ConfigError(
            f"{what} must be a positive number of seconds, a timedelta or None, not {ttl!r}"
        )
    return float(seconds)


def _check_samples(samples: object) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be an int >= 1, not {samples!r}")
    return samples


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
        mode: ``"read-write"`` (default), ``"replay"``, ``"refresh"`` or ``"off"``; default
            ``$SHEETCACHE_MODE``. See :mod:`sheetcache._modes` and :meth:`override`.
        legacy_keys: on a miss, also look up the key the previous key format gave the same
            question, and re-key a found entry (serve it, store it under the current key).
            None (default): do so until 1,000 misses in a row found nothing
            there (a store without old entries stops paying the ~5 us per miss); True:
            always; False: never (``sheetcache migrate`` re-keys a whole store at once).

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
        mode: str | None = None,
        legacy_keys: bool | None = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ConfigError(f"namespace must be a non-empty str, not {namespace!r}")
        if isinstance(l1_size, bool) or not isinstance(l1_size, int) or l1_size < 0:
            raise ConfigError(f"l1_size must be an int >= 0, not {l1_size!r}")
        self.mode: str = _modes.default_mode() if mode is None else _modes.check_mode(mode)
        """The mode outside any :meth:`override`."""
        self.namespace = namespace
        self.ttl = _seconds(ttl)
        self.lock_timeout = lock_timeout
        self.backend: Backend = (
            url if isinstance(url, Backend) else backend_from_url(url or default_url())
        )
        self.url = self.backend.url
        self._id = next(_ids)
        self._l1 = L1(l1_size)
        self._l1_items = self._l1.items  # read directly on the hot path
        self._counters = Counters()
        self._log_hit = self._counters.hit_log.append
        self._flights = Flights()
        self._samples = Samples(self)
        self._closed = False
        self._outbox = (
            None if self.backend.local else Outbox(outbox or outbox_path(self.backend.url))
        )
        self._store = Store(
            self.backend, self._outbox, self._counters, namespace=namespace,
            # Compare-and-delete token for cross-process locks: no other Cache releases ours.
            owner=f"{os.getpid()}:{uuid.uuid4().hex}", lock_timeout=lock_timeout,
            legacy_keys=legacy_keys,
        )  # fmt: skip
        self._flusher = Flusher(
            self.backend, self._outbox, self._counters.take_hits, self._counters.return_hits,
            self._counters.error, interval=self.backend.flush_interval,
            batch_size=self.backend.flush_batch_size,
        )  # fmt: skip
        self.backend.subscribe(self._l1.forget_keys)
        _open_caches.add(self)

    # -- public API ---------------------------------------------------------------------

    def key(self, prompt: Any, **key_parts: Any) -> str:
        """The stored key of ``prompt`` with ``key_parts``: 64 hex chars (sha256)."""
        return cache_key(prompt, self.namespace, key_parts, with_lookup=False).key

    def get_or_call(
        self,
        prompt: Any,
        call_fn: Callable[[Any], T],
        /,
        *,
        refresh: bool = False,
        store: bool = True,
        ttl: float | timedelta | None = _UNSET,
        samples: int = 1,
        **key_parts: Any,
    ) -> T:
        """Return the cached answer for ``prompt`` and ``key_parts``, or ``call_fn(prompt)``.

        Args:
            prompt: a str or a list of chat messages (dicts); part of the key.
            call_fn: called with ``prompt`` on a miss. Its exceptions propagate, uncached.
                It may return an :class:`~sheetcache.Answer` to store metadata (usage) with
                the answer; the caller gets the plain value either way.
            refresh: skip the lookup, call ``call_fn`` and store its answer over the old one.
            store: False to look up only: a miss is not stored.
            ttl: lifetime of a newly stored answer (default: the cache's ``ttl``).
            samples: keep up to this many different answers (temperature > 0): call until
                there are ``samples`` stored, then serve them in rotation. Each sample is a
                stored entry of its own, keyed with the extra part ``sheetcache.sample``.
            **key_parts: everything else that changes the answer (model, temperature,
                system prompt, tools, output schema, template version, ...).

        Raises:
            TypeError: a key part cannot be canonicalised (before ``call_fn`` runs).
            CacheMissError: replay mode and no stored answer (``call_fn`` never runs).

        An answer that cannot be stored (an exotic type, text the store cannot hold) is
        returned all the same, with one warning saying why it was not stored.
        """
        value, steps = self._begin(prompt, key_parts, refresh, store, ttl, samples)
        if steps is None:
            return value  # type: ignore[no-any-return]
        return run_sync(self, steps, lambda: call_fn(prompt))  # type: ignore[no-any-return]

    async def aget_or_call(
        self,
        prompt: Any,
        acall_fn: Callable[[Any], Awaitable[T]],
        /,
        *,
        refresh: bool = False,
        store: bool = True,
        ttl: float | timedelta | None = _UNSET,
        samples: int = 1,
        **key_parts: Any,
    ) -> T:
        """Async :meth:`get_or_call`: ``acall_fn(prompt)`` is awaited on a miss.

        Concurrent identical misses from tasks (and threads) share one call. Store reads and
        writes that may wait on the network run in a worker thread.
        """
        value, steps = self._begin(prompt, key_parts, refresh, store, ttl, samples)
        if steps is None:
            return value  # type: ignore[no-any-return]
        return await run_async(self, steps, lambda: acall_fn(prompt))  # type: ignore[no-any-return]

    def get(self, prompt: Any, **key_parts: Any) -> Any:
        """The cached answer, or None on a miss.

        A cached None is also None: use :meth:`lookup` to tell them apart. In ``refresh``
        and ``off`` modes nothing stored is served (None); in ``replay`` mode a miss raises
        :class:`~sheetcache.CacheMissError`.
        """
        mode = self._mode_now()
        if mode is OFF or mode is REFRESH:
            return None
        lk = None
        if self._l1.size:
            lk = lookup_bytes(prompt, self.namespace, key_parts)
            item = self._l1.find(lk)
            if item is not None:
                value = self._l1_serve(item, prompt, key_parts)
                if value is not MISS:
                    return value
        req = self._request(prompt, key_parts, mode, False, False, _UNSET, lk)
        value = self._serve(req, self._store.fetch(req))
        if value is MISS:
            if mode is REPLAY:
                raise self._miss_error(req)
            self._counters.miss()
            return None
        return value

    def lookup(self, prompt: Any, **key_parts: Any) -> Lookup:
        """Look ``prompt`` up in the store: hit or miss, the answer, its key and metadata.

        For scripts that need to know whether an answer came from the cache. It reads the
        store (and the outbox), not the L1, so :attr:`Lookup.entry` is what is stored; a
        hit counts in :attr:`stats`. It inspects whatever the mode (it never calls or stores).

        Example:
            >>> cache = Cache("memory://")
            >>> cache.lookup("2+2?").hit
            False
            >>> _ = cache.set("2+2?", "4")
            >>> found = cache.lookup("2+2?")
            >>> found.hit, found.value, len(found.key)
            (True, '4', 64)
        """
        req = self._request(prompt, key_parts, READ_WRITE, False, False, _UNSET, None)
        entry = self._store.fetch(req)
        value = self._serve(req, entry)
        if value is MISS or entry is None:
            return Lookup(False, req.k.key)
        return Lookup(True, req.k.key, value, entry.metadata, entry)

    def explain(
        self, prompt: Any, *, limit: int | None = SCAN_LIMIT, **key_parts: Any
    ) -> Explanation:
        """Why ``prompt`` with ``key_parts`` hits or misses: for a miss, the nearest stored
        entry of the namespace and the key paths that differ from it.

        Reads at most ``limit`` entries of the namespace (None: all); see
        :func:`sheetcache._explain.explain` for how the search is bounded. It never calls
        or stores anything, whatever the mode.

        Example:
            >>> cache = Cache("memory://")
            >>> _ = cache.get_or_call("Hi", lambda p: "Hello", model="m", temperature=0.2)
            >>> cache.explain("Hi", model="m", temperature=0.7).diff
            ['parts.temperature: 0.2 → 0.7']

        Raises:
            TypeError: the prompt or a key part cannot be keyed.
        """
        return _explain.explain(self, prompt, dict(key_parts), limit=limit)

    def set(
        self,
        prompt: Any,
        value: Any,
        *,
        ttl: float | timedelta | None = _UNSET,
        metadata: Mapping[str, Any] | None = None,
        **key_parts: Any,
    ) -> str:
        """Store ``value`` as the answer to ``prompt`` with ``key_parts``; return the key.

        Args:
            prompt: as for :meth:`get_or_call`.
            value: the answer.
            ttl: lifetime (default: the cache's ``ttl``).
            metadata: JSON facts stored with it, e.g. ``{"usage": {...}}``.
            **key_parts: as for :meth:`get_or_call`.

        In ``off`` mode nothing is stored (the key is still returned).

        Raises:
            UnsupportedValueError: ``value`` cannot be stored (nothing was written).
        """
        req = self._request(prompt, key_parts, READ_WRITE, False, True, ttl, None)
        if self._mode_now() is OFF:
            return req.k.key
        entry = self._make_entry(req, value, metadata or {}, None)  # raises, as documented
        # The same key asked with its parts in another order has other lookup bytes: drop
        # every L1 copy of the key, or that spelling would keep serving the old answer.
        self._l1.forget_keys({entry.key})
        self._remember(req, entry, value)
        self._store.write(entry, False)
        return req.k.key

    def delete(self, prompt: Any, **key_parts: Any) -> bool:
        """Remove one answer; True if it existed in the backend."""
        key = self.key(prompt, **key_parts)
        self._l1.forget_keys({key})
        return self.backend.delete_many([key]) > 0

    @contextlib.contextmanager
    def override(self, *, mode: str) -> Iterator[None]:
        """Use ``mode`` for this cache inside the ``with`` block only.

        Scoped by a :class:`contextvars.ContextVar`: it holds for the block and for asyncio
        tasks created in it, never for other threads or tasks running meanwhile. Threads
        started inside the block do not inherit it unless their target runs in a copied
        context (``contextvars.copy_context().run``).

        Example:
            >>> cache = Cache("memory://")
            >>> _ = cache.set("q", "old")
            >>> with cache.override(mode="refresh"):
            ...     cache.get_or_call("q", lambda p: "new")
            'new'

        Raises:
            ConfigError: ``mode`` is not a mode.
        """
        with _modes.override(self._id, _modes.check_mode(mode)):
            yield

    @overload
    def cached(self, fn: Callable[..., T], /) -> Callable[..., T]: ...
    @overload
    def cached(
        self, fn: None = None, /, *, ttl: float | timedelta | None = ...,
        ignore: Collection[str] = ..., include: Collection[str] = ..., source: bool = ...,
        samples: int = ..., **key_parts: Any,
    ) -> Callable[[Callable[..., T]], Callable[..., T]]: ...  # fmt: skip
    def cached(self, fn: Any = None, /, *, ttl: Any = _UNSET, **key_parts: Any) -> Any:
        """Decorate a sync or async function so calls with equal arguments are cached.

        The key holds the function's module and qualified name, its bound arguments (with
        defaults applied, so ``f(1)`` and ``f(x=1)`` share an entry), a hash of its source
        (``source=False`` to leave it out) and ``key_parts``. Left out: ``self``/``cls`` (a
        method keys by its class, and ``__cache_key__()`` if defined), pydantic-ai
        ``RunContext`` arguments, names in ``ignore``, and secret-named arguments unless
        named in ``include``. See :func:`sheetcache._decorator.cached` for the details.

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
    def legacy_keys(self) -> bool | None:
        """Whether misses also look up the previous key format (None: until 1,000 in a row
        found nothing there). Settable.
        """
        return self._store.legacy_keys

    @legacy_keys.setter
    def legacy_keys(self, value: bool | None) -> None:
        self._store.legacy_keys = value

    @property
    def stats(self) -> CacheStats:
        """A snapshot of this cache's counters."""
        pending = 0
        if self._outbox is not None and not self._closed:
            try:
                pending = self._outbox.pending()
            except Exception:  # noqa: BLE001 - stats must not raise
                pending = -1
        return self._counters.snapshot(pending)

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

    # -- the hit path, shared by both shells ----------------------------------------------

    def _mode_now(self) -> str:
        overrides = OVERRIDES.get()
        return self.mode if overrides is None else overrides.get(self._id, self.mode)

    def _begin(
        self, prompt: Any, key_parts: dict[str, Any], refresh: bool, store: bool, ttl: Any,
        samples: int,
    ) -> tuple[Any, Steps | None]:  # fmt: skip
        """An L1 hit as ``(answer, None)``, else ``(None, the protocol to run)``."""
        overrides = OVERRIDES.get()
        mode = self.mode if overrides is None else overrides.get(self._id, self.mode)
        lk: bytes | None = None
        if samples == 1 and not refresh and (mode is READ_WRITE or mode is REPLAY):
            if self._l1.size:
                lk = lookup_bytes(prompt, self.namespace, key_parts)
                item = self._l1_items.get(l1_hash(lk))
                if item is not None and item.lookup == lk:
                    value = self._l1_serve(item, prompt, key_parts)
                    if value is not MISS:
                        return value, None
        elif mode is OFF:
            # No lookup, no store: the call itself, still keyed so bad key parts fail early.
            canonical_bytes(prompt, self.namespace, key_parts)
            return None, _off_steps()
        else:
            samples = _check_samples(samples)
        req = self._request(prompt, key_parts, mode, refresh, store, ttl, lk)
        if samples == 1:
            return None, miss_steps(self, req)
        return None, self._samples.steps(req, samples)

    def _l1_serve(self, item: L1Item, prompt: Any, key_parts: Mapping[str, Any]) -> Any:
        if item.has_null and (has_non_finite(prompt) or has_non_finite(key_parts)):
            canonical_bytes(prompt, self.namespace, key_parts)  # raises on NaN, as a miss would
        if item.expires_at is not None and item.expires_at <= time.time():
            self._l1.drop(item.lookup)
            return MISS
        self._l1.touch(item)
        value = item.value
        if value is DECODE:
            try:
                value = decode_value(item.value_type, item.text)
            except Exception as exc:  # noqa: BLE001 - a value that won't decode is a miss
                log.warning("sheetcache: cached answer %s no longer decodes (%s); calling again",
                            item.key, exc)  # fmt: skip
                self._l1.drop(item.lookup)
                return MISS
        self._log_hit(item)
        return value

    def _request(
        self, prompt: Any, key_parts: Mapping[str, Any], mode: str, refresh: bool, store: bool,
        ttl: Any, lk: bytes | None,
    ) -> Request:  # fmt: skip
        k = cache_key(prompt, self.namespace, key_parts, lookup=lk, with_lookup=bool(self._l1.size))
        serve = not refresh and mode is not REFRESH
        if ttl is not _UNSET:
            _seconds(ttl)  # a bad ttl is the caller's error: say so before anything is paid
        return Request(prompt, key_parts, k, serve, mode is REPLAY, store, ttl)

    # -- decisions of the miss protocol (see sheetcache._miss) ---------------------------

    def _usable(self, entry: Entry | None, now: float) -> Any:
        """The decoded answer of a servable entry, else MISS."""
        if entry is None or entry.status == "rejected" or entry.is_expired(now):
            return MISS
        try:
            return decode_value(entry.value_type, entry.value)
        except Exception as exc:  # noqa: BLE001 - a value that won't decode is a miss
            log.warning("sheetcache: entry %s does not decode as %s (%s); treating it as a miss",
                        entry.key, entry.value_type, exc)  # fmt: skip
            return MISS

    def _serve(self, req: Request, entry: Entry | None) -> Any:
        """Serve a stored entry (fill the L1, count the hit), or MISS."""
        value = self._usable(entry, time.time())
        if value is MISS:
            return MISS
        assert entry is not None
        self._log_hit(self._remember(req, entry, value))
        return value

    def _l1_value(self, req: Request) -> Any:
        if not self._l1.size:
            return MISS
        item = self._l1.find(req.k.lookup)
        return MISS if item is None else self._l1_serve(item, req.prompt, req.key_parts)

    def _remember(self, req: Request, entry: Entry, value: Any) -> L1Item | HitRecord:
        """Put a stored answer in the L1; the item also counts hits on it."""
        if not req.k.lookup:  # no L1: only what a hit needs to be counted
            return hit_record(entry.key, entry.duration, entry.metadata)
        item = L1Item(
            req.k.lookup, entry, value, may_hold_null(req.k.lookup, req.prompt, req.key_parts)
        )
        self._l1.put(item)
        return item

    def _followed(self, flight: Flight, value: Any) -> Any:
        self._log_hit(flight.record or _NO_RECORD)
        if flight.stored is not None and not is_immutable(value):
            # Each follower gets its own copy, as a hit would: no caller can alias another's.
            return decode_value(*flight.stored)
        return value

    def _miss_error(self, req: Request) -> CacheMissError:
        why = ""
        try:
            why = "\n" + str(self.explain(req.prompt, **req.key_parts))
        except Exception as exc:  # noqa: BLE001 - the miss itself is the news: never mask it
            log.debug("sheetcache: could not explain the miss of %s: %s", req.k.key, exc)
        return CacheMissError(
            f"replay mode: no stored answer for key {req.k.key[:12]} in namespace "
            f"{self.namespace!r}, and replay never calls the function. Record it first with "
            f"mode='read-write' (or unset $SHEETCACHE_MODE).{why}",
            req.k.key,
        )

    def _make_entry(
        self, req: Request, value: Any, metadata: Mapping[str, Any], duration: float | None
    ) -> Entry:
        """The entry to store. Raises UnsupportedValueError if ``value`` can't be stored."""
        value_type, text = encode_value(value)
        lifetime = self.ttl if req.ttl is _UNSET else _seconds(req.ttl)
        now = time.time()
        namespace, prompt, key_parts = parse_canonical(req.k.canonical)
        return Entry(
            req.k.key, text, value_type, namespace, prompt, key_parts, now,
            None if lifetime is None else now + lifetime, 0, None, duration,
            metadata=dict(metadata),
        )  # fmt: skip

    def _prepare(
        self, req: Request, value: Any, metadata: Mapping[str, Any], duration: float
    ) -> Entry | None:
        """The entry for a paid-for answer, or None (with one warning) if it can't be stored."""
        try:
            entry = self._make_entry(req, value, metadata, duration)
            if not entry.value.isascii():
                entry.value.encode("utf-8")  # a lone surrogate: no store can hold the text
            if entry.metadata:
                orjson.dumps(entry.metadata)
        except Exception as exc:  # noqa: BLE001 - never fail a call that succeeded
            log.warning("sheetcache: answer for %s returned but not stored: %s",
                        req.k.key[:12], exc)  # fmt: skip
            return None
        return entry


def _off_steps() -> Steps:
    """Mode ``off``: just the call."""
    value, _metadata = unwrap((yield CALL, None))
    return value


_open_caches: weakref.WeakSet[Cache] = weakref.WeakSet()


@atexit.register
def _flush_open_caches() -> None:
    """Best effort at interpreter exit: queued answers are durable anyway."""
    for cache in list(_open_caches):
        with contextlib.suppress(Exception):  # exiting: nothing useful left to do
            cache.close(timeout=5.0)
