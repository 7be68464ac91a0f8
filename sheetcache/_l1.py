"""The in-process L1: recent answers by their exact lookup bytes, in front of the store.

Keyed by the xxh3-64 of :func:`~sheetcache._keys.lookup_bytes` (~0.2 us for 2 KB where
sha256 takes ~3.5 us); each item keeps the exact bytes and the front compares them on every
hit, so a 64-bit collision is a miss, never a different question's answer. LRU, bounded.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any

import xxhash

from sheetcache._codec import is_immutable
from sheetcache._savings import entry_savings
from sheetcache.backends.base import Entry

__all__ = ["DECODE", "L1", "HitRecord", "L1Item", "hit_record", "l1_hash", "may_hold_null"]

#: Held instead of a mutable value: a hit decodes the text afresh, so callers can't alias.
DECODE: Any = object()

l1_hash = xxhash.xxh3_64_intdigest

# re's literal scan finds b"null" in 2 KB in ~0.6 us where ``b"null" in`` takes ~1.2 us.
_find_null = re.compile(rb"null").search


def may_hold_null(lookup: bytes, prompt: Any, key_parts: Mapping[str, Any]) -> bool:
    """Whether ``lookup`` (these inputs' lookup bytes) may hold a JSON ``null``.

    A str prompt is one JSON string, so only the key parts can; they are few and flat, so
    walking them beats scanning 2 KB of bytes. Anything else is scanned.
    """
    if type(prompt) is str:
        return any(v is None or type(v) not in _FLAT for v in key_parts.values())
    return _find_null(lookup) is not None


_FLAT = frozenset({str, int, float, bool})


class L1Item:
    """One answer as the hit path needs it, with what a hit on it saves precomputed."""

    __slots__ = (
        "duration",
        "expires_at",
        "has_null",
        "key",
        "lookup",
        "metadata",
        "text",
        "tokens",
        "usd",
        "value",
        "value_type",
    )

    def __init__(self, lookup: bytes, entry: Entry, value: Any, has_null: bool) -> None:
        self.lookup = lookup
        """Exact lookup bytes; compared on every hit."""
        self.key = entry.key
        self.expires_at = entry.expires_at
        self.value = value if is_immutable(value) else DECODE
        """The answer if it is immutable, else :data:`DECODE`."""
        self.value_type = entry.value_type
        self.text = entry.value
        self.duration = entry.duration or 0.0
        # The bytes may hold a null, so a NaN may hide in a later lookup's (orjson writes
        # NaN as null): such hits let the canonical form judge (see may_hold_null).
        self.has_null = has_null
        self.metadata: Mapping[str, Any] = entry.metadata
        # Computed once here so a hit adds two numbers instead of pricing a model.
        self.tokens, self.usd = entry_savings(entry.metadata) if entry.metadata else (0, None)


class HitRecord:
    """What counting one hit needs, for hits served without an L1 item (no L1, a follower
    of a flight, a sample). ``key=""`` keeps it out of the per-key counts sent to the store.
    :class:`L1Item` has the same four attributes, so the counters take either.
    """

    __slots__ = ("duration", "key", "tokens", "usd")

    def __init__(self, key: str, duration: float, tokens: int, usd: float | None) -> None:
        self.key, self.duration, self.tokens, self.usd = key, duration, tokens, usd


_NOTHING_SAVED = (0, None)


def hit_record(key: str, duration: float | None, metadata: Mapping[str, Any]) -> HitRecord:
    """A :class:`HitRecord` for an entry with this duration and metadata."""
    tokens, usd = entry_savings(metadata) if metadata else _NOTHING_SAVED
    return HitRecord(key, duration or 0.0, tokens, usd)


class L1:
    """A bounded LRU of :class:`L1Item` by :func:`l1_hash` of their lookup bytes.

    Reads take no lock (one dict read is atomic); writes and eviction do. The front reads
    :attr:`items` directly on its hot path to save a method call.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[int, L1Item] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.items)

    def find(self, lookup: bytes) -> L1Item | None:
        """The item stored for exactly these lookup bytes, or None."""
        item = self.items.get(l1_hash(lookup))
        return item if item is not None and item.lookup == lookup else None

    def touch(self, item: L1Item) -> None:
        """Mark ``item`` recently used."""
        try:  # noqa: SIM105 - cheaper than contextlib.suppress on the hit path
            self.items.move_to_end(l1_hash(item.lookup))
        except KeyError:  # evicted by another thread just now
            pass

    def put(self, item: L1Item) -> None:
        """Insert or replace ``item``, evicting the least recently used beyond :attr:`size`."""
        if self.size == 0:
            return
        with self._lock:
            self.items[l1_hash(item.lookup)] = item
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def drop(self, lookup: bytes) -> None:
        """Forget the item for these lookup bytes, if any."""
        with self._lock:
            self.items.pop(l1_hash(lookup), None)

    def forget_keys(self, keys: Collection[str]) -> None:
        """Drop items whose stored entry changed outside this process."""
        if not keys:
            return
        with self._lock:
            for h in [h for h, item in self.items.items() if item.key in keys]:
                del self.items[h]

    def clear(self) -> None:
        with self._lock:
            self.items.clear()
