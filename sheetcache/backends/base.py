"""The store contract: what every backend (memory, SQLite, Redis, Sheets) must do.

A backend is plain batch CRUD over :class:`Entry` records keyed by the 64-hex cache key. It
knows nothing of prompts, single-flight, L1 or the outbox: :class:`sheetcache.Cache` owns
those. The shared test class ``tests/backend_contract.py`` checks every rule written here;
a new backend is done when a subclass of it passes against a real instance.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["STATUSES", "Backend", "Entry"]

#: Review states a person can give an entry ("" = not reviewed). ``rejected`` is never served.
STATUSES = ("", "approved", "rejected")


@dataclass(slots=True)
class Entry:
    """One cached answer and what is known about it."""

    key: str
    """The cache key: sha256 hex of the canonical key JSON (see :mod:`sheetcache._keys`)."""
    value: str
    """The answer as text, as a reviewer reads it (see :mod:`sheetcache._codec`)."""
    value_type: str = "str"
    """How to turn :attr:`value` back into the caller's type."""
    namespace: str = "default"
    prompt: Any = None
    """The prompt as given (a str or a list of chat messages), for people and exports."""
    key_parts: dict[str, Any] = field(default_factory=dict)
    """The other parts of the key (model, settings, ...), JSON."""
    created_at: float = 0.0
    """Unix time the answer was stored."""
    expires_at: float | None = None
    """Unix time after which the entry is not served; None = never."""
    hits: int = 0
    last_hit_at: float | None = None
    duration: float | None = None
    """Seconds the original call took: what each hit saves."""
    status: str = ""
    """Review state, one of :data:`STATUSES`."""
    note: str = ""
    """Free text a reviewer left."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON facts about the original call that are not the answer, e.g. ``usage``
    (``{"model", "provider", "input_tokens", "output_tokens"}``, see :mod:`sheetcache._savings`)."""

    def is_expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (
            time.time() if now is None else now
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict, the export and outbox format.

        Shallow: nested values (prompt, key parts, metadata) are the entry's own objects,
        which is what a serialiser needs; ``dataclasses.asdict`` would deep-copy a 2 KB prompt
        on every queued write (about 10 us).
        """
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        """Inverse of :meth:`to_dict`; unknown fields are ignored, missing ones defaulted.

        Raises:
            ValueError: ``key`` or ``value`` is missing or not text.
        """
        key, value = data.get("key"), data.get("value")
        if not isinstance(key, str) or len(key) != 64 or not isinstance(value, str):
            raise ValueError("an entry needs a 64-character 'key' and a text 'value'")
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        entry = cls(**known)
        if entry.key_parts is None:
            entry.key_parts = {}
        if not isinstance(entry.metadata, dict):
            entry.metadata = {}
        return entry


_FIELDS = tuple(Entry.__dataclass_fields__)


class Backend(ABC):
    """Base class of all stores. Subclass it and implement the abstract methods.

    Contract (checked by ``tests/backend_contract.py``):

    - Writes are upserts by key: putting an entry whose key exists replaces it whole, so
      writing the same batch twice (a retry after a lost response) leaves one entry.
    - Methods are safe to call from several threads at once.
    - Operations raise on failure (any exception); they never return a wrong entry. The
      :class:`~sheetcache.Cache` front catches, logs and counts failures and fails open.
    - A backend stores what it is given: expiry, status and hits are fields, and the cache
      front decides what to serve. A backend may drop expired entries on its own (Redis).
    """

    local: ClassVar[bool] = False
    """True if :meth:`put_many` is a durable local write (SQLite, memory): the cache then
    writes through directly instead of queueing in the outbox for a background flush."""

    lookup_is_local: ClassVar[bool] = False
    """True if :meth:`lookup` never waits on the network (SQLite, memory, the Sheets mirror):
    async callers then look up inline instead of in a worker thread."""

    flush_interval: ClassVar[float] = 1.0
    """Seconds between background flushes: hit counts for every store, queued writes for
    non-local ones. Longer means bigger batches and fewer requests."""

    flush_batch_size: ClassVar[int] = 500
    """Most queued entries sent in one :meth:`put_many` call by the background flusher."""

    url: str = ""
    """The URL this backend was opened with, credentials removed; safe to log."""

    @abstractmethod
    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        """Return the stored entries among ``keys``; absent keys are left out."""

    def lookup(self, key: str) -> Entry | None:
        """Return one entry for serving a hit, or None.

        Hot path when L1 is cold. An implementation may leave :attr:`Entry.prompt` and
        :attr:`Entry.key_parts` unset here to save decoding them.
        """
        return self.get_many([key]).get(key)

    @abstractmethod
    def put_many(self, entries: Sequence[Entry]) -> None:
        """Insert or replace ``entries`` (upsert by key), all or, on error, possibly some."""

    @abstractmethod
    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete the entries among ``keys``; return how many existed."""

    @abstractmethod
    def iter_entries(self, namespace: str | None = None) -> Iterator[Entry]:
        """Yield every entry (of ``namespace`` if given) without loading all at once."""

    @abstractmethod
    def count(self, namespace: str | None = None) -> int:
        """Number of stored entries (of ``namespace`` if given).

        Expired entries the store still holds are counted; stores that drop expired entries
        on their own (Redis) no longer hold them, so they are not. Either way the number is
        what :meth:`iter_entries` would yield.
        """

    def record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        """Add ``n`` to the hit count and set ``last_hit_at`` for each ``key: (n, at)``.

        Called by the cache's background flusher with hits summed since its last run, so
        a backend pays one batch per flush, not one write per hit. Missing keys are skipped.
        The default reads and rewrites the entries; stores with atomic increments override it.
        """
        found = self.get_many(list(hits))
        for key, entry in found.items():
            n, at = hits[key]
            entry.hits += n
            entry.last_hit_at = max(at, entry.last_hit_at or 0.0)
        if found:
            self.put_many(list(found.values()))

    def delete_where(self, predicate: Callable[[Entry], bool], namespace: str | None = None) -> int:
        """Delete every entry (of ``namespace`` if given) for which ``predicate(entry)`` is
        true; return how many.
        """
        doomed = [e.key for e in self.iter_entries(namespace) if predicate(e)]
        return sum(self.delete_many(batch) for batch in chunks(doomed, 500))

    def clear(self, namespace: str | None = None) -> int:
        """Delete every entry (of ``namespace`` if given); return how many."""
        return self.delete_where(lambda _entry: True, namespace)

    def refresh(self) -> None:
        """Pick up changes other processes or people made (Sheets). No-op by default."""

    def subscribe(self, callback: Callable[[set[str]], None]) -> None:
        """Ask to be told of keys whose entry changed outside this process (a reviewer's
        edit or status, a deletion), so the cache front can drop them from its L1.

        Stores that never learn of outside changes (the default) ignore the callback.
        """

    def try_lock(self, key: str, ttl: float, owner: str) -> bool | None:
        """Take a cross-process lock on computing ``key`` for at most ``ttl`` seconds.

        ``owner`` is the caller's token (each :class:`~sheetcache.Cache` has its own): only
        :meth:`unlock` with the same token releases the lock, so a holder whose lock expired
        and passed to another can never release the new holder's.

        Return True if taken, False if another owner holds it (a store may also return
        False when the answer is already stored), None if this backend has no cross-process
        locks (the default; single-flight is then per :class:`~sheetcache.Cache`).
        """
        return None

    def unlock(self, key: str, owner: str) -> None:
        """Release ``key``'s lock if ``owner`` still holds it (compare-and-delete); else
        do nothing.
        """

    def close(self) -> None:
        """Release connections and files. Further use is an error."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split ``items`` into lists of at most ``size``."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
