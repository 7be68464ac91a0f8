"""RedisBackend on a real Redis Cluster (6 redis-server processes: 3 masters, 3 replicas):
the shared contract, slot spread, single flight across processes, durability and failover."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from backend_contract import BackendContract, ReopenContract, entry
from redis_cluster import LocalCluster
from redis_fixtures import require_redis_cli
from typer.testing import CliRunner

from sheetcache import Cache, ConfigError, Entry
from sheetcache.backends.redis import RedisBackend
from sheetcache.cli import app


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture() -> Iterator[LocalCluster]:
    require_redis_cli()
    cluster = LocalCluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(name="cluster_url")
def cluster_url_fixture(cluster: LocalCluster) -> str:
    """A cluster URL with a key prefix of its own: every test starts from an empty store.

    ``wait_timeout=5``: on a loaded CI machine a replica's ack can take longer than the
    default 0.5 s, and these tests call ``put_many`` directly (no outbox to retry from).
    """
    return f"{cluster.url}?prefix=t{uuid.uuid4().hex[:12]}&wait_timeout=5"


class TestClusterBackend(BackendContract, ReopenContract):
    @pytest.fixture
    def backend(self, cluster_url: str) -> Iterator[RedisBackend]:
        b = RedisBackend.from_url(cluster_url)
        yield b
        b.close()

    @pytest.fixture
    def reopen(self, cluster_url: str) -> Callable[[], RedisBackend]:
        return lambda: RedisBackend.from_url(cluster_url)


try:  # the cache-front contract (tests/cache_contract.py) comes with the front's branch
    from cache_contract import CacheContract
except ImportError:  # pragma: no cover - before that branch is merged
    CacheContract = None

if CacheContract is not None:

    class TestClusterCache(CacheContract):  # type: ignore[misc, valid-type]
        @pytest.fixture
        def make_cache(self, cluster_url: str, tmp_path: Path) -> Iterator[Callable[..., Cache]]:
            opened: list[Cache] = []

            def make(**options: Any) -> Cache:
                opened.append(Cache(cluster_url, outbox=tmp_path / "outbox.db", **options))
                return opened[-1]

            yield make
            for cache in opened:
                cache.close(timeout=10)

        @pytest.fixture
        def broken_cache(self, tmp_path: Path) -> Iterator[Cache]:
            cache = Cache("redis+cluster://127.0.0.1:1/", outbox=tmp_path / "outbox-down.db")
            yield cache
            cache.close(timeout=0.1)


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "it") -> None:
    """Poll ``condition`` with backoff until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def default_waits(url: str) -> str:
    """``url`` with the default ``wait_timeout`` (0.5 s), as an application would run."""
    return url.replace("&wait_timeout=5", "")


def master_of(url: str, key: str) -> int:
    """Port of the master that holds cache key ``key``'s bucket."""
    with RedisBackend.from_url(url) as b:
        slot = b._layout.bucket(key).slot
        name, _client = b._nodes.for_slot(slot)
    return int(name.rsplit(":", 1)[1])


# -- layout and URLs ----------------------------------------------------------------------


def test_one_namespace_lands_on_every_master(cluster: LocalCluster, cluster_url: str) -> None:
    prefix = cluster_url.split("prefix=", 1)[1].split("&", 1)[0]
    with RedisBackend.from_url(cluster_url) as b:
        b.put_many([entry(i, namespace="only-one") for i in range(300)])
        spread = b.key_distribution()
        assert b.count("only-one") == 300
    masters = cluster.masters()
    assert len(spread) == len(masters) == 3
    per_master = []
    for node in masters:
        with cluster.client(node.port) as c:
            per_master.append(sum(1 for _ in c.scan_iter(match=f"{prefix}:v2:*:entry:*")))
    assert sum(per_master) == 300
    # 256 buckets over 3 masters: each holds roughly a third, none holds nothing.
    assert all(n >= 50 for n in per_master), per_master


def test_valkey_alias_and_a_password_free_url(cluster: LocalCluster) -> None:
    url = cluster.url.replace("redis+cluster://", "valkey+cluster://")
    url = url.replace("127.0.0.1", "user:s3cret@127.0.0.1", 1) + "?prefix=valkey-alias"
    with Cache(url) as cache:
        assert "s3cret" not in cache.url and "s3cret" not in repr(cache.backend)
        assert cache.backend.cluster and cache.backend.durability == "replica"


def test_cluster_url_mistakes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="only database 0"):
        RedisBackend.from_url("redis+cluster://127.0.0.1:7000/2")
    with pytest.raises(ConfigError, match="host:port"):
        RedisBackend.from_url("redis+cluster://127.0.0.1:7000,nohost/")
    with pytest.raises(ConfigError, match="durability"):
        RedisBackend.from_url("redis+cluster://127.0.0.1:7000/?durability=sometimes")
    with pytest.raises(ConfigError, match="v1 is not readable on Redis Cluster"):
        RedisBackend.from_url("redis+cluster://127.0.0.1:7000/?layout=1")
    with pytest.raises(ConfigError, match="cooldown"):
        RedisBackend.from_url("redis+cluster://127.0.0.1:7000/?cooldown=0")
    with pytest.raises(ConfigError, match="wait_timeout"):
        RedisBackend.from_url("redis+cluster://127.0.0.1:7000/?wait_timeout=soon")


def test_a_cluster_that_is_down_does_not_break_construction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = Cache("redis+cluster://:hunter2-secret@127.0.0.1:1,127.0.0.1:2/?prefix=down", l1_size=0)
    try:
        assert cache.get_or_call("q", str.upper) == "Q"  # fails open
        assert cache.stats.errors > 0
        assert cache.stats.pending_writes == 1  # the answer waits in the outbox
        assert cache.backend.breaker.state == "open"
    finally:
        cache.close(timeout=0.1)
    assert "127.0.0.1:1" in caplog.text  # the outage was logged, with where...
    assert "hunter2-secret" not in caplog.text  # ...and never the password


def test_hostile_text_and_a_megabyte_survive_the_cluster(cluster_url: str) -> None:
    tricky = 'nul\x00 ctl\x01\x1f \u2028 \\u0041 "q" \U0001f600 é'
    big = "x" * (1 << 20)
    with RedisBackend.from_url(cluster_url) as b:
        e = entry(1, value=tricky, note=tricky, metadata={"t": tricky})
        e.prompt, e.key_parts = tricky, {"k": [tricky, 1.5, None]}
        large = entry(2, value=big)
        b.put_many([e, large])
        assert b.get_many([e.key, large.key]) == {e.key: e, large.key: large}
        found = b.lookup(large.key)
        assert found is not None and found.value == big


def test_a_resharded_slot_is_followed(cluster: LocalCluster, cluster_url: str) -> None:
    written, read = entry(1), entry(2)
    with RedisBackend.from_url(cluster_url) as b:
        b.put_many([written, read])  # the backend has read the slot table: it goes stale

        def move(e: Entry) -> int:
            source = next(n for n in cluster.nodes if n.port == master_of(cluster_url, e.key))
            target = next(n for n in cluster.masters() if n is not source)
            cluster.move_slot(b._layout.bucket(e.key).slot, source, target)
            return target.port

        moved_to = move(written)
        again = entry(1, value="written after the move")
        b.put_many([again])  # MOVED: slot table re-read, batch sent again
        assert b.get_many([written.key])[written.key].value == "written after the move"
        move(read)
        found = b.lookup(read.key)  # MOVED on the lean hit path: followed too
        assert found is not None and found.value == read.value
        assert b.count() == 2 and b.breaker.state == "closed"
    assert master_of(cluster_url, written.key) == moved_to


def test_a_cluster_client_of_your_own(cluster: LocalCluster) -> None:
    from redis.cluster import RedisCluster

    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        with Cache(RedisBackend(client, prefix="own-client")) as cache:
            assert cache.backend.url.startswith("redis+cluster://")
            assert cache.get_or_call("q", str.upper) == "Q"
            assert cache.flush(timeout=30)
            assert cache.backend.count() == 1
            cache.clear()
        assert client.ping()  # still usable: it is yours
    finally:
        client.close()


# -- durability ---------------------------------------------------------------------------


def test_a_write_stays_queued_until_a_replica_has_it(
    cluster: LocalCluster, cluster_url: str
) -> None:
    with Cache(cluster_url.replace("wait_timeout=5", "wait_timeout=0.2"), l1_size=0) as cache:
        key = cache.key("durable?")
        replica = cluster.replica_of(
            next(n for n in cluster.nodes if n.port == master_of(cluster_url, key))
        )
        replica.pause()  # the master is fine; nothing confirms its writes
        try:
            started = time.monotonic()
            assert cache.get_or_call("durable?", lambda p: "yes") == "yes"
            assert time.monotonic() - started < 2.0  # bounded by wait_timeout, not forever
            assert not cache.flush(timeout=1.0)
            assert cache.stats.pending_writes == 1  # kept in the outbox
        finally:
            replica.resume()
        assert cache.flush(timeout=60)
        assert cache.stats.pending_writes == 0
        assert cache.backend.get_many([key])[key].value == "yes"


def test_durability_primary_does_not_wait_for_replicas(
    cluster: LocalCluster, cluster_url: str
) -> None:
    with Cache(cluster_url + "&durability=primary", l1_size=0) as cache:
        key = cache.key("fast")
        replica = cluster.replica_of(
            next(n for n in cluster.nodes if n.port == master_of(cluster_url, key))
        )
        replica.pause()
        try:
            assert cache.get_or_call("fast", lambda p: "yes") == "yes"
            assert cache.flush(timeout=30)
        finally:
            replica.resume()


# -- CLI ----------------------------------------------------------------------------------


def test_cli_stats_ls_export_migrate_clear(cluster_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    with RedisBackend.from_url(cluster_url) as b:
        b.put_many([entry(i, namespace=f"ns{i % 2}") for i in range(40)])

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert "Traceback" not in result.output
        return result.output

    assert "40" in ok("stats", "--url", cluster_url)
    assert "question 3" in ok("ls", "--url", cluster_url)
    out = tmp_path / "export.jsonl"
    ok("export", "--output", str(out), "--url", cluster_url)
    assert sorted(orjson.loads(line)["key"] for line in out.read_bytes().splitlines()) == sorted(
        entry(i, namespace=f"ns{i % 2}").key for i in range(40)
    )
    backup = f"sqlite:///{tmp_path}/backup.db"
    ok("migrate", cluster_url, backup)
    with Cache(backup) as copy:
        assert copy.backend.count() == 40
    ok("clear", "--url", cluster_url, "--yes")
    with RedisBackend.from_url(cluster_url) as b:
        assert b.count() == 0
        assert list(b.iter_entries()) == []


# -- several processes ----------------------------------------------------------------------

_FLIGHT_CHILD = """
import json, os, random, sys, time
from sheetcache import Cache

url, log_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
prompts = [f"prompt {i}: " + "context " * 40 for i in range(80)]

def llm(prompt):
    with open(log_path, "a") as log:  # O_APPEND: one whole line per write
        log.write(f"{os.getpid()} {prompt[:10]}\\n")
    time.sleep(0.02)  # an LLM takes a while: lets the other processes pile up on the key
    return "answer to " + prompt

cache = Cache(url, lock_timeout=30)
print("ready", flush=True)
sys.stdin.readline()
rng = random.Random(seed)
# 80 in the same order everywhere (every key contended), then 120 shuffled: 200 calls.
order = list(range(80)) + rng.sample(range(80), 80) + rng.sample(range(80), 40)
wrong = sum(cache.get_or_call(prompts[i], llm, model="m") != "answer to " + prompts[i]
            for i in order)
cache.close()
print(json.dumps({"calls": len(order), "wrong": wrong, "errors": cache.stats.errors}), flush=True)
"""

_WRITER_CHILD = """
import json, sys, threading
from sheetcache import Cache

url, log_path, name = sys.argv[1], sys.argv[2], sys.argv[3]
cache = Cache(url, l1_size=0, lock_timeout=5)
stop = threading.Event()
errors, i = [], 0
with open(log_path, "a", buffering=1) as log:
    print("ready", flush=True)
    sys.stdin.readline()  # "go"; the next line says stop
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    while not stop.is_set():
        prompt = f"{name} prompt {i}"
        i += 1
        try:
            answer = cache.get_or_call(prompt, lambda p: "answer to " + p, model="m")
        except Exception as exc:
            errors.append(repr(exc))
            continue
        if answer != "answer to " + prompt:
            errors.append(f"wrong answer for {prompt}")
        log.write(prompt + "\\n")  # returned to a caller: must be in the cluster at the end
flushed = cache.flush(timeout=90)
pending = cache.stats.pending_writes
cache.close()
print(json.dumps({"errors": errors, "flushed": flushed, "pending": pending}), flush=True)
"""


def _start(script: str, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    # stderr to a file: a pipe nobody reads until the end fills up with log lines and
    # blocks the child.
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=err, text=True, env=env,
        )  # fmt: skip


def _finish(
    children: list[subprocess.Popen[str]], log: Path, timeout: float = 150
) -> list[dict[str, Any]]:
    results = []
    try:
        for child in children:
            stdout, _ = child.communicate(timeout=timeout)
            assert child.returncode == 0, log.read_text(errors="replace")[-3000:]
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
    return results


def _go(children: list[subprocess.Popen[str]]) -> None:
    for child in children:  # all imported and connected: start them together
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def test_single_flight_across_processes_on_the_cluster(
    cluster_url: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "llm-calls.log"
    log.touch()
    children = [
        _start(
            _FLIGHT_CHILD,
            default_waits(cluster_url),
            str(log),
            str(seed),
            env=subprocess_env,
            log=tmp_path / "stderr.log",
        )
        for seed in range(4)
    ]
    try:
        _go(children)
    finally:
        results = _finish(children, tmp_path / "stderr.log")
    assert results == [{"calls": 200, "wrong": 0, "errors": 0}] * 4
    lines = log.read_text().splitlines()
    assert len(lines) == 80, f"{len(lines)} LLM calls for 80 prompts"
    assert len({line.split(" ", 1)[1] for line in lines}) == 80


def test_kill_9_of_a_master_loses_no_answer(
    cluster: LocalCluster, cluster_url: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    logs = [tmp_path / f"writer-{n}.log" for n in range(2)]
    children = [
        _start(
            _WRITER_CHILD,
            default_waits(cluster_url),
            str(log),
            f"w{n}",
            env=subprocess_env,
            log=tmp_path / "stderr.log",
        )
        for n, log in enumerate(logs)
    ]

    def answered() -> list[int]:
        return [len(log.read_text().splitlines()) if log.exists() else 0 for log in logs]

    try:
        _go(children)
        wait_until(lambda: min(answered()) >= 100, what="answers before the kill")
        victim = cluster.masters()[0]
        victim.stop(kill=True)  # kill -9 under continuous writes
        before = answered()
        wait_until(lambda: all(a >= b + 100 for a, b in zip(answered(), before, strict=True)),
                   what="answers while the master is dead")  # fmt: skip
        cluster.wait_failover(victim)
        victim.start()  # rejoins as the replica of the node that took over its slots
        cluster.wait_healthy()
        before = answered()
        wait_until(lambda: all(a >= b + 100 for a, b in zip(answered(), before, strict=True)),
                   what="answers after the failover")  # fmt: skip
        for child in children:
            assert child.stdin is not None
            child.stdin.write("stop\n")
            child.stdin.flush()
    finally:
        results = _finish(children, tmp_path / "stderr.log")
    assert [r["errors"] for r in results] == [[], []]  # no caller saw an error
    assert [(r["flushed"], r["pending"]) for r in results] == [(True, 0), (True, 0)]
    prompts = [p for log in logs for p in log.read_text().splitlines()]
    assert len(prompts) >= 600
    with Cache(cluster_url) as cache:
        keys = {cache.key(p, model="m"): p for p in prompts}
        stored = cache.backend.get_many(list(keys))
    lost = sorted(set(keys) - set(stored))
    assert lost == [], f"{len(lost)} of {len(keys)} answers lost, e.g. {keys[lost[0]]!r}"
    assert all(stored[k].value == "answer to " + p for k, p in keys.items())
