"""Copy entries from one store to another: SQLite -> Sheets to publish answers for review,
Sheets -> Redis to scale out, any store to any other.

The copy streams: the source is read with ``iter_entries`` a batch at a time, and memory
holds one batch, never the whole cache. It is resumable: each batch first asks the
destination which keys it already holds (``get_many``) and copies only the others, so
running the same migration again after an interruption, or after it finished, copies
nothing twice and never overwrites an entry the destination already has (a reviewer's
verdict in a Sheet stays as it is). A batch that fails is counted and reported, and the
copy goes on with the next one.

With ``rekey=True``, entries stored under key format 1 (before RFC 8785 keys) are copied
under their format-2 key instead, with their prompt and parts as format 2 stores them
(secret-named parts dropped). An entry counts as format 1 when its stored prompt and parts
give its key under format 1 again; any other entry is copied as it is. Without it, old
entries keep their key and the cache still finds them through its fallback lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sheetcache._errors import ConfigError
from sheetcache._keys import canonical_bytes, key_of, legacy_key, parse_canonical
from sheetcache._urls import backend_from_url
from sheetcache.backends.base import Backend, Entry

__all__ = ["MigrationResult", "migrate", "migrate_urls", "parse_since"]


@dataclass
class MigrationResult:
    """What a migration did. ``ok`` is False if anything failed."""

    copied: int = 0
    """Entries written to the destination."""
    skipped: int = 0
    """Entries the destination already had (from an earlier run): left as they are."""
    expired: int = 0
    """Entries past their ``expires_at``: never served, so not copied."""
    filtered: int = 0
    """Entries created before ``since``."""
    failed: int = 0
    """Entries of batches the destination refused; run again to retry them."""
    rekeyed: int = 0
    """Of the copied entries, those moved from key format 1 to format 2 (``rekey=True``)."""
    errors: list[str] = field(default_factory=list)
    """One line per failure: which batch, what the store said."""
    read_error: str | None = None
    """Set if reading the source broke off: the entries after that point were not seen."""

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.read_error is None

    @property
    def seen(self) -> int:
        return self.copied + self.skipped + self.expired + self.filtered + self.failed


def parse_since(text: str) -> float:
    """An ISO date or date-time as Unix time. Without a time zone it is local time.

    >>> parse_since("2024-05-01T12:00:00+00:00")
    1714564800.0
    """
    raw = text.strip()
    if raw.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not read "Z"
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ConfigError(
                f"--since {text!r} is not an ISO date or date-time: use 2024-05-01 or "
                "2024-05-01T12:00:00+00:00"
            ) from None
        moment = datetime(day.year, day.month, day.day)
    return moment.timestamp()


def migrate(
    source: Backend,
    destination: Backend,
    *,
    namespace: str | None = None,
    since: float | None = None,
    batch_size: int = 500,
    progress: Callable[[MigrationResult], None] | None = None,
    rekey: bool = False,
) -> MigrationResult:
    """Copy the entries of ``source`` (of ``namespace`` if given, created at or after the
    Unix time ``since`` if given) that ``destination`` does not hold yet.

    Writes go straight to ``destination.put_many``, one call per batch. ``progress`` is
    called with the running totals after each batch. ``rekey=True`` copies format-1
    entries under their format-2 key (see the module docstring).

    Example:
        >>> from sheetcache import MemoryBackend
        >>> src, dst = MemoryBackend(), MemoryBackend()
        >>> migrate(src, dst).copied
        0
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, not {batch_size!r}")
    result = MigrationResult()
    now = time.time()
    for number, batch in enumerate(_batches(source, namespace, batch_size, result), 1):
        wanted = []
        for e in batch:
            if since is not None and e.created_at < since:
                result.filtered += 1
            elif e.is_expired(now):
                result.expired += 1
            else:
                wanted.append(_rekeyed(e, result) if rekey else e)
        if wanted:
            try:
                present = destination.get_many([e.key for e in wanted])
                todo = [e for e in wanted if e.key not in present]
                if todo:
                    destination.put_many(todo)
            except Exception as exc:  # noqa: BLE001 - count it, report it, go on
                result.failed += len(wanted)
                result.errors.append(
                    f"batch {number} ({len(wanted)} entries): {type(exc).__name__}: {exc}"
                )
            else:
                result.skipped += len(wanted) - len(todo)
                result.copied += len(todo)
        if progress is not None:
            progress(result)
    return result


def _rekeyed(entry: Entry, result: MigrationResult) -> Entry:
    """``entry`` under its format-2 key if it is a format-1 entry, else ``entry`` itself."""
    parts = entry.key_parts or {}
    if not isinstance(parts, dict) or legacy_key(entry.prompt, entry.namespace, parts) != entry.key:
        return entry
    try:
        canonical = canonical_bytes(entry.prompt, entry.namespace, parts)
    except TypeError:
        return entry
    namespace, prompt, key_parts = parse_canonical(canonical)
    result.rekeyed += 1
    return Entry.from_dict(
        {**entry.to_dict(), "key": key_of(canonical), "namespace": namespace,
         "prompt": prompt, "key_parts": key_parts}
    )  # fmt: skip


def _batches(
    source: Backend, namespace: str | None, size: int, result: MigrationResult
) -> Iterator[list[Entry]]:
    """``source``'s entries in lists of ``size``; a read failure ends them and is recorded."""
    entries = source.iter_entries(namespace)
    while True:
        batch: list[Entry] = []
        try:
            for e in entries:
                batch.append(e)
                if len(batch) >= size:
                    break
        except Exception as exc:  # noqa: BLE001 - the source broke off: report, stop
            result.read_error = f"{type(exc).__name__}: {exc}"
            if batch:
                yield batch
            return
        if not batch:
            return
        yield batch


def migrate_urls(
    source_url: str,
    destination_url: str,
    **options: object,
) -> MigrationResult:
    """:func:`migrate` between two cache URLs; both backends are closed afterwards."""
    source = backend_from_url(source_url)
    try:
        destination = backend_from_url(destination_url)
        try:
            return migrate(source, destination, **options)  # type: ignore[arg-type]
        finally:
            destination.close()
    finally:
        source.close()
