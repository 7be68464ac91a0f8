"""The Redis backend: entries as hashes, per-bucket indexes, scripts per bucket.

Key layout v2 (``P`` is the prefix, ``{bb}`` the entry's bucket: the first two hex digits
of its key, a Cluster hash tag; see :mod:`._layout`):

=================================  ========================================================
``P:v2:{bb}:entry:<key>``          hash, one per entry: ``value``, ``value_type``,
                                   ``namespace``, ``prompt``, ``key_parts`` and ``metadata``
                                   (JSON), ``created_at``, ``expires_at``, ``hits``,
                                   ``last_hit_at``, ``duration``, ``status``, ``note``, and
                                   ``serve``: JSON ``[value_type, expires_at, status,
                                   duration, usage]``, what a hit needs besides the value, so
                                   a hit reads two fields. A None field is absent. Floats are
                                   written with ``repr``. ``PEXPIREAT`` drops it at expiry.
``P:v2:{bb}:index:<namespace>``    sorted set of the bucket's keys in the namespace, scored 0
                                   (``ZRANGEBYLEX`` pages through it in key order).
``P:v2:{bb}:expiry:<namespace>``   the keys that have an expiry, scored by it in ms.
``P:v2:{bb}:namespaces``           set of the namespaces with keys in the bucket.
``P:v2:{bb}:lock:<key>``           the cross-process single-flight lock: the owner's token.
=================================  ========================================================

Layout v1 (``P:v1:entry:<key>``, ``P:v1:index:<ns>``, ... with no bucket) is still read on
single servers: reads fall back to it, deletes remove from both, writes go to v2.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import orjson
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import AskError, ClusterDownError, TryAgainError
from redis.retry import Retry

from sheetcache._breaker import CLOSED, CircuitBreaker, CircuitOpenError
from sheetcache._errors import ConfigError
from sheetcache._urls import redact_url
from sheetcache.backends.base import Backend, Entry, chunks
from sheetcache.backends.redis import _scripts
from sheetcache.backends.redis._durability import DURABILITY, Replication
from sheetcache.backends.redis._hash import entry_from_hash, float_text, hash_fields
from sheetcache.backends.redis._layout import LATEST, Bucket, Layout
from sheetcache.backends.redis._nodes import Batch, Nodes
from sheetcache.backends.redis._url import parse_url

__all__ = ["FORMAT_VERSION", "RedisBackend"]

#: The layout version this code writes (part of every key name).
FORMAT_VERSION = LATEST

_BATCH = 500
# Keys per hit-count script and entries (or value bytes) per write script: bounds how long
# one call blocks Redis (about a millisecond of its time).
_HITS_BATCH = 200
_PUT_GROUP = 50
_PUT_GROUP_BYTES = 1 << 20

_DEFAULTS: dict[str, Any] = {
    # A dead or hung server must not hang a caller: the cache front fails open on errors.
    "socket_connect_timeout": 1.0,
    "socket_timeout": 2.0,
    # PING a connection idle this long before using it, so a restarted server is noticed.
    "health_check_interval": 10,
    "client_name": "sheetcache",
}

# What says the server is down or hung (trips the breaker); a script error or a bad
# argument does not. SlotNotCoveredError: a cluster with a dead master and no failover yet.
_OUTAGE: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.RedisClusterException,
    OSError,
)


def _retry() -> Retry:
    # One immediate retry on a broken connection: after a server restart every pooled
    # connection fails once, then reconnects. Timeouts are not retried (that doubles the
    # wait on a hung server), nor are refused connections retried with backoff.
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def _decode(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member


class RedisBackend(Backend):
    """Entries in Redis or Valkey (one server or a cluster), shared by every process that
    opens the same URL.

    Open it with a URL (``Cache("redis://host:6379/0")``,
    ``Cache("redis+cluster://node1:7000,node2:7000/")``) or wrap a client you made::

        RedisBackend(redis.Redis(host="cache", port=6379))  # decode_responses must be False
        RedisBackend(RedisCluster(host="node1", port=7000))

    Args:
        client: a ``redis.Redis`` or ``redis.cluster.RedisCluster`` with
            ``decode_responses=False`` (the default). A client you pass stays yours:
            :meth:`close` does not close it.
        prefix: first part of every key name, to share one Redis between apps.
        url: the URL for logs (credentials are masked); made from the client if omitted.
        durability: ``replica`` (the default on a cluster): a write counts as done, and
            leaves the outbox, only once a replica confirmed it (``WAIT 1``), so a failover
            loses no answer; ``primary`` (the default on one server): once the primary has
            it.
        wait_timeout: seconds a ``WAIT`` may take before the batch stays queued for later.
        layout: 2 to read and write layout v2 only; 1 for the old layout only (single
            servers); None (the default) writes v2 and also reads v1 on a single server.
        cooldown: seconds the circuit breaker skips a server that timed out or refused.
        make_cluster: used by :meth:`from_url`: builds the cluster client on first use.

    Writes from a :class:`~sheetcache.Cache` go through its durable outbox and are sent in
    pipelined batches every :attr:`flush_interval` seconds. After a timeout or a refused
    connection, a circuit breaker skips Redis for ``cooldown`` seconds (calls go through
    uncached, writes wait in the outbox) while a background probe checks it, so a hung
    server costs one caller one socket timeout, not every call.
    """

    local = False
    lookup_is_local = False
    flush_interval = 0.2

    def __init__(
        self,
        client: redis.Redis | RedisCluster | None = None,
        *,
        prefix: str = "sheetcache",
        url: str | None = None,
        durability: str | None = None,
        wait_timeout: float = 0.5,
        layout: int | None = None,
        cooldown: float = 2.0,
        make_cluster: Callable[[], RedisCluster] | None = None,
    ) -> None:
        if client is None and make_cluster is None:
            raise ConfigError("RedisBackend needs a client (or use RedisBackend.from_url)")
        if not prefix or not isinstance(prefix, str):
            raise ConfigError(f"prefix must be a non-empty str, not {prefix!r}")
        self._nodes = Nodes(client, make_cluster)
        cluster = self._nodes.cluster
        if client is not None:
            kwargs = self._connection_kwargs(client)
            if kwargs.get("decode_responses"):
                raise ConfigError("RedisBackend needs a client with decode_responses=False")
        if durability is None:
            durability = "replica" if cluster else "primary"
        if durability not in DURABILITY:
            raise ConfigError(f"durability must be 'replica' or 'primary', not {durability!r}")
        if not (isinstance(wait_timeout, (int, float)) and wait_timeout > 0):
            raise ConfigError(f"wait_timeout must be > 0 seconds, not {wait_timeout!r}")
        if not (isinstance(cooldown, (int, float)) and cooldown > 0):
            raise ConfigError(f"cooldown must be > 0 seconds, not {cooldown!r}")
        if layout not in (None, 1, 2):
            raise ConfigError(f"layout must be 1 or 2, not {layout!r}")
        if layout == 1 and cluster:
            raise ConfigError(
                "layout v1 is not readable on Redis Cluster (its scripts cross slots): "
                "migrate from a single server, see docs/redis.md"
            )
        if url is None:
            url = self._url_of(client, prefix)
        self.url = redact_url(url)
        self.prefix = prefix
        self.cluster = cluster
        self.durability = durability
        self.wait_timeout = float(wait_timeout)
        self._owns_client = False
        self._closed = False
        self._layout = Layout(prefix, 1 if layout == 1 else LATEST)
        self._legacy_layout = Layout(prefix, 1)
        # None: not checked yet; the v1 fallback is only for single servers in auto mode.
        self._legacy: bool | None = None if (layout is None and not cluster) else False
        self._legacy_until = 0.0
        self._scripts: dict[str, Any] = {}
        self._tokens: dict[str, str] = {}  # key -> our lock token (owner-less callers)
        self._tokens_lock = threading.Lock()
        self._lean = self._lean_ok(client) if client is not None else cluster
        # One server: its pool, looked up once. A cluster's pool depends on the slot.
        self._single_pool = (
            cast("redis.Redis", client).connection_pool if self._lean and not cluster else None
        )
        self._hot_buckets = {b.tag: b for b in self._layout.buckets}
        self._replication = Replication(durability, self.wait_timeout, self.url)
        self.breaker = CircuitBreaker(cooldown, trips_on=_OUTAGE, probe=self._probe, name=self.url)
        """The circuit breaker in front of every call (see :mod:`sheetcache._breaker`)."""

    @staticmethod
    def _connection_kwargs(client: Any) -> dict[str, Any]:
        return dict(client.get_connection_kwargs())

    @staticmethod
    def _url_of(client: Any, prefix: str) -> str:
        query = f"?prefix={prefix}" if prefix != "sheetcache" else ""
        if isinstance(client, RedisCluster):
            nodes = ",".join(n.name for n in client.get_primaries())  # type: ignore[no-untyped-call]
            return f"redis+cluster://{nodes}/{query}"
        kwargs = client.get_connection_kwargs()
        where = (
            f"unix://{kwargs.get('path')}" if "path" in kwargs
            else f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        )  # fmt: skip
        return f"{where}/{kwargs.get('db', 0)}{query}"

    @staticmethod
    def _lean_ok(client: Any) -> bool:
        if isinstance(client, RedisCluster):
            return True
        # The lean hit path needs a plain pool (redis-py >= 5.3 API), no pinned connection.
        pool = client.connection_pool
        takes = inspect.signature(pool.get_connection).parameters.get("command_name")
        return (
            isinstance(pool, redis.ConnectionPool)
            and getattr(client, "connection", None) is None
            and (takes is None or takes.default is not inspect.Parameter.empty)
        )

    @classmethod
    def from_url(cls, url: str) -> RedisBackend:
        """Open a ``redis://``, ``rediss://``, ``redis+unix://``, ``redis+cluster://``,
        ``rediss+cluster://`` or ``valkey...://`` URL (see :mod:`._url`).

        Query options: ``prefix``, ``durability`` (``replica`` or ``primary``),
        ``wait_timeout`` (s), ``layout`` (1 or 2), ``cooldown`` (s); the others go to
        redis-py and win over sheetcache's defaults (connect timeout 1 s, socket timeout
        2 s, health checks every 10 s). No connection is made here: a server (or cluster)
        that is down fails the first operation, and the cache front fails open.
        """
        parsed = parse_url(url)
        own = parsed.own
        try:
            wait_timeout = float(own.get("wait_timeout", 0.5))
            cooldown = float(own.get("cooldown", 2.0))
            layout = int(own["layout"].lstrip("v")) if own.get("layout") else None
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL option in {redact_url(url)!r}: {exc}") from None
        options: dict[str, Any] = {
            "prefix": own.get("prefix") or "sheetcache", "url": url,
            "durability": own.get("durability") or None, "wait_timeout": wait_timeout,
            "layout": layout, "cooldown": cooldown,
        }  # fmt: skip
        if parsed.cluster:
            nodes = [ClusterNode(host, port) for host, port in parsed.startup_nodes]  # type: ignore[no-untyped-call]

            def make_cluster() -> RedisCluster:
                return RedisCluster.from_url(
                    parsed.client_url, startup_nodes=nodes, retry=_retry(), **_DEFAULTS
                )

            try:  # check the options now (no connection): bad ones are a ConfigError here
                redis.connection.parse_url(parsed.client_url)  # type: ignore[no-untyped-call]
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
            backend = cls(make_cluster=make_cluster, **options)
        else:
            try:
                client = redis.Redis.from_url(parsed.client_url, retry=_retry(), **_DEFAULTS)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
            backend = cls(client, **options)
        backend._owns_client = True
        return backend

    # -- plumbing -----------------------------------------------------------------------

    def entry_key(self, key: str) -> str:
        """The Redis key holding the entry of cache key ``key``."""
        return self._layout.bucket(key).entry + key

    def _script(self, name: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._nodes.client.register_script(
                getattr(_scripts, name)
            )
        return script

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if not self.breaker.allow():
            raise CircuitOpenError(self.breaker.refusal())

    def _guarded(self, fn: Callable[[], Any], *, again: bool = True) -> Any:
        """Run ``fn`` behind the breaker. On a cluster, a MOVED/ASK reply (a slot moved:
        resharding, a failover) re-reads the slot table and, if ``again`` (the operation
        is safe to repeat), runs ``fn`` once more on the new owners.
        """
        self._check()
        try:
            try:
                result = fn()
            except AskError:
                self._nodes.refresh()
                if not again:
                    raise
                result = fn()
        except AskError:
            self.breaker.success()  # the servers answer: no reason to skip them
            self._nodes.refresh()
            raise
        except BaseException as exc:
            self.breaker.failure(exc)
            if self.cluster and isinstance(exc, _OUTAGE):
                self._refresh_quietly()
            raise
        self.breaker.success()
        return result

    def _refresh_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the breaker's probe retries it
            self._nodes.refresh()

    def _probe(self) -> None:
        self._nodes.ping()

    def _layouts(self) -> list[Layout]:
        """The layouts to read: v2, and v1 too on a single server that still holds it."""
        if self._legacy is None or (self._legacy and time.monotonic() > self._legacy_until):
            # Looked up again a minute later: another process may have moved v1 away.
            client = self._nodes.client
            self._legacy = bool(client.exists(self._legacy_layout.marker()))
            self._legacy_until = time.monotonic() + 60.0
        return [self._layout, self._legacy_layout] if self._legacy else [self._layout]

    def _namespace_lists(self, layout: Layout, namespace: str | None) -> dict[str, list[Bucket]]:
        """Namespace -> the buckets of ``layout`` that hold keys of it."""
        batch = Batch(self._nodes)
        for b in layout.buckets:
            if namespace is None:
                batch.add(b, "smembers", b.namespaces)
            else:
                batch.add(b, "sismember", b.namespaces, namespace)
        found: dict[str, list[Bucket]] = {}
        for b, reply in zip(layout.buckets, batch.execute(), strict=True):
            if namespace is None:
                for ns in sorted(_decode(m) for m in cast("set[bytes]", reply)):
                    found.setdefault(ns, []).append(b)
            elif reply:
                found.setdefault(namespace, []).append(b)
        return dict(sorted(found.items()))

    # -- reads --------------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        return cast("dict[str, Entry]", self._guarded(lambda: self._get_many(keys)))

    def _get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        todo = list(keys)
        for layout in self._layouts():
            for batch_keys in chunks(todo, _BATCH):
                batch = Batch(self._nodes)
                for key in batch_keys:
                    name = layout.bucket(key).entry + key
                    batch.add(layout.bucket(key), "hgetall", name)
                for key, h in zip(batch_keys, batch.execute(), strict=True):
                    entry = entry_from_hash(key, h) if h else None
                    if entry is not None:
                        found[key] = entry
            todo = [k for k in todo if k not in found]
            if not todo:
                break
        return found

    def lookup(self, key: str) -> Entry | None:
        # The hit path when L1 is cold: the breaker's checks are inlined (attribute reads
        # while it is closed), and the bucket comes from a dict, not a method call.
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        breaker = self.breaker
        if breaker.state != CLOSED and not breaker.allow():
            raise CircuitOpenError(breaker.refusal())
        try:
            entry = self._lookup(key)
        except AskError:
            breaker.success()
            self._nodes.refresh()
            raise
        except BaseException as exc:
            breaker.failure(exc)
            raise
        if breaker.state != CLOSED:
            breaker.success()
        return entry

    def _lookup(self, key: str) -> Entry | None:
        bucket = self._hot_buckets.get(key[:2]) or self._layout.bucket(key)
        # Two fields, one round trip: the answer and the small header a hit needs.
        value, serve = self._hot_command(bucket.slot, "HMGET", bucket.entry + key, "value", "serve")
        if value is None:
            if self._legacy is False or len(self._layouts()) == 1:
                return None
            old = self._legacy_layout.buckets[0]
            value, serve = self._nodes.client.hmget(old.entry + key, "value", "serve")
            if value is None:
                return None
        if serve is None:  # written without the header (by hand): read it all
            return self._get_many([key]).get(key)
        header = orjson.loads(serve)
        usage = header[4] if len(header) > 4 else None
        return Entry(key, value.decode(), header[0], "default", None, {}, 0.0, header[1], 0,
                     None, header[3], header[2], "", {"usage": usage} if usage else {})  # fmt: skip

    def _hot_command(self, slot: int, *args: Any) -> Any:
        """One command on a pooled connection, without redis-py's per-command wrapping.

        On the hit path, redis-py's wrapping (retry closure, metrics recording, response
        callbacks, and on a cluster its routing) measured as much as the difference between
        a hit and a plain GET (benchmarks/bench_redis.py). This keeps what matters of it: a
        connection the server closed (a restart) is retried once on a fresh one; a timeout
        or any other error drops the connection, so a half-read reply is never pooled.
        Health checks still run (they live in ``send_command``). A MOVED reply, a client
        with a pinned connection, or an older redis-py take the ordinary path.
        """
        pool = self._single_pool
        if pool is None and self._lean:
            pool = self._nodes.pool_for_slot(slot)
        if pool is None:
            return self._nodes.client.execute_command(*args)
        try:
            try:
                return self._send_once(pool, args)
            except redis.ConnectionError:  # e.g. a pooled connection the server closed
                return self._send_once(pool, args)
        except AskError:  # the slot moved: redis-py follows and re-reads the slot table
            return self._nodes.client.execute_command(*args)

    @staticmethod
    def _send_once(pool: redis.ConnectionPool, args: tuple[Any, ...]) -> Any:
        conn = pool.get_connection()
        try:
            conn.send_command(*args)  # type: ignore[no-untyped-call]
            return conn.read_response()
        except BaseException:
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(conn)

    def _pages(self, bucket: Bucket, ns: str) -> Iterator[list[bytes]]:
        """The bucket's keys of namespace ``ns``, a page at a time.

        Keyset paging (like SQLite's "key > last"): nothing is held between pages, and
        deleting a page's members while paging does not skip any.
        """
        _name, client = self._nodes.for_slot(bucket.slot)
        start = b"-"
        while True:
            page = cast(
                "list[bytes]", client.zrangebylex(bucket.index + ns, start, b"+", 0, _BATCH)
            )
            if not page:
                return
            yield page
            start = b"(" + page[-1]

    def iter_entries(self, namespace: str | None = None) -> Iterator[Entry]:
        self._check()
        try:
            yield from self._iter_entries(namespace)
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                self.breaker.failure(exc)
            raise

    def _iter_entries(self, namespace: str | None) -> Iterator[Entry]:
        layouts = self._layouts()
        for layout in layouts:
            shadowed = layout is not layouts[0]  # v1: skip keys v2 holds (written since)
            for ns, buckets in self._namespace_lists(layout, namespace).items():
                for b in buckets:
                    for page in self._pages(b, ns):
                        yield from self._read_page(b, ns, page, shadowed)

    def _read_page(self, b: Bucket, ns: str, page: list[bytes], shadowed: bool) -> Iterator[Entry]:
        _name, client = self._nodes.for_slot(b.slot)
        pipe = client.pipeline(transaction=False)
        for member in page:
            pipe.hgetall(b.entry + member.decode())
        if shadowed:
            for member in page:
                pipe.exists(self.entry_key(member.decode()))
        replies = pipe.execute()
        newer = replies[len(page) :] if shadowed else [0] * len(page)
        missing = []
        for member, h, new in zip(page, replies, newer, strict=False):
            entry = entry_from_hash(member.decode(), h) if h else None
            if entry is None:
                missing.append(member)
            elif not new:
                yield entry
        if missing:
            self._script("FORGET")(keys=[b.index + ns, b.expiry + ns], args=[b.entry, *missing],
                                   client=client)  # fmt: skip

    def count(self, namespace: str | None = None) -> int:
        return cast("int", self._guarded(lambda: self._count(namespace)))

    def _count(self, namespace: str | None) -> int:
        total = 0
        for layout in self._layouts():
            batch = Batch(self._nodes)
            pairs = [(b, ns) for ns, buckets in self._namespace_lists(layout, namespace).items()
                     for b in buckets]  # fmt: skip
            self._queue_prunes(batch, pairs)
            cards = [batch.add(b, "zcard", b.index + ns) for b, ns in pairs]
            if cards:
                replies = batch.execute()
                total += sum(replies[i] for i in cards)
        return total

    def _queue_prunes(self, batch: Batch, pairs: Sequence[tuple[Bucket, str]]) -> None:
        """Queue the expiry prune of each (bucket, namespace): one script call per bucket on
        a cluster (a call must stay in one slot), one per 500 pairs on a single server.
        """
        prune = self._script("PRUNE")
        groups: dict[str, list[tuple[Bucket, str]]] = {}
        for b, ns in pairs:
            groups.setdefault(b.tag if self.cluster else "", []).append((b, ns))
        for members in groups.values():
            for part in chunks(members, _BATCH):
                pairs_json = orjson.dumps([[b.base, ns] for b, ns in part])
                batch.script(part[0][0], prune, [part[0][0].namespaces], [10_000, pairs_json])

    # -- writes -------------------------------------------------------------------------

    def put_many(self, entries: Sequence[Entry]) -> None:
        self._guarded(lambda: self._put_many(entries))

    def _put_many(self, entries: Sequence[Entry]) -> None:
        put = self._script("PUT")
        for batch_entries in chunks(entries, _BATCH):
            # On a cluster a script call holds one bucket's entries (one slot); on a single
            # server any entries: ten calls per 500, not one per bucket.
            groups: dict[str, list[tuple[Entry, Bucket]]] = {}
            for e in batch_entries:
                b = self._layout.bucket(e.key)
                groups.setdefault(b.tag if self.cluster else "", []).append((e, b))
            batch = Batch(self._nodes)
            touched: dict[tuple[str, str], tuple[Bucket, str]] = {}
            for members in groups.values():
                group: list[list[Any]] = []
                size = 0
                for i, (e, b) in enumerate(members):
                    touched[(b.tag, e.namespace)] = (b, e.namespace)
                    expire_ms = "" if e.expires_at is None else str(int(e.expires_at * 1000))
                    group.append([e.key, e.namespace, expire_ms, hash_fields(e), b.base])
                    size += len(e.value)
                    full = len(group) >= _PUT_GROUP or size >= _PUT_GROUP_BYTES
                    if full or i == len(members) - 1:
                        first = members[i - len(group) + 1][1]
                        batch.script(first, put, [first.namespaces], [orjson.dumps(group)])
                        group, size = [], 0
            # Keep the indexes from growing with entries Redis already expired.
            self._queue_prunes(batch, list(touched.values()))
            self._replication.send(batch)

    def delete_many(self, keys: Sequence[str]) -> int:
        return cast("int", self._guarded(lambda: self._delete_many(keys)))

    def _delete_many(self, keys: Sequence[str]) -> int:
        delete = self._script("DELETE")
        deleted: set[str] = set()
        for layout in self._layouts():
            for batch_keys in chunks(keys, _BATCH):
                batch = Batch(self._nodes)
                for key in batch_keys:
                    b = layout.bucket(key)
                    args = [key, b.index, b.expiry]
                    batch.script(b, delete, [b.entry + key], args)
                for key, gone in zip(batch_keys, batch.execute(), strict=True):
                    if gone:
                        deleted.add(key)
        return len(deleted)

    def record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        self._guarded(lambda: self._record_hits(hits), again=False)  # HINCRBY: not twice

    def _record_hits(self, hits: Mapping[str, tuple[int, float]]) -> None:
        script = self._script("HITS")
        for layout in self._layouts():
            # One call per bucket on a cluster (one slot), per 200 keys on one server.
            groups: dict[str, list[tuple[str, tuple[int, float]]]] = {}
            for key, hit in hits.items():
                groups.setdefault(layout.bucket(key).tag if self.cluster else "", []).append(
                    (key, hit)
                )
            batch = Batch(self._nodes)
            for items in groups.values():
                for part in chunks(items, _HITS_BATCH):
                    args: list[Any] = []
                    for _key, (n, at) in part:
                        args += [int(n), float_text(at)]
                    names = [layout.bucket(k).entry + k for k, _ in part]
                    batch.script(layout.bucket(part[0][0]), script, names, args)
            if len(batch):
                batch.execute()

    def clear(self, namespace: str | None = None) -> int:
        return cast("int", self._guarded(lambda: self._clear(namespace)))

    def _clear(self, namespace: str | None) -> int:
        delete, forget = self._script("DELETE"), self._script("FORGET")
        drop = self._script("DROP_NAMESPACE")
        deleted = 0
        for layout in self._layouts():
            for ns, buckets in self._namespace_lists(layout, namespace).items():
                for b in buckets:
                    index, expiry = b.index + ns, b.expiry + ns
                    _name, client = self._nodes.for_slot(b.slot)
                    for page in self._pages(b, ns):
                        pipe = client.pipeline(transaction=False)
                        for member in page:
                            key = member.decode()
                            delete(keys=[b.entry + key], args=[key, b.index, b.expiry], client=pipe)
                        # Members whose entry was already gone (evicted) leave the index too.
                        forget(keys=[index, expiry], args=[b.entry, *page], client=pipe)
                        deleted += sum(pipe.execute()[:-1])
                    drop(keys=[index, expiry, b.namespaces], args=[ns], client=client)
        if self._legacy:
            self._legacy = None  # look again: the old layout may be empty now
        return deleted

    # -- cross-process single flight ----------------------------------------------------

    def try_lock(self, key: str, ttl: float, owner: str | None = None) -> bool | None:
        """Take ``key``'s lock for ``ttl`` seconds as ``owner`` (a token unique to the caller).

        ``SET P:v2:{bb}:lock:<key> <owner> NX PX ttl`` in a script that first checks the
        entry: False if another owner holds the lock, and also if the answer is stored
        already (read it instead of computing it again). Without ``owner`` a random token is
        made and remembered for :meth:`unlock`.
        """
        remember = owner is None
        token = uuid.uuid4().hex if owner is None else owner
        b = self._layout.bucket(key)
        ttl_ms = max(1, math.ceil(ttl * 1000))
        lock = self._script("LOCK")
        got = self._guarded(
            lambda: lock(
                keys=[b.lock + key, b.entry + key], args=[token, ttl_ms, float_text(time.time())]
            )
        )
        if not got:
            return False
        if remember:
            with self._tokens_lock:
                self._tokens[key] = token
        return True

    def unlock(self, key: str, owner: str | None = None) -> None:
        """Release ``key``'s lock if ``owner`` still holds it (compare-and-delete)."""
        if owner is None:
            with self._tokens_lock:
                owner = self._tokens.pop(key, None)
            if owner is None:
                return
        b = self._layout.bucket(key)
        unlock = self._script("UNLOCK")
        self._guarded(lambda: unlock(keys=[b.lock + key], args=[owner]))

    # -- admin ----------------------------------------------------------------------------

    def key_distribution(self) -> dict[str, int]:
        """Keys under this prefix per server (``DBSIZE`` is the whole db: this scans)."""

        def run() -> dict[str, int]:
            counts = {}
            for name, client in self._nodes.primaries():
                counts[name or self.url] = sum(
                    1 for _ in client.scan_iter(match=f"{self.prefix}:v*", count=1000)
                )
            return counts

        return cast("dict[str, int]", self._guarded(run))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.breaker.close()
        if self._owns_client:
            self._nodes.close()
