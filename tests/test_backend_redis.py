"""RedisBackend against a real redis-server: the shared contract, then what only Redis does
(expiry, cross-process sharing and single flight, outages, credentials)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from backend_contract import BackendContract, ReopenContract, entry
from redis_fixtures import (  # noqa: F401 - fixtures
    new_redis_server,
    redis_client_fixture,
    redis_server_fixture,
    redis_url_fixture,
)
from redis_server import RedisServer
from typer.testing import CliRunner

from sheetcache import Cache, ConfigError, make_key
from sheetcache.backends.redis import RedisBackend
from sheetcache.cli import app


def wait_until(
    condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``condition`` with backoff until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class TestRedisBackend(BackendContract, ReopenContract):
    @pytest.fixture
    def backend(self, redis_url: str) -> Iterator[RedisBackend]:
        b = RedisBackend.from_url(redis_url)
        yield b
        b.close()

    @pytest.fixture
    def reopen(self, redis_url: str) -> Callable[[], RedisBackend]:
        return lambda: RedisBackend.from_url(redis_url)


# -- layout, URLs, expiry ---------------------------------------------------------------


def test_documented_key_layout(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    with Cache(f"{redis_server.url}/0", namespace="team-a", ttl=7 * 86400) as cache:
        assert cache.get_or_call("q", lambda p: "a", model="m") == "a"
        assert cache.flush(timeout=30)
        key = cache.key("q", model="m")
        base = f"sheetcache:v2:{{{key[:2]}}}:"  # the bucket: a Cluster hash tag
        h = redis_client.hgetall(f"{base}entry:{key}")
        assert h[b"value"] == b"a" and h[b"namespace"] == b"team-a"
        assert json.loads(h[b"key_parts"]) == {"model": "m"} and json.loads(h[b"prompt"]) == "q"
        ttl_ms = redis_client.pttl(f"{base}entry:{key}")
        assert 7 * 86400_000 - 60_000 < ttl_ms <= 7 * 86400_000 + 1000  # ms rounded up
        assert redis_client.zscore(f"{base}index:team-a", key) == 0
        assert redis_client.sismember(f"{base}namespaces", "team-a")
        assert not redis_client.exists(f"{base}lock:{key}")  # released
        # Hit counts for a key that is not stored never create a stray hash.
        cache.backend.record_hits({"d" * 64: (1, 1.0)})
        assert not redis_client.exists("sheetcache:v2:{dd}:entry:" + "d" * 64)
        assert cache.clear() == 1
        assert redis_client.keys("sheetcache:*") == []


def test_ttl_is_enforced_by_redis(redis_url: str, redis_client: redis.Redis) -> None:
    calls: list[str] = []

    def llm(prompt: str) -> str:
        calls.append(prompt)
        return "fresh"

    with Cache(redis_url, ttl=1) as cache:
        cache.get_or_call("q", llm)
        assert cache.flush(timeout=30)
        name = cache.backend.entry_key(cache.key("q"))  # type: ignore[attr-defined]
        assert 0 < redis_client.pttl(name) <= 1001  # expiry ms are rounded up
        assert cache.backend.count() == 1
        wait_until(lambda: not redis_client.exists(name), 15, "Redis to expire the entry")
        assert cache.backend.count() == 0  # the index forgot it too
    with Cache(redis_url) as later:
        later.get_or_call("q", llm)
    assert calls == ["q", "q"]


def test_storing_without_ttl_removes_an_old_expiry(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with RedisBackend.from_url(redis_url) as b:
        e = entry(1, expires_at=time.time() + 100)
        b.put_many([e])
        assert redis_client.pttl(b.entry_key(e.key)) > 0  # type: ignore[attr-defined]
        e.expires_at = None
        b.put_many([e])
        assert redis_client.pttl(b.entry_key(e.key)) == -1  # type: ignore[attr-defined]
        assert b.count() == 1


def test_an_entry_moved_to_another_namespace_leaves_the_old_index(redis_url: str) -> None:
    with RedisBackend.from_url(redis_url) as b:
        e = entry(1, namespace="a")
        b.put_many([e, entry(2, namespace="a")])
        e.namespace = "b"  # same key (an import, a hand edit): the newest write wins
        b.put_many([e])
        assert (b.count("a"), b.count("b"), b.count()) == (1, 1, 2)
        assert [x.key for x in b.iter_entries("b")] == [e.key]


def test_entries_lost_outside_sheetcache_leave_the_index(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # maxmemory eviction or a DEL by hand removes an entry behind the index's back.
    with RedisBackend.from_url(redis_url) as b:
        stored = [entry(i) for i in range(3)]
        b.put_many(stored)
        redis_client.delete(b.entry_key(stored[0].key))
        assert sorted(e.key for e in b.iter_entries()) == sorted(e.key for e in stored[1:])
        assert b.count() == 2
        assert b.clear() == 2


def _as_dict(reply: object) -> dict[bytes, object]:
    """A RESP3 map or a RESP2 flat list of pairs, as a dict."""
    if isinstance(reply, dict):
        return reply
    assert isinstance(reply, list)
    return dict(zip(reply[::2], reply[1::2], strict=True))


def test_only_commands_of_redis_6_are_used() -> None:
    # Everything the backend runs, scripts' inner calls included (INFO commandstats counts
    # those), must exist in Redis 6.0: teams run 6 and Valkey as well as 7. (Arguments
    # added later are not checked here; the ones used: multi-field HSET is 4.0, SET NX PX
    # 2.6.12.)
    server = new_redis_server()
    try:
        admin = redis.Redis(port=server.port)
        admin.config_resetstat()
        with RedisBackend.from_url(server.url) as b:
            stored = [entry(i, expires_at=2e9 if i % 2 else None) for i in range(4)]
            b.put_many(stored)
            b.get_many([e.key for e in stored])
            b.lookup(stored[0].key)
            list(b.iter_entries())
            b.count()
            b.record_hits({stored[0].key: (1, 1.0)})
            assert b.try_lock("a" * 64, 1)
            b.unlock("a" * 64)
            b.delete_many([stored[0].key])
            b.clear()
        used = {name.removeprefix("cmdstat_") for name in admin.info("commandstats")}
        used -= {"config|resetstat", "info"}  # ours, just above
        conn = admin.connection_pool.get_connection()
        try:
            conn.send_command("COMMAND", "DOCS", *{name.split("|")[0] for name in used})
            docs = _as_dict(conn.read_response())
        finally:
            admin.connection_pool.release(conn)
        since = {}
        for name, doc in docs.items():
            doc = _as_dict(doc)
            since[name.decode()] = doc[b"since"].decode()
            for sub, subdoc in _as_dict(doc.get(b"subcommands") or {}).items():
                since[sub.decode()] = _as_dict(subdoc)[b"since"].decode()
        newer = {
            name: since[name]
            for name in used
            if tuple(int(x) for x in since[name].split(".")) > (6, 0, 0)
        }
        assert not newer
        assert {"evalsha", "hmget", "zrangebylex"} <= used
        admin.close()
    finally:
        server.close()


def test_values_survive_the_trip_through_lua(redis_url: str) -> None:
    # Fields reach the write script as one JSON argument: text JSON escapes must come back
    # as the same text, NUL and control characters included.
    tricky = 'nul\x00 ctl\x01\x1f \u2028 \\u0041 "q" \U0001f600 é'
    with RedisBackend.from_url(redis_url) as b:
        e = entry(1, value=tricky, note=tricky)
        e.prompt, e.key_parts = tricky, {"k": [tricky, 1.5, None]}
        b.put_many([e])
        assert b.get_many([e.key])[e.key] == e
        found = b.lookup(e.key)
        assert found is not None and found.value == tricky


def test_an_entry_edited_by_hand_is_still_served(redis_url: str, redis_client: redis.Redis) -> None:
    with RedisBackend.from_url(redis_url) as b:
        e = entry(1, status="approved")
        b.put_many([e])
        redis_client.hdel(b.entry_key(e.key), "serve")  # type: ignore[attr-defined]
        redis_client.hset(b.entry_key(e.key), "value", "fixed by hand")  # type: ignore[attr-defined]
        found = b.lookup(e.key)
        assert found is not None and (found.value, found.status) == ("fixed by hand", "approved")


def test_unix_socket_urls(redis_server: RedisServer) -> None:
    for url in (
        redis_server.unix_url + "?db=1",
        redis_server.unix_url.replace("redis+unix", "unix") + "?db=1",
    ):
        with Cache(url) as cache:
            assert cache.get_or_call("over a socket", lambda p: "yes") == "yes"
            assert cache.flush(timeout=30)
            assert cache.backend.count() == 1
            cache.clear()


def test_a_client_of_your_own(redis_server: RedisServer) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=2)
    try:
        backend = RedisBackend(client, prefix="mine")
        assert backend.url == f"redis://127.0.0.1:{redis_server.port}/2?prefix=mine"
        backend.put_many([entry(1)])
        backend.close()
        assert client.exists(
            f"mine:v2:{{{entry(1).key[:2]}}}:entry:" + entry(1).key
        )  # still usable: it is yours
        client.delete(*client.keys("mine:*"))
    finally:
        client.close()
    decoding = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        with pytest.raises(ConfigError, match="decode_responses=False"):
            RedisBackend(decoding)
    finally:
        decoding.close()


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad Redis URL"):
        Cache("redis://127.0.0.1:6379/0?socket_timeout=soon")


async def test_async_calls(redis_url: str) -> None:
    async def llm(prompt: str) -> str:
        return prompt.upper()

    with Cache(redis_url) as cache:
        assert await cache.aget_or_call("async", llm, model="m") == "ASYNC"
        cache._l1.clear()
        assert await cache.aget_or_call("async", llm, model="m") == "ASYNC"
        assert cache.stats.hits == 1


def test_missing_extra_names_the_pip_command(subprocess_env: dict[str, str]) -> None:
    code = (
        "import sys\n"
        "sys.modules['redis'] = None  # as if redis-py were not installed\n"
        "import sheetcache\n"
        "try:\n"
        "    sheetcache.Cache('redis://127.0.0.1:6379/0')\n"
        "except sheetcache.MissingDependencyError as exc:\n"
        "    print('ERROR:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'sheetcache[redis]'" in out.stdout


def test_password_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cret-Passw0rd"
    server = new_redis_server(password=secret)
    try:
        with Cache(f"{server.url}/0", l1_size=0) as cache:
            assert secret not in cache.url and secret not in repr(cache)
            assert secret not in repr(cache.backend) and "***" in cache.url
            assert cache.get_or_call("q", lambda p: "a") == "a"  # authenticated
            server.stop(kill=True)
            caplog.set_level("DEBUG")
            assert cache.get_or_call("other", lambda p: "b") == "b"
            assert not cache.flush(timeout=1)
            assert cache.stats.errors > 0
            assert "sheetcache" in caplog.text and secret not in caplog.text
            server.start()
            assert cache.flush(timeout=30)
    finally:
        server.close()
    with pytest.raises(ConfigError) as info:
        Cache(f"redis://:{secret}@127.0.0.1:1/0?socket_timeout=never")
    assert secret not in str(info.value)


def test_without_redis_server_the_tests_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis_fixtures

    monkeypatch.setattr(redis_fixtures, "find_redis_server", lambda: None)
    monkeypatch.delenv("SHEETCACHE_ALLOW_SKIP_REDIS", raising=False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install redis-server"):
        redis_fixtures.require_redis_server()
    monkeypatch.setenv("SHEETCACHE_ALLOW_SKIP_REDIS", "1")
    with pytest.raises(pytest.skip.Exception):
        redis_fixtures.require_redis_server()


# -- several processes ------------------------------------------------------------------


_STORE_CHILD = """
import sys
from sheetcache import Cache
with Cache(sys.argv[1]) as cache:
    cache.get_or_call("shared question", lambda p: "computed in the child", model="m")
"""


def test_two_processes_share_entries(redis_url: str, subprocess_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _STORE_CHILD, redis_url],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr

    def never(prompt: str) -> str:
        raise AssertionError("the child's answer should have been a hit")

    with Cache(redis_url) as cache:
        assert cache.get_or_call("shared question", never, model="m") == "computed in the child"
        assert cache.stats.hits == 1


_FLIGHT_CHILD = """
import json, os, random, sys, time
from sheetcache import Cache

url, log_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
prompts = [f"prompt {i}: " + "context " * 40 for i in range(100)]

def llm(prompt):
    with open(log_path, "a") as log:  # O_APPEND: one whole line per write
        log.write(f"{os.getpid()} {prompt[:10]}\\n")
    time.sleep(0.02)  # an LLM takes a while: lets the other processes pile up on the key
    return "answer to " + prompt

cache = Cache(url, lock_timeout=30)
print("ready", flush=True)
sys.stdin.readline()
rng = random.Random(seed)
# Round one in the same order everywhere: every key is contended. Then shuffled rounds.
order = list(range(100)) + [i for _ in range(4) for i in rng.sample(range(100), 100)]
wrong = sum(cache.get_or_call(prompts[i], llm, model="m") != "answer to " + prompts[i]
            for i in order)
cache.close()
print(json.dumps({"calls": len(order), "wrong": wrong, "errors": cache.stats.errors}), flush=True)
"""


def test_single_flight_across_processes(
    redis_url: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "llm-calls.log"
    log.touch()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _FLIGHT_CHILD, redis_url, str(log), str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env,
        )
        for seed in range(4)
    ]
    try:
        for child in children:  # all imported and connected: start them together
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            stdout, stderr = child.communicate(timeout=120)
            assert child.returncode == 0, stderr
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
            child.wait()
    assert results == [{"calls": 500, "wrong": 0, "errors": 0}] * 4
    lines = log.read_text().splitlines()
    assert len(lines) == 100, f"{len(lines)} LLM calls for 100 prompts"
    assert len({line.split(" ", 1)[1] for line in lines}) == 100


def test_a_crashed_lock_holder_blocks_only_until_the_lock_expires(redis_url: str) -> None:
    with Cache(redis_url, lock_timeout=30) as cache:
        key = cache.key("q")
        crashed = RedisBackend.from_url(redis_url)
        assert crashed.try_lock(key, 0.5)  # and never unlocks: its process died
        crashed.close()
        started = time.monotonic()
        assert cache.get_or_call("q", lambda p: "computed after the lock expired") == (
            "computed after the lock expired"
        )
        assert time.monotonic() - started >= 0.4  # it did wait for the holder first
        assert cache.stats.misses == 1


def test_unlock_releases_only_its_own_lock(redis_url: str) -> None:
    key = "a" * 64
    with (
        RedisBackend.from_url(redis_url) as first,
        RedisBackend.from_url(redis_url) as second,
        RedisBackend.from_url(redis_url) as third,
    ):
        assert first.try_lock(key, 0.2) is True
        assert second.try_lock(key, 30) is False
        wait_until(lambda: second.try_lock(key, 30) is True, 10, "the first lock to expire")
        first.unlock(key)  # late: its lock expired and now belongs to `second`
        assert third.try_lock(key, 30) is False
        second.unlock(key)
        assert third.try_lock(key, 30) is True
        third.unlock(key)


def test_a_stored_answer_is_read_not_recomputed(redis_url: str) -> None:
    # The lookup missed, then the holder stored its answer and unlocked before our lock
    # attempt: the attempt must fail so we read the answer instead of calling again.
    with RedisBackend.from_url(redis_url) as b:
        e = entry(1)
        b.put_many([e])
        assert b.try_lock(e.key, 30) is False
        b.put_many([entry(1, status="rejected")])  # a rejected answer is not served: recompute
        assert b.try_lock(e.key, 30) is True
        b.unlock(e.key)


# -- outages ----------------------------------------------------------------------------


def test_redis_killed_and_restarted_mid_run() -> None:
    server = new_redis_server(persistent=True)  # AOF, fsync always: a kill loses nothing stored
    stop = threading.Event()
    errors: list[BaseException] = []
    asked: list[str] = []
    done = [0]
    lock = threading.Lock()

    def llm(prompt: str) -> str:
        return "answer to " + prompt

    def worker(cache: Cache, n: int) -> None:
        i = 0
        while not stop.is_set():
            prompt = f"thread {n} prompt {i}" if i % 3 else f"thread {n} prompt {i // 2}"
            i += 1
            try:
                if cache.get_or_call(prompt, llm, model="m") != "answer to " + prompt:
                    raise AssertionError(f"wrong answer for {prompt}")
            except BaseException as exc:  # noqa: BLE001 - collected, asserted below
                errors.append(exc)
                return
            with lock:
                asked.append(prompt)
                done[0] += 1

    def calls() -> int:
        with lock:
            return done[0]

    try:
        cache = Cache(f"{server.url}/0", l1_size=0, lock_timeout=10)
        threads = [threading.Thread(target=worker, args=(cache, n)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: calls() >= 200, what="calls before the outage")
            server.stop(kill=True)
            before = calls()
            wait_until(lambda: calls() >= before + 200 or bool(errors), what="calls during it")
            down_errors = cache.stats.errors
            server.start()
            before = calls()
            wait_until(lambda: calls() >= before + 200 or bool(errors), what="calls after it")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert errors == []
        assert down_errors > 0  # the outage really happened under the callers
        assert cache.flush(timeout=60)
        assert cache.stats.pending_writes == 0
        keys = {cache.key(p, model="m"): p for p in asked}
        stored = cache.backend.get_many(list(keys))
        assert set(stored) == set(keys)
        assert all(stored[k].value == "answer to " + p for k, p in keys.items())
        # The same Cache reads from the restarted server again.
        errors_now = cache.stats.errors
        assert cache.get_or_call(asked[0], llm, model="m") == "answer to " + asked[0]
        assert cache.stats.errors == errors_now
        cache.close()
    finally:
        server.close()


def test_pooled_connections_survive_a_restart() -> None:
    # Every pooled connection is dead after a restart; the first use of each must reconnect
    # instead of failing (lookup has its own lean path, the rest go through redis-py).
    server = new_redis_server(persistent=True)
    try:
        with RedisBackend.from_url(server.url) as b:
            e = entry(1)
            b.put_many([e])
            assert b.lookup(e.key) is not None
            server.stop(kill=True)
            server.start()
            found = b.lookup(e.key)
            assert found is not None and found.value == e.value
            assert b.get_many([e.key])[e.key] == e
            assert b.try_lock(e.key, 1) is False  # the answer is stored
    finally:
        server.close()


def test_a_hung_server_does_not_hang_callers() -> None:
    server = new_redis_server()
    try:
        with Cache(f"{server.url}/0?socket_timeout=0.3", l1_size=0) as cache:
            cache.get_or_call("warm up", str.upper)
            server.pause()  # accepts connections, never answers
            result: list[str] = []
            caller = threading.Thread(
                target=lambda: result.append(cache.get_or_call("q", str.upper))
            )
            caller.start()
            caller.join(60)
            assert not caller.is_alive() and result == ["Q"]
            assert cache.stats.errors > 0
            server.resume()
            assert cache.flush(timeout=30)
            assert make_key("q") in cache.backend.get_many([make_key("q")])
    finally:
        server.close()


# -- metadata, owner locks, the v1 layout -----------------------------------------------


def test_metadata_round_trips_and_lookup_carries_the_usage(redis_url: str) -> None:
    usage = {"model": "gpt-4o", "provider": "openai", "input_tokens": 12, "output_tokens": 34}
    meta = {"usage": usage, "run": {"tags": ["a", "ü"], "ok": True, "n": None}}
    with RedisBackend.from_url(redis_url) as b:
        e = entry(1, metadata=meta)
        b.put_many([e, entry(2)])
        assert b.get_many([e.key])[e.key].metadata == meta
        assert {x.key: x.metadata for x in b.iter_entries()} == {e.key: meta, entry(2).key: {}}
        found = b.lookup(e.key)
        assert found is not None and found.metadata == {"usage": usage}
        plain = b.lookup(entry(2).key)
        assert plain is not None and plain.metadata == {}


def test_hand_edited_metadata_never_hides_the_answer(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with RedisBackend.from_url(redis_url) as b:
        e = entry(1, metadata={"usage": {"input_tokens": 1}})
        b.put_many([e])
        redis_client.hset(b.entry_key(e.key), "metadata", "{not json")
        got = b.get_many([e.key])[e.key]
        assert got.value == e.value and got.metadata == {}


def test_two_owners_cannot_release_each_others_lock(redis_url: str) -> None:
    key = "b" * 64
    with RedisBackend.from_url(redis_url) as first, RedisBackend.from_url(redis_url) as second:
        assert first.try_lock(key, 30, "owner-a") is True
        assert second.try_lock(key, 30, "owner-b") is False
        second.unlock(key, "owner-b")  # not its lock: nothing happens
        assert second.try_lock(key, 30, "owner-b") is False
        first.unlock(key, "owner-a")
        assert second.try_lock(key, 30, "owner-b") is True
        first.unlock(key, "owner-a")  # late: the lock is owner-b's now
        assert first.try_lock(key, 30, "owner-a") is False
        second.unlock(key, "owner-b")


def test_the_v1_layout_is_still_read_and_migrate_moves_it(
    redis_url: str, redis_client: redis.Redis
) -> None:
    old = [entry(i, namespace="ns" if i % 2 else "default") for i in range(6)]
    with RedisBackend.from_url(redis_url + "&layout=1") as v1:
        v1.put_many(old)
    prefix = redis_url.rsplit("prefix=", 1)[1]
    assert redis_client.exists(f"{prefix}:v1:entry:{old[0].key}")
    with RedisBackend.from_url(redis_url) as b:
        found = b.lookup(old[0].key)
        assert found is not None and found.value == old[0].value
        assert set(b.get_many([e.key for e in old])) == {e.key for e in old}
        assert b.count() == 6 and len(list(b.iter_entries("ns"))) == 3
        replaced = entry(0, value="rewritten in v2")
        b.put_many([replaced])  # v2 shadows v1: served, and listed once
        assert b.get_many([replaced.key])[replaced.key].value == "rewritten in v2"
        assert sorted(e.value for e in b.iter_entries() if e.key == replaced.key) == [
            "rewritten in v2"
        ]
        assert b.delete_many([old[1].key]) == 1  # gone from both layouts
        assert b.get_many([old[1].key]) == {}
    runner = CliRunner()
    moved = runner.invoke(app, ["migrate", redis_url + "&layout=1", redis_url + "&layout=2"])
    assert moved.exit_code == 0, moved.output
    cleared = runner.invoke(app, ["clear", "--url", redis_url + "&layout=1", "--yes"])
    assert cleared.exit_code == 0, cleared.output
    assert redis_client.keys(f"{prefix}:v1:*") == []
    with RedisBackend.from_url(redis_url + "&layout=2") as v2:
        values = {e.key: e.value for e in v2.iter_entries()}
    assert values == {e.key: e.value for e in old[2:]} | {old[0].key: "rewritten in v2"}


def test_valkey_urls_are_aliases(redis_server: RedisServer) -> None:
    for scheme in ("valkey", "valkey+unix"):
        url = (
            f"valkey://127.0.0.1:{redis_server.port}/0?prefix=vk"
            if scheme == "valkey"
            else f"valkey+unix://{redis_server.socket_path}?db=0&prefix=vk"
        )
        with Cache(url) as cache:
            assert cache.get_or_call("q", str.upper) == "Q"
            assert cache.flush(timeout=30)
            assert cache.backend.count() == 1
            cache.clear()
