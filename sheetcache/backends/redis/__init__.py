"""``redis://``, ``rediss://``, ``redis+unix://``, ``redis+cluster://``, ``rediss+cluster://``
and the ``valkey`` forms: a shared store on Redis 6+ or Valkey, one server or a cluster.

The parts: :mod:`._url` (URLs to clients), :mod:`._layout` (key names per layout version,
buckets and hash tags), :mod:`._hash` (an entry as hash fields), :mod:`._scripts` (the
Lua), :mod:`._nodes` (which server holds a bucket; batches as one pipeline per server),
:mod:`._durability` (``WAIT`` for a replica), :mod:`._backend` (the :class:`RedisBackend`
facade, with the circuit breaker of :mod:`sheetcache._breaker`). docs/redis.md tells the
story.
"""

from __future__ import annotations

from sheetcache.backends.redis._backend import FORMAT_VERSION, RedisBackend
from sheetcache.backends.redis._durability import DURABILITY, NotReplicatedError
from sheetcache.backends.redis._url import split_url

__all__ = ["DURABILITY", "FORMAT_VERSION", "NotReplicatedError", "RedisBackend", "split_url"]
