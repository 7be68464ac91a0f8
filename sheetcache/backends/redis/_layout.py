"""Key names: where each piece of an entry lives in Redis, for each layout version.

A layout splits the key space into *buckets*; every script works inside one bucket.

- **v2** (written by this version): 256 buckets, one per first byte of the cache key
  (``00`` .. ``ff``, the key being sha256 hex, so spread evenly). Every name of a bucket
  carries the bucket as a Cluster hash tag, ``P:v2:{3f}:entry:<key>``, so a bucket is one
  slot and a script never crosses slots; the namespace indexes are per bucket, so one
  namespace spreads over 256 slots, hence over every master, instead of pinning one node.
- **v1** (written by sheetcache 0.1): one bucket with no tag. Still read on single servers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from redis.crc import key_slot

__all__ = ["LATEST", "Bucket", "Layout", "layout"]

LATEST = 2
_HEX = "0123456789abcdef"
_V2_BUCKETS = tuple(a + b for a in _HEX for b in _HEX)
_V2_SET = frozenset(_V2_BUCKETS)


@dataclass(frozen=True, slots=True)
class Bucket:
    """The key names of one bucket (all in one Cluster slot for v2)."""

    tag: str
    slot: int
    base: str
    """What every name of the bucket starts with: ``P:v2:{bb}:`` (``P:v1:`` for v1)."""
    entry: str
    """Base of entry hashes: ``entry + key``."""
    index: str
    """Base of the namespace indexes: ``index + namespace``."""
    expiry: str
    lock: str
    namespaces: str
    """Set of the namespaces that have keys in this bucket."""


class Layout:
    """The names of one layout version under one prefix."""

    def __init__(self, prefix: str, version: int) -> None:
        if version not in (1, 2):
            raise ValueError(f"unknown layout version {version}")
        self.prefix = prefix
        self.version = version
        tags = _V2_BUCKETS if version == 2 else ("",)
        self.buckets = tuple(self._make(tag) for tag in tags)
        self._by_tag = {b.tag: b for b in self.buckets}

    def _make(self, tag: str) -> Bucket:
        base = f"{self.prefix}:v{self.version}:" + (f"{{{tag}}}:" if tag else "")
        slot = key_slot(f"{{{tag}}}".encode()) if tag else key_slot(base.encode())
        return Bucket(tag, slot, base, base + "entry:", base + "index:", base + "expiry:",
                      base + "lock:", base + "namespaces")  # fmt: skip

    def bucket(self, key: str) -> Bucket:
        """The bucket of cache key ``key``."""
        if self.version == 1:
            return self.buckets[0]
        tag = key[:2]
        if tag not in _V2_SET:  # not sha256 hex (a hand-made key): still a stable bucket
            tag = _V2_BUCKETS[zlib.crc32(key.encode()) & 0xFF]
        return self._by_tag[tag]

    def marker(self) -> str:
        """A name whose presence says the layout holds data (v1: its namespaces set)."""
        return self.buckets[0].namespaces


def layout(prefix: str, version: int = LATEST) -> Layout:
    """The :class:`Layout` of ``version`` under ``prefix``."""
    return Layout(prefix, version)
