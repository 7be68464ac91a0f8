"""Stores behind the cache. Each module holds one store; :mod:`.base` holds the contract."""

from sheetcache.backends.base import Backend, Entry
from sheetcache.backends.memory import MemoryBackend
from sheetcache.backends.sqlite import SQLiteBackend

__all__ = ["Backend", "Entry", "MemoryBackend", "SQLiteBackend"]
