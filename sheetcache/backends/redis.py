"""``redis://``, ``rediss://``, ``redis+unix://``: a shared store on Redis 6+ (or Valkey).

Key layout (``P`` is the prefix, ``sheetcache`` unless the URL says ``?prefix=...``; the
``v1`` is the format version, so a later layout uses other names and never misreads these):

=============================  ===========================================================
``P:v1:entry:<key>``           hash, one per entry: ``value``, ``value_type``, ``namespace``,
                               ``prompt`` and ``key_parts`` (JSON), ``created_at``,
                               ``expires_at``, ``hits``, ``last_hit_at``, ``duration``,
                               ``status``, ``note``, and ``serve``: JSON ``[value_type,
                               expires_at, status, duration]``, what a hit needs besides the
                               value, so a hit reads two fields. A None field is absent.
                               Floats are written with ``repr`` so they read back exactly.
                               Redis' own expiry (``PEXPIREAT``) drops it at ``expires_at``.
``P:v1:index:<namespace>``     sorted set of the namespace's keys, all scored 0, so
                               ``ZRANGEBYLEX`` pages through it in key order for
                               :meth:`~RedisBackend.iter_entries` (stable under concurrent
                               writes: no duplicates, nothing present throughout is missed).
``P:v1:expiry:<namespace>``    sorted set of the keys that have an expiry, scored by it in
                               ms: expired keys leave the index through it (Redis can't tell us).
``P:v1:namespaces``            set of namespace names, for ``count()`` and ``iter_entries()``
                               over all of them.
``P:v1:lock:<key>``            the cross-process single-flight lock: a random token, ``PX``.
=============================  ===========================================================

Writes, deletes and hit counts are small Lua scripts (one call per 50 entries written, per
entry deleted, per 200 hit counts), sent in pipelines of up to 500 entries: each keeps a hash and its index entries consistent
atomically without ``MULTI``. Only commands of Redis <= 6.0 are used. Scripts touch keys they compute from the prefix, so this store is
for a single Redis (or a primary with replicas, or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sheetcache._errors import ConfigError
from sheetcache._urls import redact_url
from sheetcache.backends.base import Backend, Entry, chunks

__all__ = ["FORMAT_VERSION", "RedisBackend"]

#: Part of every key name; bump it when the layout changes.
FORMAT_VERSION = 1

_BATCH = 500
# Keys per hit-count script and entries (or value bytes) per write script: bounds how long
# one call blocks Redis (about a millisecond of its time).
_HITS_BATCH = 200
_PUT_GROUP = 50
_PUT_GROUP_BYTES = 1 << 20


# KEYS: namespaces; ARGV: entry base, index base, expiry base,
#       JSON [[key, namespace, expire-at ms or "", [field, value, ...]], ...]
# A group of entries travels as one JSON argument (all strings, so nothing is lost to Lua's
# numbers): packing arguments in redis-py, not Redis, is most of a batch's cost.
_PUT = """
local eb, ib, xb = ARGV[1], ARGV[2], ARGV[3]
for _, e in ipairs(cjson.decode(ARGV[4])) do
  local key, ns, exp = e[1], e[2], e[3]
  local ek = eb .. key
  local old = redis.call('HGET', ek, 'namespace')
  if old and old ~= ns then
    redis.call('ZREM', ib .. old, key)
    redis.call('ZREM', xb .. old, key)
  end
  redis.call('DEL', ek)
  redis.call('HSET', ek, unpack(e[4]))
  redis.call('ZADD', ib .. ns, 0, key)
  redis.call('SADD', KEYS[1], ns)
  if exp ~= '' then
    redis.call('PEXPIREAT', ek, exp)
    redis.call('ZADD', xb .. ns, exp, key)
  else
    redis.call('ZREM', xb .. ns, key)
  end
end
return 1
"""

# KEYS: entry; ARGV: key, index base, expiry base. Returns 1 if the entry existed.
_DELETE = """
local ns = redis.call('HGET', KEYS[1], 'namespace')
if not ns then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[2] .. ns, ARGV[1])
redis.call('ZREM', ARGV[3] .. ns, ARGV[1])
return 1
"""

# KEYS: entries; ARGV: n1, at1, n2, at2, ... A missing entry is skipped, never created as a
# hits-only hash. One call per _HITS_BATCH keys: a few microseconds of server time per key.
_HITS = """
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    local at = ARGV[2 * i]
    redis.call('HINCRBY', k, 'hits', ARGV[2 * i - 1])
    local last = redis.call('HGET', k, 'last_hit_at')
    if not last or tonumber(last) < tonumber(at) then
      redis.call('HSET', k, 'last_hit_at', at)
    end
  end
end
return 1
"""

# KEYS: index, expiry; ARGV: entry base, limit. Drops keys Redis has expired from the index,
# by the server's clock (a client's may be off). Returns how many expiry members it read.
_PRUNE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now, 'LIMIT', 0, ARGV[2])
for _, k in ipairs(gone) do
  if redis.call('EXISTS', ARGV[1] .. k) == 0 then redis.call('ZREM', KEYS[1], k) end
  redis.call('ZREM', KEYS[2], k)
end
return #gone
"""

# KEYS: index, expiry; ARGV: entry base, key, ... Drops index members whose entry is gone
# (evicted under maxmemory, deleted by hand), but only if it is still gone.
_FORGET = """
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
  end
end
return 1
"""

# KEYS: index, expiry, namespaces; ARGV: namespace. Forget an emptied namespace atomically,
# so a concurrent put into it is never left out of the namespaces set.
_DROP_NAMESPACE = """
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[1])
end
return 1
"""

# KEYS: lock, entry; ARGV: token, ttl ms, client now (s).
# An answer already stored (servable: not rejected, not expired by the caller's clock) means
# the race is lost: return 0 so the caller reads it instead of computing it again. This
# closes the window between a caller's lookup miss and its lock attempt, in which the other
# process may have stored the answer and released the lock.
_LOCK = """
local e = redis.call('HMGET', KEYS[2], 'value', 'status', 'expires_at')
if e[1] and e[2] ~= 'rejected' and not (e[3] and tonumber(e[3]) <= tonumber(ARGV[3])) then
  return 0
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# KEYS: lock; ARGV: token. Only the holder deletes its lock: after it expired and another
# process took it, a late unlock must not release the new holder's.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_DEFAULTS: dict[str, Any] = {
    # A dead or hung server must not hang a caller: the cache front fails open on errors.
    "socket_connect_timeout": 1.0,
    "socket_timeout": 2.0,
    # PING a connection idle this long before using it, so a restarted server is noticed.
    "health_check_interval": 10,
    "client_name": "sheetcache",
}

_OWN_PARAMS = ("prefix",)


def _retry() -> Retry:
    # One immediate retry on a broken connection: after a server restart every pooled
    # connection fails once, then reconnects. Timeouts are not retried (that doubles the
    # wait on a hung server), nor are refused connections retried with backoff.
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def _num(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)


def _f(x: float) -> str:
    return repr(float(x))


def _entry_from_hash(key: str, h: Mapping[bytes, bytes]) -> Entry | None:
    value = h.get(b"value")
    if value is None:  # not ours (or a half-written foreign hash): a miss, never a crash
        return None
    prompt = h.get(b"prompt")
    key_parts = h.get(b"key_parts")
    return Entry(
        key,
        value.decode(),
        h.get(b"value_type", b"str").decode(),
        h.get(b"namespace", b"default").decode(),
        None if prompt is None else orjson.loads(prompt),
        {} if key_parts is None else orjson.loads(key_parts),
        float(h.get(b"created_at", b"0")),
        _num(h.get(b"expires_at")),
        int(h.get(b"hits", b"0")),
        _num(h.get(b"last_hit_at")),
        _num(h.get(b"duration")),
        h.get(b"status", b"").decode(),
        h.get(b"note", b"").decode(),
    )  # fmt: skip


def _fields(e: Entry) -> list[str]:
    """The entry's hash fields, all as text: ``[field, value, ...]``."""
    fields = [
        "value", e.value, "value_type", e.value_type, "namespace", e.namespace,
        "key_parts", orjson.dumps(e.key_parts or {}).decode(), "created_at", _f(e.created_at),
        "hits", str(int(e.hits)), "status", e.status, "note", e.note,
        # What a hit needs besides the value, in one field: lookup() reads two, not five.
        "serve", orjson.dumps([e.value_type, e.expires_at, e.status, e.duration]).decode(),
    ]  # fmt: skip
    if e.prompt is not None:
        fields += ["prompt", orjson.dumps(e.prompt).decode()]
    if e.expires_at is not None:
        fields += ["expires_at", _f(e.expires_at)]
    if e.last_hit_at is not None:
        fields += ["last_hit_at", _f(e.last_hit_at)]
    if e.duration is not None:
        fields += ["duration", _f(e.duration)]
    return fields


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """Split a cache URL into the URL redis-py reads and sheetcache's own options.

    ``redis+unix://`` becomes redis-py's ``unix://``; ``prefix`` is taken out of the query.
    """
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "redis+unix":
        scheme = "unix"
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{redact_url(url)!r} is not a Redis URL: use redis://host:6379/0")
    parts = urlsplit(f"{scheme}://{rest}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in _OWN_PARAMS}
    theirs = urlencode([(k, v) for k, v in query if k not in _OWN_PARAMS])
    # Not urlunsplit: it writes "unix:/path" (no "//") when there is no host.
    return f"{scheme}://{parts.netloc}{parts.path}" + (f"?{theirs}" if theirs else ""), own


class RedisBackend(Backend):
    """Entries in Redis, shared by every process that opens the same URL.

    Open it with a URL (``Cache("redis://host:6379/0")``) or wrap a client you made::

        RedisBackend(redis.Redis(host="cache", port=6379))  # decode_responses must be False

    Args:
        client: a ``redis.Redis`` with ``decode_responses=False`` (the default). A client
            you pass stays yours: :meth:`close` does not close it.
        prefix: first part of every key name, to share one Redis database between apps.
        url: the URL for logs (credentials are masked); made from the client if omitted.

    Writes from a :class:`~sheetcache.Cache` go through its durable outbox and are sent in
    pipelined batches every :attr:`flush_interval` seconds. Socket timeouts keep a dead
    server from hanging a caller, and the connection pool reconnects on its own once the
    server is back.
    """

    local = False
    lookup_is_local = False
    flush_interval = 0.2

    def __init__(
        self, client: redis.Redis, *, prefix: str = "sheetcache", url: str | None = None
    ) -> None:
        kwargs = client.get_connection_kwargs()
        if kwargs.get("decode_responses"):
            raise ConfigError("RedisBackend needs a client with decode_responses=False")
        if not prefix or not isinstance(prefix, str):
            raise ConfigError(f"prefix must be a non-empty str, not {prefix!r}")
        if url is None:
            where = (
                f"unix://{kwargs.get('path')}" if "path" in kwargs
                else f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
            )  # fmt: skip
            url = f"{where}/{kwargs.get('db', 0)}"
            if prefix != "sheetcache":
                url += f"?prefix={prefix}"
        self.url = redact_url(url)
        self.prefix = prefix
        self._redis = client
        self._owns_client = False
        self._closed = False
        base = f"{prefix}:v{FORMAT_VERSION}:"
        self._entry_base = base + "entry:"
        self._index_base = base + "index:"
        self._expiry_base = base + "expiry:"
        self._lock_base = base + "lock:"
        self._namespaces = base + "namespaces"
        self._put = client.register_script(_PUT)
        self._delete = client.register_script(_DELETE)
        self._hits = client.register_script(_HITS)
        self._prune = client.register_script(_PRUNE)
        self._forget = client.register_script(_FORGET)
        self._drop_namespace = client.register_script(_DROP_NAMESPACE)
        self._lock = client.register_script(_LOCK)
        self._unlock = client.register_script(_UNLOCK)
        self._tokens: dict[str, str] = {}  # key -> our lock token
        # The lean hit path needs a plain pool (redis-py >= 5.3 API) and no pinned connection.
        pool = client.connection_pool
        takes = inspect.signature(pool.get_connection).parameters.get("command_name")
        lean = (
            isinstance(pool, redis.ConnectionPool)
            and getattr(client, "connection", None) is None
            and (takes is None or takes.default is not inspect.Parameter.empty)
        )
        self._pool: redis.ConnectionPool | None = pool if lean else None
        self._tokens_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> RedisBackend:
        """Open ``redis://[[user]:password@]host[:port][/db][?prefix=P&socket_timeout=S]``.

        Also ``rediss://`` (TLS) and ``redis+unix:///path/to/redis.sock?db=0``. Query
        options other than ``prefix`` go to redis-py and win over sheetcache's defaults
        (connect timeout 1 s, socket timeout 2 s, health checks every 10 s).
        No connection is made here: a server that is down fails the first operation.
        """
        redis_url, own = split_url(url)
        try:
            client = redis.Redis.from_url(redis_url, retry=_retry(), **_DEFAULTS)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
        backend = cls(client, prefix=own.get("prefix") or "sheetcache", url=url)
        backend._owns_client = True
        return backend

    # -- names --------------------------------------------------------------------------

    def entry_key(self, key: str) -> str:
        """The Redis key holding the entry of cache key ``key``."""
        return self._entry_base + key

    def _namespace_list(self, namespace: str | None) -> list[str]:
        if namespace is not None:
            return [namespace]
        members = cast("set[bytes]", self._client().smembers(self._namespaces))
        return sorted(m.decode() for m in members)

    def _client(self) -> redis.Redis:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return self._redis

    # -- reads --------------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        client = self._client()
        found: dict[str, Entry] = {}
        for batch in chunks(keys, _BATCH):
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.hgetall(self._entry_base + key)
            for key, h in zip(batch, pipe.execute(), strict=True):
                if h:
                    entry = _entry_from_hash(key, h)
                    if entry is not None:
                        found[key] = entry
        return found

    def lookup(self, key: str) -> Entry | None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        # Two fields, one round trip: the answer and the small header a hit needs.
        value, serve = self._hot_command("HMGET", self._entry_base + key, "value", "serve")
        if value is None:
            return None
        if serve is None:  # written without the header (by hand): read it all
            return self.get_many([key]).get(key)
        value_type, expires_at, status, duration = orjson.loads(serve)
        return Entry(key, value.decode(), value_type, "default", None, {}, 0.0, expires_at, 0, None, duration, status)  # fmt: skip

    def _hot_command(self, *args: Any) -> Any:
        """One command on a pooled connection, without redis-py's per-command wrapping.

        On the hit path, redis-py's wrapping (retry closure, metrics recording, response
        callbacks) measured as much as the difference between a hit and a plain GET
        (benchmarks/bench_redis.py). This keeps what matters of it: a connection the server
        closed (a restart) is retried once on a fresh one; a timeout or any other error
        drops the connection, so a half-read reply is never pooled. Health checks still run
        (they live in ``send_command``). A client with a pinned connection, or an older
        redis-py, takes the ordinary path.
        """
        if self._pool is None:
            return self._redis.execute_command(*args)
        try:
            return self._send_once(self._pool, args)
        except redis.ConnectionError:  # e.g. a pooled connection the server closed
            return self._send_once(self._pool, args)

    @staticmethod
    def _send_once(pool: redis.ConnectionPool, args: tuple[Any, ...]) -> Any:
        conn = pool.get_connection()
        try:
            conn.send_command(*args)
            return conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def _index_pages(self, client: Any, ns: str) -> Iterator[list[bytes]]:
        """The namespace's keys, a page at a time.

        Keyset paging (like SQLite's "key > last"): nothing is held between pages, and
        deleting a page's members while paging does not skip any.
        """
        start = b"-"
        while True:
            page = cast(
                "list[bytes]", client.zrangebylex(self._index_base + ns, start, b"+", 0, _BATCH)
            )
            if not page:
                return
            yield page
            start = b"(" + page[-1]

    def iter_entries(self, namespace: str | None = None) -> Iterator[Entry]:
        client = self._client()
        for ns in self._namespace_list(namespace):
            index, expiry = self._index_base + ns, self._expiry_base + ns
            for page in self._index_pages(client, ns):
                pipe = client.pipeline(transaction=False)
                for member in page:
                    pipe.hgetall(self._entry_base + member.decode())
                missing = []
                for member, h in zip(page, pipe.execute(), strict=True):
                    entry = _entry_from_hash(member.decode(), h) if h else None
                    if entry is None:
                        missing.append(member)
                    else:
                        yield entry
                if missing:
                    self._forget(keys=[index, expiry], args=[self._entry_base, *missing])

    def count(self, namespace: str | None = None) -> int:
        client = self._client()
        names = self._namespace_list(namespace)
        if not names:
            return 0
        pipe = client.pipeline(transaction=False)
        for ns in names:
            self._prune_into(pipe, ns)
            pipe.zcard(self._index_base + ns)
        return sum(pipe.execute()[1::2])

    def _prune_into(self, pipe: Any, ns: str) -> None:
        keys = [self._index_base + ns, self._expiry_base + ns]
        self._prune(keys=keys, args=[self._entry_base, 10_000], client=pipe)

    # -- writes -------------------------------------------------------------------------

    def put_many(self, entries: Sequence[Entry]) -> None:
        client = self._client()
        bases = [self._entry_base, self._index_base, self._expiry_base]
        for batch in chunks(entries, _BATCH):
            pipe = client.pipeline(transaction=False)
            touched: set[str] = set()
            group: list[list[Any]] = []
            size = 0
            for e in batch:
                touched.add(e.namespace)
                expire_ms = "" if e.expires_at is None else str(int(e.expires_at * 1000))
                group.append([e.key, e.namespace, expire_ms, _fields(e)])
                size += len(e.value)
                if len(group) >= _PUT_GROUP or size >= _PUT_GROUP_BYTES:
                    self._put(
                        keys=[self._namespaces], args=[*bases, orjson.dumps(group)], client=pipe
                    )
                    group, size = [], 0
            if group:
                self._put(keys=[self._namespaces], args=[*bases, orjson.dumps(group)], client=pipe)
            # Keep the indexes from growing with entries Redis already expired.
            for ns in touched:
                self._prune_into(pipe, ns)
            pipe.execute()

    def delete_many(self, keys: Sequence[str]) -> int:
        client = self._client()
        deleted = 0
        for batch in chunks(keys, _BATCH):
            pipe = client.pipeline(transaction=False)
            for key in batch:
                self._delete(
                    keys=[self._entry_base + key], args=[key, self._index_base, self._expiry_base],
                    client=pipe,
                )  # fmt: skip
            deleted += sum(pipe.execute())
        return deleted

    def record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        client = self._client()
        pipe = client.pipeline(transaction=False)
        for batch in chunks(hits.items(), _HITS_BATCH):
            args: list[Any] = []
            for _key, (n, at) in batch:
                args += [int(n), _f(at)]
            self._hits(keys=[self._entry_base + k for k, _ in batch], args=args, client=pipe)
        pipe.execute()

    def clear(self, namespace: str | None = None) -> int:
        client = self._client()
        deleted = 0
        for ns in self._namespace_list(namespace):
            index, expiry = self._index_base + ns, self._expiry_base + ns
            for page in self._index_pages(client, ns):
                pipe = client.pipeline(transaction=False)
                for member in page:
                    key = member.decode()
                    self._delete(
                        keys=[self._entry_base + key], args=[key, self._index_base, self._expiry_base],
                        client=pipe,
                    )  # fmt: skip
                # Members whose entry was already gone (evicted) leave the index too.
                self._forget(keys=[index, expiry], args=[self._entry_base, *page], client=pipe)
                deleted += sum(pipe.execute()[:-1])
            self._drop_namespace(keys=[index, expiry, self._namespaces], args=[ns])
        return deleted

    # -- cross-process single flight ----------------------------------------------------

    def try_lock(self, key: str, ttl: float, owner: str | None = None) -> bool | None:
        """``SET P:v1:lock:<key> <token> NX PX ttl``; False also when the answer is stored."""
        token = owner or uuid.uuid4().hex
        ttl_ms = max(1, math.ceil(ttl * 1000))
        got = self._lock(
            keys=[self._lock_base + key, self._entry_base + key],
            args=[token, ttl_ms, _f(time.time())],
            client=self._client(),
        )
        if not got:
            return False
        with self._tokens_lock:
            self._tokens[key] = token
        return True

    def unlock(self, key: str, owner: str | None = None) -> None:
        """Delete the lock only if it still holds our token (compare-and-delete)."""
        with self._tokens_lock:
            token = self._tokens.pop(key, None)
        token = owner or token
        if token is not None:
            self._unlock(keys=[self._lock_base + key], args=[token], client=self._client())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._redis.close()
