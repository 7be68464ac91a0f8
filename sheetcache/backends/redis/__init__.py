"""``redis://``, ``rediss://``, ``redis+unix://``, ``redis+cluster://``, ``rediss+cluster://``
and the ``valkey`` forms: a shared store on Redis 6+ or Valkey, one server or a cluster.

The parts: :mod:`._url` (URLs to clients), :mod:`._layout` (key names per layout version,
buckets and hash tags), :mod:`._scripts` (the Lua), :mod:`._nodes` (which server holds a
bucket), :mod:`._backend` (the :class:`RedisBackend` facade). docs/redis.md tells the story.
"""

from __future__ import annotations

from sheetcache.backends.redis._backend import (
    DURABILITY,
    FORMAT_VERSION,
    NotReplicatedError,
    RedisBackend,
)
from sheetcache.backends.redis._url import split_url

__all__ = ["DURABILITY", "FORMAT_VERSION", "NotReplicatedError", "RedisBackend", "split_url"]
