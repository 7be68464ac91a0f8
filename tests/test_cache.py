"""The cache front: hits, misses, single-flight, fail-open, TTL, flags, values, decorator."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from polling import await_until, wait_until
from pydantic import BaseModel
from switchable import SwitchableBackend

import sheetcache
from sheetcache import Cache, ConfigError, SQLiteBackend, UnsupportedValueError


class Answer(BaseModel):
    text: str
    confidence: float
    sources: list[str]


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Shape:
    name: str
    corners: list[Point]


class Counter:
    """A fake LLM that counts its calls and can be held until released."""

    def __init__(self, answer: object = "the answer", gate: threading.Event | None = None) -> None:
        self.answer = answer
        self.gate = gate
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, prompt: object) -> object:
        with self._lock:
            self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(30), "test gate never opened"
        return self.answer


def followers(cache: Cache) -> int:
    """Callers waiting on the cache's flights in progress."""
    return sum(flight.waiting for flight in cache._flights.values())


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cache.db"


def test_public_surface_is_pinned() -> None:
    assert sheetcache.__all__ == sorted(
        sheetcache.__all__, key=lambda n: (not n.isupper(), n.lower() if n.isupper() else n)
    )
    assert set(sheetcache.__all__) == {
        "KEY_FORMAT_VERSION", "MODES", "Answer", "Backend", "BackendError", "Cache",
        "CacheMissError", "CacheStats", "ConfigError", "Entry", "Explanation", "Lookup",
        "MemoryBackend", "MissingDependencyError", "SQLiteBackend", "SchemaError",
        "SheetcacheError", "UnsupportedValueError", "__version__", "make_key",
    }  # fmt: skip
    for name in sheetcache.__all__:
        assert hasattr(sheetcache, name)


def test_hit_skips_the_call_and_counts(db: str) -> None:
    llm = Counter()
    with Cache(db) as cache:
        assert cache.get_or_call("q", llm, model="m") == "the answer"
        assert cache.get_or_call("q", llm, model="m") == "the answer"
        assert cache.get_or_call("q", llm, model="other") == "the answer"
        assert llm.calls == 2
        stats = cache.stats
        assert (stats.hits, stats.misses, stats.errors) == (1, 2, 0)
        assert stats.hit_rate == pytest.approx(1 / 3)


def test_default_cache_is_sqlite_in_the_data_dir(_isolated_data_dir: Path) -> None:
    with Cache() as cache:
        cache.set("q", "a")
        assert isinstance(cache.backend, SQLiteBackend)
    assert (_isolated_data_dir / "cache.db").exists()


def test_sheetcache_url_env_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEETCACHE_URL", f"sqlite:///{tmp_path}/from-env.db")
    with Cache() as cache:
        cache.set("q", "a")
    assert (tmp_path / "from-env.db").exists()


def test_bad_configuration_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match=r"unknown cache URL.*memory://"):
        Cache("postgres://x")
    with pytest.raises(ConfigError, match="ttl must be"):
        Cache("memory://", ttl=-1)
    with pytest.raises(ConfigError, match="namespace"):
        Cache("memory://", namespace="")
    with pytest.raises(ConfigError, match="names no file"):
        Cache("sqlite://")


def test_answers_persist_across_processes(db: str, subprocess_env: dict[str, str]) -> None:
    import subprocess
    import sys

    script = (
        "import sys; from sheetcache import Cache\n"
        "with Cache(sys.argv[1]) as c:\n"
        "    print(c.get_or_call('q', lambda p: {'answer': 42, 'from': 'child'}, model='m'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, db],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    llm = Counter()
    with Cache(db) as cache:
        assert cache.get_or_call("q", llm, model="m") == {"answer": 42, "from": "child"}
        assert llm.calls == 0 and cache.stats.hits == 1


# -- single-flight -------------------------------------------------------------------------


def test_concurrent_identical_misses_call_once_threads(db: str) -> None:
    gate = threading.Event()
    llm = Counter("shared", gate)
    results: list[object] = []
    with Cache(db) as cache:
        entered = threading.Semaphore(0)

        def worker() -> None:
            entered.release()
            results.append(cache.get_or_call("same prompt", llm, model="m"))

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for t in threads:
            t.start()
        for _ in threads:
            assert entered.acquire(timeout=30)
        # Release the leader only once the 19 others have joined its flight.
        wait_until(lambda: llm.calls == 1 and followers(cache) == 19, what="19 followers")
        gate.set()
        for t in threads:
            t.join(30)
        assert results == ["shared"] * 20
        assert llm.calls == 1
        assert cache.stats.misses == 1 and cache.stats.hits == 19


def test_an_exception_reaches_every_waiter_and_is_not_cached(db: str) -> None:
    gate = threading.Event()
    calls = []

    def failing(prompt: object) -> str:
        calls.append(prompt)
        assert gate.wait(30)
        raise RuntimeError("rate limited by the provider")

    errors: list[BaseException] = []
    with Cache(db) as cache:

        def worker() -> None:
            try:
                cache.get_or_call("p", failing)
            except RuntimeError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        wait_until(lambda: calls and followers(cache) == 7, what="seven followers")
        gate.set()
        for t in threads:
            t.join(30)
        assert len(errors) == 8 and all("rate limited" in str(e) for e in errors)
        assert len(calls) == 1  # one call failed, and all eight callers saw its error
        assert cache.get_or_call("p", lambda p: "recovered") == "recovered"
        assert cache.backend.count() == 1


async def test_concurrent_identical_misses_call_once_asyncio(db: str) -> None:
    calls = 0
    release = asyncio.Event()

    async def llm(prompt: object) -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "async answer"

    with Cache(db) as cache:
        tasks = [asyncio.create_task(cache.aget_or_call("p", llm, model="m")) for _ in range(20)]
        await await_until(lambda: calls == 1 and followers(cache) == 19, what="19 followers")
        release.set()
        assert await asyncio.gather(*tasks) == ["async answer"] * 20
        assert calls == 1
        assert await cache.aget_or_call("p", llm, model="m") == "async answer"
        assert calls == 1


async def test_async_exception_reaches_waiters_and_is_not_cached(db: str) -> None:
    async def boom(prompt: object) -> str:
        await asyncio.sleep(0)
        raise ValueError("bad request")

    with Cache(db) as cache:
        results = await asyncio.gather(
            *[cache.aget_or_call("p", boom) for _ in range(5)], return_exceptions=True
        )
        assert all(isinstance(r, ValueError) for r in results)
        assert cache.backend.count() == 0


async def test_thread_and_task_share_one_flight(db: str) -> None:
    gate = threading.Event()
    llm = Counter("from thread", gate)
    with Cache(db) as cache:
        thread_result: list[object] = []
        t = threading.Thread(target=lambda: thread_result.append(cache.get_or_call("p", llm)))
        t.start()
        await await_until(lambda: llm.calls == 1, what="the thread to call")

        async def never(prompt: object) -> str:
            raise AssertionError("the task must wait for the thread's call")

        task = asyncio.create_task(cache.aget_or_call("p", never))
        await await_until(lambda: followers(cache) == 1, what="the task to join the flight")
        gate.set()
        assert await task == "from thread"
        t.join(30)
        assert thread_result == ["from thread"] and llm.calls == 1


# -- fail-open and write-behind ------------------------------------------------------------


def test_fail_open_when_the_store_is_down(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    backend = SwitchableBackend(tmp_path / "remote.db")
    backend.down = True
    llm = Counter()
    with Cache(backend, outbox=tmp_path / "outbox.db") as cache:
        for i in range(5):
            assert cache.get_or_call(f"q{i}", llm) == "the answer"
        assert cache.get_or_call("q0", llm) == "the answer"  # L1 still serves
        assert llm.calls == 5
        assert not cache.flush(timeout=0.5)
        assert cache.stats.errors >= 1
        assert cache.stats.pending_writes == 5
        # Logged once per outage with what happens next, not once per call.
        outage_logs = [
            r for r in caplog.records if "will retry in the background" in r.getMessage()
        ]
        assert len(outage_logs) == 1
        backend.down = False
        assert cache.flush(timeout=30)
        assert cache.stats.pending_writes == 0
    check = SQLiteBackend(tmp_path / "remote.db")
    assert check.count() == 5
    check.close()


def test_misses_are_batched_in_the_background(tmp_path: Path) -> None:
    backend = SwitchableBackend(tmp_path / "remote.db")
    with Cache(backend, outbox=tmp_path / "outbox.db") as cache:
        backend.down = True  # hold the flusher so every miss queues
        for i in range(300):
            cache.get_or_call(f"q{i}", lambda p: "a")
        backend.down = False
        assert cache.flush(timeout=30)
        assert backend.put_calls <= 2  # 300 misses, at most two batches


def test_outbox_serves_a_restart_before_the_store_is_back(tmp_path: Path) -> None:
    backend = SwitchableBackend(tmp_path / "remote.db")
    backend.down = True
    with Cache(backend, outbox=tmp_path / "outbox.db") as cache:
        cache.get_or_call("q", lambda p: "paid for once")
        cache.close(timeout=0.2)
    backend = SwitchableBackend(tmp_path / "remote.db")
    backend.down = True
    llm = Counter()
    with Cache(backend, outbox=tmp_path / "outbox.db") as cache:
        assert cache.get_or_call("q", llm) == "paid for once"
        assert llm.calls == 0
        backend.down = False


_KILL_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from switchable import SwitchableBackend
from sheetcache import Cache

backend = SwitchableBackend(Path(sys.argv[1]), down_file=Path(sys.argv[1] + ".down"))
cache = Cache(backend, outbox=sys.argv[2])
for i in range(50):
    cache.get_or_call(f"question {i}", lambda p: "answer " + p)
print("returned 50 answers", flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_answers_survive_kill_9_and_land_on_next_start(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    import signal
    import subprocess
    import sys

    db, outbox = tmp_path / "remote.db", tmp_path / "outbox.db"
    SQLiteBackend(db).close()
    (tmp_path / "remote.db.down").touch()  # the store is unreachable for the child
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(db), str(outbox), str(Path(__file__).parent)],
        env=subprocess_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "returned 50 answers"
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdin.close()  # type: ignore[union-attr]
        child.stdout.close()  # type: ignore[union-attr]
    (tmp_path / "remote.db.down").unlink()
    with Cache(SwitchableBackend(db), outbox=outbox) as cache:
        assert cache.flush(timeout=60)
    store = SQLiteBackend(db)
    try:
        assert store.count() == 50
        assert {e.value for e in store.iter_entries()} == {
            f"answer question {i}" for i in range(50)
        }
    finally:
        store.close()


_EXIT_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from switchable import SwitchableBackend
SwitchableBackend.flush_interval = 3600  # only the exit flush can send them
from sheetcache import Cache
cache = Cache(SwitchableBackend(Path(sys.argv[1])), outbox=sys.argv[2])
for i in range(10):
    cache.get_or_call(f"q{i}", lambda p: "a")
"""


def test_interpreter_exit_flushes(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    import subprocess
    import sys

    db = tmp_path / "remote.db"
    out = subprocess.run(
        [sys.executable, "-c", _EXIT_CHILD, str(db), str(tmp_path / "o.db"), str(Path(__file__).parent)],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    store = SQLiteBackend(db)
    assert store.count() == 10
    store.close()


def test_hit_counts_reach_the_store_in_one_batch(db: str) -> None:
    with Cache(db) as cache:
        cache.get_or_call("q", lambda p: "a")
        for _ in range(5):
            cache.get_or_call("q", lambda p: "never")
        assert cache.flush(timeout=30)
        entry = cache.backend.get_many([cache.key("q")])[cache.key("q")]
        assert entry.hits == 5 and entry.last_hit_at is not None
        assert entry.duration is not None and entry.duration >= 0


# -- flags and TTL -------------------------------------------------------------------------


def test_refresh_and_store_flags(db: str) -> None:
    with Cache(db) as cache:
        assert cache.get_or_call("q", lambda p: "old") == "old"
        assert cache.get_or_call("q", lambda p: "new", refresh=True) == "new"
        assert cache.get_or_call("q", lambda p: "unused") == "new"
        assert cache.backend.count() == 1
        assert cache.get_or_call("other", lambda p: "not kept", store=False) == "not kept"
        assert cache.get_or_call("other", lambda p: "second", store=False) == "second"
        assert cache.backend.count() == 1
        assert cache.get("other") is None
        assert (
            cache.get_or_call("q", lambda p: "unused", store=False) == "new"
        )  # store=False still looks up


def test_ttl_expires_entries(db: str) -> None:
    with Cache(db, ttl=timedelta(hours=1)) as cache:
        cache.get_or_call("short", lambda p: "v1", ttl=0.05)
        cache.get_or_call("long", lambda p: "kept")
        entry = cache.backend.get_many([cache.key("long")])[cache.key("long")]
        assert entry.expires_at == pytest.approx(time.time() + 3600, abs=60)
        wait_until(lambda: cache.get("short") is None, 10, what="the entry to expire")
        assert cache.get_or_call("short", lambda p: "v2") == "v2"
        assert cache.get_or_call("long", lambda p: "x") == "kept"
        assert cache.prune() == 0  # v2 replaced the expired row; nothing else is expired


def test_expired_entries_are_misses_after_restart_and_prune_removes_them(db: str) -> None:
    with Cache(db) as cache:
        key = cache.set("q", "stale", ttl=60)
        cache.set("fresh", "ok")
        e = cache.backend.get_many([key])[key]
        e.expires_at = time.time() - 1
        cache.backend.put_many([e])
    with Cache(db) as cache:
        assert cache.get("q") is None
        assert cache.prune() == 1
        assert cache.backend.count() == 1
        old = cache.backend.get_many([cache.key("fresh")])[cache.key("fresh")]
        old.created_at -= 40 * 86400
        cache.backend.put_many([old])
        assert cache.prune(older_than=timedelta(days=30)) == 1


def test_rejected_and_undecodable_entries_are_misses(db: str) -> None:
    with Cache(db) as cache:
        k1 = cache.set("rejected", "wrong answer")
        k2 = cache.set("garbled", {"json": True})
        e1, e2 = (cache.backend.get_many([k])[k] for k in (k1, k2))
        e1.status = "rejected"
        e2.value = "{not json"
        cache.backend.put_many([e1, e2])
    with Cache(db) as cache:
        assert cache.get_or_call("rejected", lambda p: "fresh") == "fresh"
        assert cache.get_or_call("garbled", lambda p: {"json": "fresh"}) == {"json": "fresh"}
        assert cache.stats.misses == 2


def test_l1_is_bounded(db: str) -> None:
    with Cache(db, l1_size=3) as cache:
        for i in range(10):
            cache.set(f"q{i}", f"a{i}")
        assert len(cache._l1) == 3
        assert cache.get("q0") == "a0"  # from SQLite, then back in L1


# -- values --------------------------------------------------------------------------------


VALUES = [
    "plain text ✓",
    b"\x00\xffbinary",
    {"nested": {"list": [1, 2.5, None, True]}, "unicode": "中文"},
    [1, "two", 3.0],
    42,
    3.14,
    True,
    None,
    Answer(text="Paris", confidence=0.9, sources=["wiki"]),
    Shape("triangle", [Point(0, 0), Point(1, 0), Point(0, 1)]),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_round_trip_with_their_type(db: str, value: object) -> None:
    with Cache(db) as cache:
        assert cache.get_or_call("q", lambda p: value) == value
    llm = Counter()
    with Cache(db) as cache:  # cold L1: decoded from the store
        got = cache.get_or_call("q", llm)
        assert llm.calls == 0
        assert got == value and type(got) is type(value)


def test_returned_objects_are_not_shared_with_the_cache(db: str) -> None:
    with Cache(db) as cache:
        first = cache.get_or_call("q", lambda p: {"items": [1]})
        first["items"].append(2)
        second = cache.get_or_call("q", lambda p: {})
        second["items"].append(3)
        assert cache.get_or_call("q", lambda p: {}) == {"items": [1]}


def test_an_answer_that_cannot_be_stored_is_returned_with_one_warning(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Opaque:
        pass

    answer = Opaque()
    with Cache(db) as cache:
        with caplog.at_level("WARNING", logger="sheetcache"):
            assert cache.get_or_call("q", lambda p: answer) is answer
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "not stored" in warnings[0].getMessage()
        assert "Opaque" in warnings[0].getMessage()
        with pytest.raises(UnsupportedValueError) as info:  # set() documents the error
            cache.set("q", float("nan"))
        assert isinstance(info.value, TypeError)
        assert cache.backend.count() == 0
        assert cache.get_or_call("q", lambda p: "storable now") == "storable now"
        assert cache.backend.count() == 1


def test_a_lone_surrogate_answer_is_stored_and_served_exactly(db: str) -> None:
    truncated = "an emoji cut in half: \ud83d"
    with Cache(db) as cache:
        assert cache.get_or_call("q", lambda p: truncated) == truncated
        assert cache.stats.errors == 0
    with Cache(db) as cache:  # from the store, not the L1
        assert cache.get_or_call("q", lambda p: "called again") == truncated


# -- decorator -----------------------------------------------------------------------------


def test_cached_decorator_sync(db: str) -> None:
    calls = []
    with Cache(db) as cache:

        @cache.cached(model="gpt-4o", temperature=0)
        def ask(question: str, style: str = "short") -> str:
            calls.append(question)
            return f"{style}: {question}"

        assert ask("hi") == "short: hi"
        assert ask(question="hi") == "short: hi"
        assert ask("hi", "short") == "short: hi"
        assert ask("hi", style="long") == "long: hi"
        assert calls == ["hi", "hi"]
        assert ask.__name__ == "ask"


async def test_cached_decorator_async(db: str) -> None:
    calls = []
    with Cache(db) as cache:

        @cache.cached
        async def ask(question: str) -> dict[str, str]:
            calls.append(question)
            return {"answer": question[::-1]}

        assert await ask("abc") == {"answer": "cba"}
        assert await ask("abc") == {"answer": "cba"}
        assert calls == ["abc"]


def test_decorated_functions_with_equal_arguments_do_not_collide(db: str) -> None:
    with Cache(db) as cache:

        @cache.cached
        def one(x: int) -> str:
            return "one"

        @cache.cached
        def two(x: int) -> str:
            return "two"

        assert (one(1), two(1)) == ("one", "two")


def test_get_set_delete_and_key(db: str) -> None:
    with Cache(db, namespace="ns") as cache:
        key = cache.set([{"role": "user", "content": "hi"}], "hello", model="m")
        assert key == cache.key([{"role": "user", "content": "hi"}], model="m")
        assert cache.get([{"role": "user", "content": "hi"}], model="m") == "hello"
        stored = cache.backend.get_many([key])[key]
        assert stored.prompt == [{"content": "hi", "role": "user"}]
        assert stored.key_parts == {"model": "m"} and stored.namespace == "ns"
        assert cache.delete([{"role": "user", "content": "hi"}], model="m")
        assert cache.get([{"role": "user", "content": "hi"}], model="m") is None


def test_waiters_on_one_miss_get_their_own_copies(db: str) -> None:
    gate = threading.Event()
    llm = Counter({"items": [1]}, gate)
    results: list[dict[str, list[int]]] = []
    with Cache(db) as cache:
        threads = [
            threading.Thread(target=lambda: results.append(cache.get_or_call("p", llm)))
            for _ in range(5)
        ]
        for t in threads:
            t.start()
        wait_until(lambda: llm.calls == 1 and followers(cache) == 4, what="four followers")
        gate.set()
        for t in threads:
            t.join(30)
        for r in results:
            r["items"].append(99)  # every caller mutates its answer
        assert all(r == {"items": [1, 99]} for r in results)
        assert cache.get_or_call("p", llm) == {"items": [1]}


def test_a_fresh_answer_queued_over_a_rejected_entry_is_served(tmp_path: Path) -> None:
    backend = SwitchableBackend(tmp_path / "remote.db")
    with Cache(backend, outbox=tmp_path / "outbox.db", l1_size=0) as cache:
        key = cache.set("q", "wrong")
        assert cache.flush(timeout=30)
        rejected = backend.get_many([key])[key]
        rejected.status = "rejected"
        backend.put_many([rejected])
        backend.writes_down = True  # the fresh answer stays queued; the store says rejected
        llm = Counter("fresh")
        assert cache.get_or_call("q", llm) == "fresh"
        assert cache.get_or_call("q", llm) == "fresh"
        assert llm.calls == 1
        backend.writes_down = False
        assert cache.flush(timeout=30)
        assert backend.get_many([key])[key].value == "fresh"


def test_an_l1_hit_never_answers_a_nan_with_a_stored_null(db: str) -> None:
    # orjson writes NaN as null, so the L1's bytes for temperature=None and =NaN are equal:
    # the hit path must still refuse the NaN as the canonical key does.
    with Cache(db) as cache:
        assert cache.get_or_call("q", lambda p: "for None", temperature=None) == "for None"
        assert cache.get_or_call("q", lambda p: "unused", temperature=None) == "for None"
        with pytest.raises(TypeError, match="NaN"):
            cache.get_or_call("q", lambda p: "never", temperature=float("nan"))


def test_decode_failures_anywhere_are_logged_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    with Cache(f"sqlite:///{tmp_path}/l1.db") as cache:  # the L1's copy no longer decodes
        cache.get_or_call("q", lambda p: {"a": 1})
        (item,) = cache._l1.items.values()
        item.text = "{broken"
        with caplog.at_level("WARNING", logger="sheetcache"):  # an L1 miss: the store's is fine
            assert cache.get_or_call("q", lambda p: {"a": 2}) == {"a": 1}
        assert any("no longer decodes" in r.getMessage() for r in caplog.records)
        assert cache.stats.misses == 1  # only the first call
    backend = SwitchableBackend(tmp_path / "remote.db")
    backend.down = True
    outbox = tmp_path / "outbox.db"
    with Cache(backend, outbox=outbox, l1_size=0) as cache:  # a queued row no longer reads
        cache.get_or_call("q", lambda p: "queued")
        with sqlite3.connect(outbox) as conn:
            conn.execute("UPDATE outbox SET entry = ?", (b"{not json",))
        conn.close()
        caplog.clear()
        with caplog.at_level("WARNING", logger="sheetcache"):
            assert cache.get_or_call("q", lambda p: "fresh") == "fresh"
        assert any("unreadable" in r.getMessage() for r in caplog.records)
        cache.close(timeout=0.1)


async def test_a_cancelled_leader_does_not_cancel_its_followers(db: str) -> None:
    started = asyncio.Event()
    calls = 0

    async def slow(prompt: object) -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(3600)
        return "never"

    async def quick(prompt: object) -> str:
        nonlocal calls
        calls += 1
        return "the follower's own answer"

    with Cache(db) as cache:
        leader = asyncio.create_task(cache.aget_or_call("q", slow))
        await started.wait()
        follower = asyncio.create_task(cache.aget_or_call("q", quick))
        await await_until(lambda: followers(cache) == 1, what="the follower to join")
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        assert await follower == "the follower's own answer"
        assert calls == 2 and cache.get("q") == "the follower's own answer"


def test_an_l1_hit_on_chat_messages_never_answers_a_nan_with_a_stored_null(db: str) -> None:
    stored = [{"role": "user", "content": "hi", "weight": None}]
    asked = [{"role": "user", "content": "hi", "weight": float("nan")}]
    with Cache(db) as cache:
        assert cache.get_or_call(stored, lambda p: "for None") == "for None"
        with pytest.raises(TypeError, match="NaN"):
            cache.get_or_call(asked, lambda p: "never")


def test_set_replaces_the_answer_for_every_spelling_of_the_key() -> None:
    """Key parts in another dict order are the same key: a new answer reaches both."""
    cache = Cache("memory://")
    assert cache.get_or_call("q", lambda p: "old", model="m", temperature=0) == "old"
    cache.set("q", "new", temperature=0, model="m")
    assert cache.get_or_call("q", lambda p: "called", model="m", temperature=0) == "new"
    cache.get_or_call("q", lambda p: "newer", refresh=True, temperature=0, model="m")
    assert cache.get_or_call("q", lambda p: "called", model="m", temperature=0) == "newer"
