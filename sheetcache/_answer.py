"""Values that cross the front's public API: :class:`Answer` in, :class:`Lookup` out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from sheetcache.backends.base import Entry

__all__ = ["Answer", "Lookup"]

T = TypeVar("T")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """What a ``call_fn`` may return to store facts about the call beside its answer.

    The cache stores :attr:`value` with :attr:`metadata` (as
    :attr:`Entry.metadata <sheetcache.Entry.metadata>`) and hands the plain value to the
    caller, on the miss and on every hit.

    Example:
        >>> from sheetcache import Answer, Cache
        >>> cache = Cache("memory://")
        >>> usage = {"model": "gpt-4o", "input_tokens": 12, "output_tokens": 3}
        >>> cache.get_or_call("2+2?", lambda p: Answer("4", metadata={"usage": usage}))
        '4'
        >>> cache.lookup("2+2?").metadata["usage"]["output_tokens"]
        3
    """

    value: T
    """The answer itself."""
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """JSON facts about the call, e.g. ``{"usage": {...}}`` (see :mod:`sheetcache._savings`)."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """The result of :meth:`Cache.lookup <sheetcache.Cache.lookup>`: hit or miss, and why."""

    hit: bool
    """True if a stored answer would be served now."""
    key: str
    """The stored key of the prompt and key parts."""
    value: Any = None
    """The answer on a hit, else None."""
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """The stored entry's metadata on a hit (usage, ...), else empty."""
    entry: Entry | None = None
    """The stored entry on a hit (as the store returned it), else None."""

    def __bool__(self) -> bool:
        return self.hit
