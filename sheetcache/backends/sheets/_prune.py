"""What to delete when the spreadsheet nears Google's 10,000,000-cell limit.

A spreadsheet refuses writes past 10,000,000 cells (rows x columns of every worksheet). Before
an append would cross ``max_cells``, the backend deletes rows, in this order, until the append
fits with 1 % of the limit to spare (so pruning runs once per ~10,000 new rows at Google's
limit, not on every write):

1. duplicate rows (the losers of the duplicate rule: nobody is served from them);
2. expired entries, soonest-expired first;
3. unreviewed entries (empty status): fewest hits first, then least recently used
   (last hit, else created), then oldest.

``approved`` entries are never pruned, and neither are ``rejected`` ones: both carry a
reviewer's judgement. If that is not enough, the write fails with a message saying the
sheet is full (answers wait in the outbox) and what to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sheetcache.backends.base import Entry

__all__ = ["SLACK", "Victims", "choose_victims"]

#: Pruning frees this fraction of ``max_cells`` beyond what the append needs.
SLACK = 0.01


@dataclass(slots=True)
class Victims:
    keys: list[str]
    """Entries to delete (all their rows)."""
    dup_rows: list[int]
    """Losing duplicate rows to delete (their key stays, served from the winner)."""
    rows: int
    """Main-tab rows freed in all."""


def choose_victims(
    entries: Iterable[tuple[Entry, int]],
    dup_rows: Iterable[int],
    rows_needed: int,
    now: float | None = None,
) -> Victims:
    """Pick rows to free ``rows_needed`` main-tab rows by the policy above (maybe fewer)."""
    now = time.time() if now is None else now
    victims = Victims([], [], 0)
    for row in sorted(dup_rows, reverse=True):
        if victims.rows >= rows_needed:
            return victims
        victims.dup_rows.append(row)
        victims.rows += 1
    expired: list[tuple[float, str]] = []
    unreviewed: list[tuple[int, float, float, str]] = []
    for entry, _row in entries:
        if entry.status in ("approved", "rejected"):
            continue
        if entry.is_expired(now):
            expired.append((entry.expires_at or 0.0, entry.key))
        else:
            used = entry.last_hit_at or entry.created_at
            unreviewed.append((entry.hits, used, entry.created_at, entry.key))
    for _when, key in sorted(expired):
        if victims.rows >= rows_needed:
            return victims
        victims.keys.append(key)
        victims.rows += 1
    for *_rank, key in sorted(unreviewed):
        if victims.rows >= rows_needed:
            return victims
        victims.keys.append(key)
        victims.rows += 1
    return victims
