"""Explain a miss: which stored entry is nearest, and which key paths differ from it.

:func:`explain` keys the prompt as the cache would, looks the key up, and on a miss reads
the namespace's entries, keeping the one whose prompt and key parts differ in the fewest
places. The search is bounded: it reads at most ``limit`` entries (default
:data:`SCAN_LIMIT`, 100,000) in the store's own order, scoring each with a coarse compare
(whole messages, whole key parts: C-speed equality, no walk), and walks only the 8 best
for the exact difference count. It stops early at an entry whose every message and part
equals the query's. So its cost is about one read of the namespace: ~1 s per 100,000
entries on SQLite (``benchmarks/bench_explain.py``). :attr:`Explanation.scanned` says how
many it read; ``limit=None`` reads them all.

Differences are key paths, old (stored) value first::

    parts.temperature: 0.2 → 0.7
    prompt[3].content: changed at char 118
    parts.seed: added (42)

It uses only the cache's public surface (``lookup`` decides hit or miss exactly as
``get_or_call`` would; ``backend.lookup`` and ``backend.iter_entries`` find the reason and
the nearest entry), so it works on every store.
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson

from sheetcache._keys import canonical_bytes, parse_canonical
from sheetcache.backends.base import Entry

if TYPE_CHECKING:
    from sheetcache._cache import Cache

__all__ = ["SCAN_LIMIT", "Explanation", "diff", "diff_entries", "explain"]

#: Entries :func:`explain` reads at most, by default, looking for the nearest one.
SCAN_LIMIT = 100_000

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SHORT = 40  # strings up to this long are shown whole in a difference
_CANDIDATES = 8  # entries with the best coarse score that get an exact comparison
_ABSENT = object()


@dataclass
class Explanation:
    """Why a lookup hits or misses, from :func:`explain` (or ``Cache.explain``)."""

    hit: bool
    """True if the cache would answer this lookup without calling."""
    key: str
    """The key the lookup computes (format 2)."""
    nearest: Entry | None
    """On a miss, the stored entry of the namespace that differs in the fewest key paths
    (None if none was read); on a hit, the entry that answers."""
    diff: list[str]
    """Key paths where :attr:`nearest` differs, as ``path: old → new`` lines."""
    scanned: int
    """Entries read looking for :attr:`nearest` (0 on a hit)."""
    namespace: str = "default"
    reason: str = ""
    """Set when the key is stored but not served (rejected, expired) or stored under the
    old key format."""
    limited: bool = field(default=False, repr=False)
    """True if the scan stopped at its limit before reading every entry."""

    def __str__(self) -> str:
        lines = []
        if self.hit:
            lines.append(f"hit: key {self.key[:12]} is stored in namespace {self.namespace!r}")
            if self.reason:
                lines.append(f"  ({self.reason})")
            return "\n".join(lines)
        lines.append(f"miss: key {self.key[:12]} is not stored in namespace {self.namespace!r}")
        if self.reason:
            lines.append(f"  {self.reason}")
        if self.nearest is None:
            lines.append(f"  no stored entry to compare with (read {self.scanned:,})")
            return "\n".join(lines)
        created = datetime.fromtimestamp(self.nearest.created_at, timezone.utc)
        count = len(self.diff)
        lines.append(
            f"  nearest stored entry: {self.nearest.key[:12]} (created "
            f"{created:%Y-%m-%d %H:%M} UTC), {count} difference{'s' if count != 1 else ''}:"
        )
        lines.extend(f"    {line}" for line in self.diff or ["(none: same prompt and parts)"])
        if self.limited:
            lines.append(
                f"  (compared with the first {self.scanned:,} entries only: that is the limit; "
                "pass limit=None to compare with all)"
            )
        return "\n".join(lines)


def explain(
    cache: Cache, prompt: Any, key_parts: dict[str, Any], *, limit: int | None = SCAN_LIMIT
) -> Explanation:
    """Explain whether ``prompt`` with ``key_parts`` hits in ``cache``, and if not, why.

    Args:
        cache: the cache to ask.
        prompt: the prompt, as passed to ``get_or_call``.
        key_parts: the key parts, as passed to ``get_or_call``.
        limit: read at most this many entries looking for the nearest; None for all.

    Raises:
        TypeError: the prompt or a part cannot be keyed (as ``get_or_call`` would).

    Example:
        >>> from sheetcache import Cache
        >>> cache = Cache("memory://")
        >>> _ = cache.get_or_call("Hi", lambda p: "Hello", model="m", temperature=0.2)
        >>> print(explain(cache, "Hi", {"model": "m", "temperature": 0.7}).diff)
        ['parts.temperature: 0.2 → 0.7']
    """
    namespace = cache.namespace
    # The cache's own lookup decides hit or miss (store, outbox, old key format, review
    # status, expiry, decoding), so explain never disagrees with get_or_call.
    found = cache.lookup(prompt, **key_parts)
    key = found.key
    if found.hit:
        entry = found.entry
        why = "" if entry is None or entry.key == key else (
            f"stored under key format 1 as {entry.key[:12]}: served, and re-keyed under the new key"
        )  # fmt: skip
        return Explanation(True, key, entry, [], 0, namespace, why)
    stored = cache.backend.lookup(key)
    if stored is not None:  # stored, yet not served: say why
        if stored.status == "rejected":
            why = "stored, but a reviewer rejected it" + (f": {stored.note}" if stored.note else "")
        elif stored.is_expired():
            why = "stored, but expired"
        else:
            why = f"stored, but its {stored.value_type} value does not read back"
        return Explanation(False, key, stored, [], 0, namespace, why)
    _ns, canon_prompt, canon_parts = parse_canonical(canonical_bytes(prompt, namespace, key_parts))
    wanted = {"prompt": canon_prompt, "parts": canon_parts}
    nearest, scanned, limited = _nearest(cache.backend.iter_entries(namespace), wanted, limit)
    lines = [] if nearest is None else diff(_shape(nearest), wanted)
    return Explanation(False, key, nearest, lines, scanned, namespace, limited=limited)


def diff_entries(old: Entry, new: Entry) -> list[str]:
    """Key paths where two stored entries differ (``sheetcache explain A --against B``)."""
    lines = (
        []
        if old.namespace == new.namespace
        else [_change("namespace", old.namespace, new.namespace)]
    )
    return lines + diff(_shape(old), _shape(new))


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Readable differences between two JSON values, one ``path: what changed`` per line.

    Given ``{"prompt": ..., "parts": ...}`` dicts, paths read ``prompt[3].content`` and
    ``parts.temperature``. Numbers compare by value (``0 == 0.0``), booleans by identity.

    >>> diff({"parts": {"t": 0.2, "seed": 1}}, {"parts": {"t": 0.7}})
    ['parts.seed: removed (was 1)', 'parts.t: 0.2 → 0.7']
    """
    out: list[str] = []
    _walk(old, new, path, out, None)
    return out


# -- internals ----------------------------------------------------------------------------


def _shape(entry: Entry) -> dict[str, Any]:
    return {"prompt": entry.prompt, "parts": entry.key_parts or {}}


def _nearest(
    entries: Iterable[Entry], wanted: dict[str, Any], limit: int | None
) -> tuple[Entry | None, int, bool]:
    """The nearest entry: a coarse score for every entry read (C-speed compares of whole
    messages and parts), then the exact difference count for the few best of those.
    """
    prompt, parts = wanted["prompt"], wanted["parts"]
    best: list[tuple[int, float, Entry]] = []  # (coarse score, -created_at, entry), sorted
    scanned = 0
    now = time.time()
    limited = False
    for entry in entries:
        if limit is not None and scanned >= limit:
            limited = True
            break
        scanned += 1
        if entry.status == "rejected" or entry.is_expired(now):
            continue
        score = _coarse(entry.prompt, entry.key_parts or {}, prompt, parts)
        if len(best) < _CANDIDATES or score <= best[-1][0]:
            bisect.insort(best, (score, -entry.created_at, entry), key=lambda c: c[:2])
            del best[_CANDIDATES:]
            if score == 0:  # same content at every top-level place: none can be nearer
                break
    if not best:
        return None, scanned, limited
    exact = [(_count(_shape(c[2]), wanted, None), c[1], c[2]) for c in best]
    return min(exact, key=lambda c: c[:2])[2], scanned, limited


def _coarse(prompt: Any, parts: dict[str, Any], want_prompt: Any, want_parts: Any) -> int:
    """Top-level places that differ: key parts, and messages of a chat prompt."""
    score = 0
    for k in parts.keys() | want_parts.keys():
        if parts.get(k, _ABSENT) != want_parts.get(k, _ABSENT):
            score += 1
    if type(prompt) is list and type(want_prompt) is list:
        score += abs(len(prompt) - len(want_prompt))
        score += sum(1 for a, b in zip(prompt, want_prompt, strict=False) if a != b)
    elif prompt != want_prompt:
        score += 1
    return score


class _Enough(Exception):
    """The difference count passed the budget: this entry is not the nearest."""


def _count(old: Any, new: Any, budget: int | None) -> int:
    counter = [0, budget]
    try:
        _walk(old, new, "", None, counter)
    except _Enough:
        return (budget or 0) + 1
    return counter[0]  # type: ignore[return-value]


def _same(a: Any, b: Any) -> bool:
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return bool(a == b)


def _walk(old: Any, new: Any, path: str, out: list[str] | None, counter: list[Any] | None) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            sub = _join(path, k)
            if k not in new:
                _emit(out, counter, f"{sub}: removed (was {_show(old[k])})")
            elif k not in old:
                _emit(out, counter, f"{sub}: added ({_show(new[k])})")
            else:
                _walk(old[k], new[k], sub, out, counter)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            _walk(a, b, f"{path}[{i}]", out, counter)
        if len(old) != len(new):
            _emit(out, counter, f"{path or 'value'}: {len(old)} → {len(new)} items")
        return
    if _same(old, new):
        return
    if isinstance(old, str) and isinstance(new, str) and (len(old) > _SHORT or len(new) > _SHORT):
        at = _first_difference(old, new)
        size = "" if len(old) == len(new) else f" ({len(old):,} → {len(new):,} chars)"
        _emit(out, counter, f"{path or 'value'}: changed at char {at}{size}")
        return
    _emit(out, counter, _change(path or "value", old, new))


def _first_difference(a: str, b: str) -> int:
    """Index of the first differing character, by halving: slice compares run in C."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi) // 2
        if a[lo : mid + 1] == b[lo : mid + 1]:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _emit(out: list[str] | None, counter: list[Any] | None, line: str) -> None:
    if out is not None:
        out.append(line)
    if counter is not None:
        counter[0] += 1
        if counter[1] is not None and counter[0] > counter[1]:
            raise _Enough


def _change(path: str, old: Any, new: Any) -> str:
    return f"{path}: {_show(old)} → {_show(new)}"


def _join(path: str, key: Any) -> str:
    name = str(key)
    if _IDENT.match(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{orjson.dumps(name).decode()}]"


def _show(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= _SHORT + 2 else text[: _SHORT - 1] + "…"
