"""What a read of the sheet found, in O(keys) memory: key -> row, status and fingerprint.

The entries themselves live in the local mirror (:mod:`._mirror`). Per key the index keeps
one int packing the winning row, its review status and a 32-bit fingerprint of the entry,
about 180 bytes a key with the key string and the dict slot (18 MB for 100,000 keys). The
fingerprint tells a re-read which keys changed, so a process drops exactly those from its
L1, whatever process or person changed them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import xxhash

from sheetcache.backends.base import Entry
from sheetcache.backends.sheets._layout import PartsIndex

__all__ = ["Index", "fingerprint", "runs", "serving_fp"]

_ROW_BITS = 24  # rows up to 16.7 M: a sheet holds at most 10 M cells
_ROW_MASK = (1 << _ROW_BITS) - 1
_STATUS = {"": 0, "approved": 1, "rejected": 2}
_STATUS_NAMES = ("", "approved", "rejected", "")


def fingerprint(blob: bytes) -> int:
    """32 bits of xxh3 of a packed entry: what the mirror compares before rewriting a row."""
    return xxhash.xxh3_64_intdigest(blob) & 0xFFFFFFFF


def serving_fp(entry: Entry) -> int:
    """32 bits standing for what a hit serves (value, type, status, expiry).

    When it changes, the L1 copy is dropped. Hit counts and notes don't count. Compared within one process
    only, so Python's (per-process salted) hash is fine and cheap.
    """
    return hash((entry.value, entry.value_type, entry.status, entry.expires_at)) & 0xFFFFFFFF


class Index:
    """Keys -> rows of one read.

    Replaced whole on a full read, so a lookup sees either the old or the new one, never a
    mix; incremental reads and writes add to it in place.
    """

    __slots__ = ("bad", "blank", "complete", "dups", "incomplete", "part_ids", "parts", "slots")

    def __init__(self) -> None:
        self.slots: dict[str, int] = {}
        """Key -> ``fp << 26 | status << 24 | row`` of its winning row."""
        self.dups: dict[str, list[int]] = {}
        """Key -> its losing rows (duplicates)."""
        self.part_ids: dict[int, str] = {}
        """Row -> the parts id its meta names (long values only)."""
        self.bad: dict[int, str] = {}
        """Row -> why it was skipped."""
        self.blank: list[int] = []
        self.incomplete: dict[int, list[Any]] = {}
        """Rows whose parts have not landed yet, retried on the next read."""
        self.parts = PartsIndex()
        self.complete = True
        """False while serving the mirror of an earlier run (rows unknown)."""

    def __contains__(self, key: object) -> bool:
        return key in self.slots

    def __len__(self) -> int:
        return len(self.slots)

    def keys(self) -> Iterator[str]:
        return iter(list(self.slots))

    def row(self, key: str) -> int | None:
        slot = self.slots.get(key)
        return None if slot is None else slot & _ROW_MASK

    def status(self, key: str) -> str:
        slot = self.slots.get(key)
        return "" if slot is None else _STATUS_NAMES[(slot >> _ROW_BITS) & 3]

    def fp(self, key: str) -> int | None:
        slot = self.slots.get(key)
        return None if slot is None else slot >> (_ROW_BITS + 2)

    def rows(self) -> dict[str, int]:
        """Key -> winning row, for every key."""
        return {k: s & _ROW_MASK for k, s in self.slots.items()}

    def set(self, key: str, row: int, status: str, fp: int) -> None:
        self.slots[key] = fp << (_ROW_BITS + 2) | _STATUS.get(status, 0) << _ROW_BITS | row

    def all_rows(self, keys: Sequence[str]) -> list[int]:
        """Every row of ``keys``: winners and duplicates."""
        out: list[int] = []
        for key in keys:
            row = self.row(key)
            if row is not None:
                out.append(row)
                out.extend(self.dups.get(key, ()))
        return out

    def dup_rows(self) -> list[int]:
        return [row for rows in self.dups.values() for row in rows]


def runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Rows -> sorted runs of consecutive rows ``[(first, last)]``."""
    out: list[tuple[int, int]] = []
    for row in sorted(set(rows)):
        if out and out[-1][1] + 1 == row:
            out[-1] = (out[-1][0], row)
        else:
            out.append((row, row))
    return out
