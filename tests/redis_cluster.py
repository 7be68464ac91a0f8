"""Start a real Redis Cluster for tests and benchmarks: 6 ``redis-server`` processes on
127.0.0.1 (3 masters, one replica each), created with ``redis-cli --cluster create``.

>>> with LocalCluster() as cluster:            # doctest: +SKIP
...     Cache(cluster.url)                     # redis+cluster://127.0.0.1:P1,127.0.0.1:P2/

Every node lives in its own temp dir (its ``nodes.conf`` included), so :meth:`kill` and
:meth:`restart` of a node keep its identity: a killed master comes back as a replica of the
node that took over its slots, as in production. ``cluster-node-timeout`` is short (1 s)
so a failover takes a few seconds, not the default 15.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable

import redis
from redis_server import RedisServer, free_port

__all__ = ["NODE_TIMEOUT_MS", "LocalCluster", "find_redis_cli"]

NODE_TIMEOUT_MS = 1000
CLI_NOT_FOUND = "redis-cli not found: apt-get install redis-tools"


def find_redis_cli() -> str | None:
    """Path of the ``redis-cli`` binary, or None."""
    return shutil.which("redis-cli")


def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)  # polling a server's state, with a deadline
        delay = min(delay * 2, 0.2)


class LocalCluster:
    """Six cluster-enabled ``redis-server`` children and the cluster made of them."""

    def __init__(self, *, masters: int = 3, replicas: int = 1) -> None:
        cli = find_redis_cli()
        if cli is None:
            raise FileNotFoundError(CLI_NOT_FOUND)
        self.nodes: list[RedisServer] = []
        try:
            for _ in range(masters * (1 + replicas)):
                self.nodes.append(
                    RedisServer(
                        port=free_port(bus=True),
                        extra_args=[
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            "nodes.conf",
                            "--cluster-node-timeout",
                            str(NODE_TIMEOUT_MS),
                            # A lone test cluster: let a replica take over without waiting
                            # for a quorum of old data checks.
                            "--cluster-replica-validity-factor",
                            "0",
                        ],
                    )
                )
            out = subprocess.run(
                [cli, "--cluster", "create", *self.addresses, "--cluster-replicas",
                 str(replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if out.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{out.stdout}{out.stderr}")
            self.wait_healthy(masters=masters, replicas=replicas)
        except BaseException:
            self.close()
            raise

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{n.port}" for n in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://`` with two startup nodes (the rest are discovered)."""
        return "redis+cluster://" + ",".join(self.addresses[:2]) + "/"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2.0)

    def _replication(self, node: RedisServer) -> dict[str, object]:
        with self.client(node.port) as c:
            return c.info("replication")  # type: ignore[no-any-return]

    def _cluster_ok(self, node: RedisServer) -> bool:
        with self.client(node.port) as c:
            return bool(c.execute_command("CLUSTER INFO").get("cluster_state") == "ok")

    def _cluster_nodes(self, node: RedisServer) -> list[list[str]]:
        """``CLUSTER NODES`` as split lines (redis-py parses the reply into a dict)."""
        with self.client(node.port) as c:
            c.set_response_callback("CLUSTER NODES", lambda r: r)
            raw = c.execute_command("CLUSTER NODES")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return [line.split() for line in text.splitlines() if line.strip()]

    def roles(self) -> dict[int, str]:
        """port -> ``master`` or ``slave``, as each running node sees itself."""
        roles = {}
        for node in self.nodes:
            if node.running:
                roles[node.port] = str(self._replication(node)["role"])
        return roles

    def masters(self) -> list[RedisServer]:
        """Running masters that serve slots, in port order."""
        out = []
        for node in self.nodes:
            if not node.running:
                continue
            me = next(f for f in self._cluster_nodes(node) if "myself" in f[2])
            if "master" in me[2] and len(me) > 8:
                out.append(node)
        return out

    def replica_of(self, master: RedisServer) -> RedisServer:
        lines = self._cluster_nodes(master)
        my_id = next(f[0] for f in lines if "myself" in f[2])
        port = next(int(f[1].split(":")[1].split("@")[0]) for f in lines if f[3] == my_id)
        return next(n for n in self.nodes if n.port == port)

    def node_id(self, node: RedisServer) -> str:
        return next(f[0] for f in self._cluster_nodes(node) if "myself" in f[2])

    def move_slot(self, slot: int, source: RedisServer, target: RedisServer) -> None:
        """Reshard one slot, keys included, the way ``redis-cli --cluster reshard`` does."""
        src_id, dst_id = self.node_id(source), self.node_id(target)
        with self.client(source.port) as src, self.client(target.port) as dst:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for node in self.masters():
            with self.client(node.port) as c:
                c.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)

    def _state_ok(self, masters: int, replicas: int) -> bool:
        try:
            for node in self.nodes:
                if not node.running:
                    continue
                if not self._cluster_ok(node):
                    return False
            roles = self.roles()
            wanted_replicas = masters * replicas
            if sorted(roles.values()).count("master") != masters:
                return False
            if replicas and list(roles.values()).count("slave") < wanted_replicas:
                return False
            # Every replica has finished its first sync, so WAIT can be answered.
            for node in self.nodes:
                is_replica = node.running and roles.get(node.port) == "slave"
                if is_replica and self._replication(node).get("master_link_status") != "up":
                    return False
        except redis.RedisError:
            return False
        return True

    def wait_healthy(self, *, masters: int = 3, replicas: int = 1, timeout: float = 60.0) -> None:
        """Wait until every running node says ``cluster_state:ok``, replicas are synced and,
        with replicas, each master's ``WAIT 1`` is answered (acks flow)."""
        _poll(lambda: self._state_ok(masters, replicas), timeout, "a healthy cluster")
        if replicas:
            for node in self.masters():
                _poll(lambda node=node: self._replica_acks(node), timeout, f"acks of :{node.port}")

    def _replica_acks(self, master: RedisServer) -> bool:
        try:
            with self.client(master.port) as c:
                return int(c.execute_command("WAIT", 1, 1000)) >= 1
        except redis.RedisError:
            return False

    def wait_failover(self, dead: RedisServer, timeout: float = 60.0) -> None:
        """Wait until a replica took over ``dead``'s slots and the cluster is ok again."""
        _poll(lambda: self._state_ok(3, 0), timeout, f"a failover away from :{dead.port}")

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.nodes = []

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
