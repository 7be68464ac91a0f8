"""Which server a bucket lives on: one server, or the master of its slot in a cluster.

Batches are sent as one plain pipeline per server (per master on a cluster), not through
redis-py's cluster pipeline, so the ``WAIT`` that confirms a batch's replication runs on the
same connection as the writes it confirms.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.cluster import RedisCluster

if TYPE_CHECKING:
    from sheetcache.backends.redis._layout import Bucket

__all__ = ["Batch", "Nodes"]


class Nodes:
    """The servers behind a backend. ``client`` is a Redis, or a cluster made on first use.

    Args:
        client: a ``redis.Redis`` (one server) or a ``RedisCluster``.
        make_cluster: builds the ``RedisCluster`` on first use instead (it connects when
            made, and opening a cache must not fail because a store is down).
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster | None,
        make_cluster: Callable[[], RedisCluster] | None = None,
    ) -> None:
        self._client: Any = client
        self._make = make_cluster
        self.cluster = make_cluster is not None or isinstance(client, RedisCluster)
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The redis-py client (a cluster client is made, and connects, on first use)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    assert self._make is not None
                    self._client = self._make()
                client = self._client
        return client

    def made(self) -> bool:
        return self._client is not None

    def for_slot(self, slot: int) -> tuple[str, redis.Redis]:
        """(server name, plain client) of the master serving ``slot``."""
        client = self.client
        if not self.cluster:
            return "", client
        node = client.nodes_manager.get_node_from_slot(slot)
        if node.redis_connection is None:  # a node the client knows of but never used
            client.nodes_manager.create_redis_connections([node])
        return node.name, node.redis_connection

    def pool_for_slot(self, slot: int) -> Any:
        """The connection pool of ``slot``'s master, for the lean hit path; None if unknown."""
        client = self.client
        if not self.cluster:
            return client.connection_pool
        try:  # no lock: a plain dict read of the slot table, refreshed by redis-py
            conn = client.nodes_manager.slots_cache[slot][0].redis_connection
        except (KeyError, IndexError, AttributeError):
            return None
        return None if conn is None else conn.connection_pool

    def primaries(self) -> list[tuple[str, redis.Redis]]:
        """Every master (the one server when not a cluster)."""
        client = self.client
        if not self.cluster:
            return [("", client)]
        nodes = client.get_primaries()
        missing = [n for n in nodes if n.redis_connection is None]
        if missing:
            client.nodes_manager.create_redis_connections(missing)
        return [(n.name, n.redis_connection) for n in nodes]

    def refresh(self) -> None:
        """Re-read the cluster's slot table (after MOVED, a failover, a dead node)."""
        if self.cluster and self._client is not None:
            self._client.nodes_manager.initialize()

    def ping(self) -> None:
        """Raise unless every master answers (the circuit breaker's probe)."""
        self.refresh()
        for _name, node in self.primaries():
            node.ping()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class Batch:
    """Commands for several buckets, sent as one pipeline per server.

    ``add`` queues one command on the pipeline of the bucket's server and returns its
    position in :meth:`execute`'s result list, whatever server it went to.
    """

    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes
        self._pipes: dict[str, Any] = {}
        self._sizes: dict[str, int] = {}
        self._order: list[tuple[str, int]] = []

    def add(self, bucket: Bucket, command: str, *args: Any) -> int:
        """Queue ``pipe.<command>(*args)`` on the bucket's server."""
        return self._queue(bucket, lambda pipe: getattr(pipe, command)(*args))

    def script(self, bucket: Bucket, script: Any, keys: list[str], args: list[Any]) -> int:
        """Queue a registered script on the bucket's server."""
        return self._queue(bucket, lambda pipe: script(keys=keys, args=args, client=pipe))

    def _queue(self, bucket: Bucket, queue: Callable[[Any], object]) -> int:
        name, client = self._nodes.for_slot(bucket.slot)
        pipe = self._pipes.get(name)
        if pipe is None:
            pipe = self._pipes[name] = client.pipeline(transaction=False)
            self._sizes[name] = 0
        queue(pipe)
        self._order.append((name, self._sizes[name]))
        self._sizes[name] += 1
        return len(self._order) - 1

    def __len__(self) -> int:
        return len(self._order)

    def execute(self) -> list[Any]:
        """Send every pipeline; the replies in the order the commands were added."""
        return self.execute_then(None)[0]

    def execute_then(
        self, last: Callable[[str, Any], None] | None
    ) -> tuple[list[Any], dict[str, list[Any]]]:
        """Like :meth:`execute`, but ``last(server, pipe)`` may queue a final command on each
        server's pipeline (a ``WAIT``); returns the replies and, per server, what it queued.
        """
        results: dict[str, list[Any]] = {}
        for name, pipe in self._pipes.items():
            if last is not None:
                last(name, pipe)
            results[name] = pipe.execute()
        replies = [results[name][i] for name, i in self._order]
        return replies, {name: results[name][self._sizes[name] :] for name in self._pipes}
