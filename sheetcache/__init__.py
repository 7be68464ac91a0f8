"""sheetcache: stop paying for the same LLM call twice.

>>> from sheetcache import Cache
>>> cache = Cache("memory://")
>>> cache.get_or_call("What is 2+2?", lambda prompt: "4", model="gpt-4o")
'4'
"""

from sheetcache._answer import Answer, Lookup
from sheetcache._cache import Cache
from sheetcache._errors import (
    BackendError,
    CacheMissError,
    ConfigError,
    MissingDependencyError,
    SchemaError,
    SheetcacheError,
    UnsupportedValueError,
)
from sheetcache._keys import KEY_FORMAT_VERSION, make_key
from sheetcache._modes import MODES
from sheetcache._stats import CacheStats
from sheetcache.backends.base import Backend, Entry
from sheetcache.backends.memory import MemoryBackend
from sheetcache.backends.sqlite import SQLiteBackend

__version__ = "0.1.0"

__all__ = [
    "KEY_FORMAT_VERSION",
    "MODES",
    "Answer",
    "Backend",
    "BackendError",
    "Cache",
    "CacheMissError",
    "CacheStats",
    "ConfigError",
    "Entry",
    "Lookup",
    "MemoryBackend",
    "MissingDependencyError",
    "SQLiteBackend",
    "SchemaError",
    "SheetcacheError",
    "UnsupportedValueError",
    "__version__",
    "make_key",
]
