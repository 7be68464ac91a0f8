"""Exceptions raised by sheetcache.

The whole tree::

    SheetcacheError
    ├── ConfigError            bad URL, missing optional dependency, bad option (ValueError too)
    │   └── MissingDependencyError   an extra is not installed: the message names the pip command
    ├── SchemaError            a store's format is not the one this version reads; nothing was changed
    ├── BackendError           the store failed (network, quota, permission); the cache logs it and
    │                          carries on, so callers of get_or_call never see it
    ├── CacheMissError         replay mode: the answer is not stored and nothing was called
    └── UnsupportedValueError  an answer cannot be stored (TypeError too); ``.value`` keeps the answer

Key parts that cannot be canonicalised raise a plain :class:`TypeError` naming the part.
"""

from __future__ import annotations

from typing import Any


class SheetcacheError(Exception):
    """Base class of every error sheetcache raises on purpose."""


class ConfigError(SheetcacheError, ValueError):
    """A cache URL, option or environment setting is wrong; the message says how to fix it."""


class MissingDependencyError(ConfigError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class SchemaError(SheetcacheError):
    """A store holds a format this version does not read. The store was left untouched."""


class BackendError(SheetcacheError):
    """A backend operation failed. The cache front catches it and fails open."""


class CacheMissError(SheetcacheError, LookupError):
    """Replay mode found no stored answer; the function was not called.

    The message says which key missed and, where it can, why (the nearest stored entry and
    what differs). :attr:`key` is the stored key that was looked up.
    """

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class UnsupportedValueError(SheetcacheError, TypeError):
    """The answer has a type sheetcache cannot store.

    The answer itself is kept on :attr:`value` so the money spent on it is not lost.
    """

    def __init__(self, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.value = value
