"""Controls for CI and debugging: modes, scoped overrides, lookup, samples, Answer metadata."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from polling import wait_until

from sheetcache import (
    Answer,
    Cache,
    CacheMissError,
    ConfigError,
    MemoryBackend,
    SheetcacheError,
)
from sheetcache._savings import entry_savings

USAGE = {"model": "gpt-4o", "provider": "openai", "input_tokens": 120, "output_tokens": 30}


def never(prompt: object) -> str:
    raise AssertionError("replay must not call the function")


async def anever(prompt: object) -> str:
    raise AssertionError("replay must not call the function")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cache.db"


# -- modes ----------------------------------------------------------------------------------


def test_replay_serves_hits_and_raises_before_any_call(db: str) -> None:
    with Cache(db) as recorder:
        recorder.get_or_call("known", lambda p: "recorded", model="m")
    with Cache(db, mode="replay") as cache:
        assert cache.get_or_call("known", never, model="m") == "recorded"
        with pytest.raises(CacheMissError) as info:
            cache.get_or_call("known", never, model="other")
        assert isinstance(info.value, SheetcacheError)
        assert info.value.key == cache.key("known", model="other")
        assert "replay" in str(info.value) and info.value.key[:12] in str(info.value)
        with pytest.raises(CacheMissError):
            cache.get("unknown")
        assert cache.get("known", model="m") == "recorded"
        assert cache.backend.count() == 1  # nothing was stored


def test_replay_miss_explains_what_differs(db: str) -> None:
    with Cache(db) as cache:
        cache.get_or_call("Hi", lambda p: "Hello", model="m", temperature=0.2)
        with cache.override(mode="replay"), pytest.raises(CacheMissError) as info:
            cache.get_or_call("Hi", never, model="m", temperature=0.7)
        assert "parts.temperature: 0.2 → 0.7" in str(info.value)
        explanation = cache.explain("Hi", model="m", temperature=0.7)
        assert not explanation.hit and explanation.key == info.value.key
        assert explanation.diff == ["parts.temperature: 0.2 → 0.7"]
        assert str(explanation) in str(info.value)
        assert cache.explain("Hi", model="m", temperature=0.2).hit


async def test_replay_raises_in_async_calls(db: str) -> None:
    with Cache(db, mode="replay") as cache, pytest.raises(CacheMissError):
        await cache.aget_or_call("unknown", anever)


def test_replay_applies_to_the_decorator(db: str) -> None:
    with Cache(db) as cache:

        @cache.cached(model="m")
        def ask(question: str) -> str:
            return question.upper()

        assert ask("recorded") == "RECORDED"
        with cache.override(mode="replay"):
            assert ask("recorded") == "RECORDED"
            with pytest.raises(CacheMissError):
                ask("not recorded")


def test_refresh_mode_always_calls_and_stores(db: str) -> None:
    with Cache(db, mode="refresh") as cache:
        assert cache.get_or_call("q", lambda p: "v1") == "v1"
        assert cache.get_or_call("q", lambda p: "v2") == "v2"
        assert cache.get("q") is None  # refresh serves nothing stored
    with Cache(db) as cache:
        assert cache.get_or_call("q", never) == "v2"
        assert cache.backend.count() == 1


def test_off_mode_bypasses_lookup_and_store(db: str) -> None:
    with Cache(db) as cache:
        cache.set("q", "stored")
        with cache.override(mode="off"):
            assert cache.get_or_call("q", lambda p: "live") == "live"
            assert cache.get_or_call("new", lambda p: Answer("live", {"usage": USAGE})) == "live"
            assert cache.get("q") is None
            cache.set("ignored", "x")
            with pytest.raises(TypeError):  # bad key parts still fail early
                cache.get_or_call("q", lambda p: "x", part=object())
        assert cache.backend.count() == 1
        assert cache.get_or_call("q", never) == "stored"
        assert cache.stats.hits == 1 and cache.stats.misses == 0


def test_mode_from_the_environment(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEETCACHE_MODE", "replay")
    with Cache(db) as cache:
        assert cache.mode == "replay"
        with pytest.raises(CacheMissError):
            cache.get_or_call("q", never)
    with Cache(db, mode="read-write") as cache:  # an explicit mode beats the environment
        assert cache.get_or_call("q", lambda p: "a") == "a"
    monkeypatch.setenv("SHEETCACHE_MODE", "replayy")
    with pytest.raises(ConfigError, match=r"SHEETCACHE_MODE.*'read-write', 'replay'"):
        Cache(db)


def test_bad_modes_are_refused_naming_the_valid_ones(db: str) -> None:
    with pytest.raises(ConfigError, match="'read-write', 'replay', 'refresh', 'off'"):
        Cache(db, mode="readonly")
    with Cache(db) as cache, pytest.raises(ConfigError, match="'off'"):
        cache.override(mode="bypass").__enter__()


def test_refresh_flag_and_mode_agree(db: str) -> None:
    with Cache(db) as cache:
        cache.set("q", "old")
        assert cache.get_or_call("q", lambda p: "new", refresh=True) == "new"
        with cache.override(mode="refresh"):
            assert cache.get_or_call("q", lambda p: "newer") == "newer"
        assert cache.get_or_call("q", never) == "newer"


# -- override scoping -----------------------------------------------------------------------


def test_override_is_scoped_to_its_block_and_its_cache(db: str, tmp_path: Path) -> None:
    with Cache(db) as cache, Cache(f"sqlite:///{tmp_path}/other.db") as other:
        cache.set("q", "stored")
        other.set("q", "stored elsewhere")
        with cache.override(mode="refresh"):
            assert cache.get_or_call("q", lambda p: "fresh") == "fresh"
            assert other.get_or_call("q", never) == "stored elsewhere"  # another cache
            with cache.override(mode="replay"):  # nested: innermost wins, then restored
                assert cache.get_or_call("q", never) == "fresh"
            assert cache.get_or_call("q", lambda p: "fresher") == "fresher"
        assert cache.get_or_call("q", never) == "fresher"


def test_override_does_not_leak_into_other_threads(db: str) -> None:
    with Cache(db) as cache:
        inside = threading.Event()
        done = threading.Event()
        seen: list[str] = []

        def other_thread() -> None:
            assert inside.wait(30)
            # The main thread is inside a replay block right now; this thread is not.
            seen.append(cache.get_or_call("thread prompt", lambda p: "called"))
            done.set()

        t = threading.Thread(target=other_thread)
        t.start()
        with cache.override(mode="replay"):
            inside.set()
            assert done.wait(30)
            with pytest.raises(CacheMissError):
                cache.get_or_call("main prompt", never)
            # A thread started here does not inherit the block...
            plain: list[object] = []
            child = threading.Thread(target=lambda: plain.append(cache.get_or_call("c", str)))
            child.start()
            child.join(30)
            # ...unless its target runs in a copy of this context.
            copied: list[BaseException] = []
            ctx = contextvars.copy_context()

            def replaying() -> None:
                try:
                    cache.get_or_call("d", never)
                except CacheMissError as exc:
                    copied.append(exc)

            child = threading.Thread(target=ctx.run, args=(replaying,))
            child.start()
            child.join(30)
        t.join(30)
        assert seen == ["called"] and plain == ["c"] and len(copied) == 1


async def test_override_follows_tasks_created_inside_only(db: str) -> None:
    with Cache(db) as cache:
        entered = asyncio.Event()
        leave = asyncio.Event()

        async def outside() -> str:
            await entered.wait()
            return await cache.aget_or_call("outside", _async_answer("called"))

        async def scoped() -> None:
            with cache.override(mode="replay"):
                child = asyncio.create_task(cache.aget_or_call("inside", anever))
                entered.set()
                await leave.wait()
                with pytest.raises(CacheMissError):
                    await child

        outer = asyncio.create_task(outside())
        inner = asyncio.create_task(scoped())
        assert await outer == "called"
        leave.set()
        await inner


def _async_answer(value: str):  # type: ignore[no-untyped-def]
    async def call(prompt: object) -> str:
        return value

    return call


# -- lookup ---------------------------------------------------------------------------------


def test_lookup_reports_hit_value_key_and_metadata(db: str) -> None:
    with Cache(db) as cache:
        miss = cache.lookup("q", model="m")
        assert (miss.hit, miss.value, miss.entry) == (False, None, None)
        assert miss.key == cache.key("q", model="m") and not miss
        cache.get_or_call("q", lambda p: Answer(None, {"usage": USAGE}), model="m")
        found = cache.lookup("q", model="m")
        assert found.hit and found.value is None  # a cached None, told apart from a miss
        assert found.key == miss.key and found.entry is not None
        assert found.entry.key == found.key


def test_lookup_metadata_round_trips(tmp_path: Path) -> None:
    with Cache("memory://") as cache:
        cache.set("q", "a", metadata={"usage": USAGE, "note": "from a script"})
        found = cache.lookup("q")
        assert found.metadata == {"usage": USAGE, "note": "from a script"}


# -- Answer and savings ---------------------------------------------------------------------


def test_answer_metadata_is_stored_and_the_plain_value_returned() -> None:
    with Cache("memory://") as cache:
        assert cache.get_or_call("q", lambda p: Answer({"n": 1}, {"usage": USAGE})) == {"n": 1}
        assert cache.get_or_call("q", never) == {"n": 1}
        entry = cache.backend.get_many([cache.key("q")])[cache.key("q")]
        assert entry.value == '{"n":1}' and entry.metadata == {"usage": USAGE}


async def test_answer_in_async_calls_and_for_waiters() -> None:
    release = asyncio.Event()

    async def call(prompt: object) -> Answer[str]:
        await release.wait()
        return Answer("shared", {"usage": USAGE})

    with Cache("memory://") as cache:
        tasks = [asyncio.create_task(cache.aget_or_call("q", call)) for _ in range(5)]
        await asyncio.sleep(0)
        release.set()
        assert await asyncio.gather(*tasks) == ["shared"] * 5
        assert cache.lookup("q").metadata["usage"] == USAGE


def test_hits_add_up_saved_tokens_and_count_unpriced_hits() -> None:
    with Cache("memory://") as cache:
        cache.get_or_call("with usage", lambda p: Answer("a", {"usage": USAGE}))
        cache.get_or_call("without usage", lambda p: "b")
        for _ in range(3):
            cache.get_or_call("with usage", never)
        cache.get_or_call("without usage", never)
        stats = cache.stats
        tokens, usd = entry_savings({"usage": USAGE})  # the price, where one is known
        assert stats.hits == 4 and stats.saved_tokens == 3 * 150 == 3 * tokens
        assert stats.saved_usd == pytest.approx(3 * (usd or 0.0))
        # A hit with no usage is never priced; one with usage is if its model's price is known.
        assert stats.unpriced_hits == 1 + (3 if usd is None else 0)


def test_cold_hits_count_savings_too(db: str) -> None:
    with Cache("memory://", l1_size=0) as cache:
        cache.set("q", "a", metadata={"usage": USAGE})
        cache.get_or_call("q", never)
        assert cache.stats.saved_tokens == 150


# -- samples --------------------------------------------------------------------------------


class Sampler:
    """A temperature > 0 model: a different answer on every call."""

    def __init__(self, prefix: str = "sample") -> None:
        self.prefix = prefix
        self.calls = 0

    def __call__(self, prompt: object) -> str:
        self.calls += 1
        return f"{self.prefix} {self.calls}"


def test_samples_fill_then_rotate(db: str) -> None:
    llm = Sampler()
    with Cache(db) as cache:
        first = [cache.get_or_call("q", llm, samples=3, temperature=0.9) for _ in range(3)]
        assert first == ["sample 1", "sample 2", "sample 3"] and llm.calls == 3
        served = [cache.get_or_call("q", llm, samples=3, temperature=0.9) for _ in range(6)]
        assert llm.calls == 3
        assert sorted(served) == sorted(first * 2)
        assert len(set(served[:3])) == 3 == len(set(served[3:]))  # a full turn before a repeat
        rows = list(cache.entries())
        assert len(rows) == 3  # each sample is its own reviewable row
        assert sorted(r.key_parts.get("sheetcache.sample", 0) for r in rows) == [0, 1, 2]
        # samples=1 (the default) is the plain key: the first sample.
        assert cache.get_or_call("q", never, temperature=0.9) == "sample 1"


def test_samples_with_replay_and_bad_counts(db: str) -> None:
    llm = Sampler()
    with Cache(db) as cache:
        cache.get_or_call("q", llm, samples=3)
        with cache.override(mode="replay"):
            # Fewer than 3 stored: replay serves what exists, never calls.
            assert cache.get_or_call("q", never, samples=3) == "sample 1"
            with pytest.raises(CacheMissError):
                cache.get_or_call("other", never, samples=3)
        for bad in (0, -1, 1.5):
            with pytest.raises(ConfigError, match="samples"):
                cache.get_or_call("q", llm, samples=bad)


async def test_samples_async(db: str) -> None:
    calls = 0

    async def llm(prompt: object) -> str:
        nonlocal calls
        calls += 1
        return f"a{calls}"

    with Cache(db) as cache:
        got = [await cache.aget_or_call("q", llm, samples=2) for _ in range(4)]
        assert got[:2] == ["a1", "a2"] and sorted(got[2:]) == ["a1", "a2"] and calls == 2


_SAMPLES_CHILD = """
import sys
from sheetcache import Cache
url, n, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
count = 0
def llm(prompt):
    global count
    count += 1
    return f"answer from pid-{count}"
with Cache(url) as cache:
    got = [cache.get_or_call("q", llm, samples=n, temperature=1.0) for _ in range(calls)]
print(count, "|".join(got))
"""


def test_samples_rotate_across_processes(db: str, subprocess_env: dict[str, str]) -> None:
    def child(calls: int) -> tuple[int, list[str]]:
        out = subprocess.run(
            [sys.executable, "-c", _SAMPLES_CHILD, db, "3", str(calls)],
            env=subprocess_env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        made, served = out.stdout.strip().split(" ", 1)
        return int(made), served.split("|")

    made, filled = child(3)
    assert made == 3 and len(set(filled)) == 3
    for _ in range(3):  # each process serves one answer: together they rotate
        made, served = child(1)
        assert made == 0
        filled.remove(served[0])
    assert filled == []
    made, served = child(3)
    assert made == 0 and len(set(served)) == 3


# -- locks shared by caches -----------------------------------------------------------------


def test_two_caches_on_one_backend_share_single_flight() -> None:
    backend = MemoryBackend()
    gate = threading.Event()
    calls: list[str] = []

    def slow(prompt: object) -> str:
        calls.append("called")
        assert gate.wait(30)
        return "once"

    first, second = Cache(backend), Cache(backend)
    results: list[str] = []
    t = threading.Thread(target=lambda: results.append(first.get_or_call("q", slow)))
    t.start()
    wait_until(lambda: calls, what="the first cache to call")
    u = threading.Thread(target=lambda: results.append(second.get_or_call("q", slow)))
    u.start()
    gate.set()
    t.join(30)
    u.join(30)
    assert results == ["once", "once"] and calls == ["called"]
    first.close()


# -- entries stored under key format 1 ------------------------------------------------------


def test_a_store_written_with_format_1_keys_still_hits_and_is_rekeyed(db: str) -> None:
    from sheetcache import SQLiteBackend
    from sheetcache._keys import legacy_key
    from sheetcache.backends.base import Entry

    prompt = [{"role": "user", "content": "What is 2+2?"}]
    parts = {"model": "gpt-4o", "temperature": 0}
    old_key = legacy_key(prompt, "default", parts)
    assert old_key is not None
    with SQLiteBackend(db.removeprefix("sqlite://")) as store:  # as the previous release wrote it
        store.put_many([Entry(old_key, "4", "str", "default", prompt, parts, 1_700_000_000.0,
                              duration=1.5)])  # fmt: skip
    with Cache(db) as cache:
        assert cache.key(prompt, **parts) != old_key
        assert cache.get_or_call(prompt, never, **parts) == "4"
        assert cache.stats.hits == 1 and cache.stats.saved_seconds == 1.5
        rekeyed = cache.backend.get_many([cache.key(prompt, **parts)])
        assert rekeyed[cache.key(prompt, **parts)].value == "4"
    with Cache(db, legacy_keys=False) as cache:  # found under the current key from now on
        assert cache.get_or_call(prompt, never, model="gpt-4o", temperature=0.0) == "4"
    with Cache(db, legacy_keys=False) as cache:  # and without the re-key it would miss
        assert cache.get_or_call(prompt, lambda p: "other", model="gpt-4o-mini") == "other"


def test_legacy_lookups_stop_after_a_run_of_misses_unless_asked_to_keep_on(db: str) -> None:
    from sheetcache import SQLiteBackend
    from sheetcache._keys import legacy_key
    from sheetcache._store import LEGACY_GIVE_UP
    from sheetcache.backends.base import Entry

    with SQLiteBackend(db.removeprefix("sqlite://")) as store:
        store.put_many([Entry(legacy_key("old", "default", {}) or "", "from format 1")])
    with Cache(db, legacy_keys=False) as cache:
        assert cache.get_or_call("old", lambda p: "called", store=False) == "called"
    # The last run serves the old entry and re-keys it, so it comes last.
    for legacy_keys, expected in ((None, "called"), (True, "from format 1")):
        with Cache(db, legacy_keys=legacy_keys, l1_size=0) as cache:
            for i in range(LEGACY_GIVE_UP):
                cache.get_or_call(f"new {i}", lambda p: "new", store=False)
            assert cache.get_or_call("old", lambda p: "called", store=False) == expected


def test_legacy_lookups_never_serve_a_rejected_or_expired_entry(db: str) -> None:
    from sheetcache import SQLiteBackend
    from sheetcache._keys import legacy_key
    from sheetcache.backends.base import Entry

    with SQLiteBackend(db.removeprefix("sqlite://")) as store:
        store.put_many([
            Entry(legacy_key("rejected", "default", {}) or "", "bad", status="rejected"),
            Entry(legacy_key("expired", "default", {}) or "", "old", expires_at=1.0),
        ])  # fmt: skip
    with Cache(db) as cache:
        assert cache.get_or_call("rejected", lambda p: "fresh") == "fresh"
        assert cache.get_or_call("expired", lambda p: "fresh") == "fresh"


# -- the README's examples run as written -------------------------------------------------


def test_the_readme_control_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Control for CI and debugging", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


# -- one protocol: the sync and async shells behave alike ---------------------------------


@pytest.mark.parametrize("shell", ["sync", "async"])
def test_both_shells_wait_for_another_owners_lock_then_warn_and_call(
    shell: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = MemoryBackend()
    cache = Cache(backend, lock_timeout=0.3)
    key = cache.key("q")
    assert backend.try_lock(key, 60, "another process") is True

    async def acall(prompt: object) -> str:
        return "computed anyway"

    with caplog.at_level("WARNING", logger="sheetcache"):
        if shell == "sync":
            got = cache.get_or_call("q", lambda p: "computed anyway")
        else:
            got = asyncio.run(cache.aget_or_call("q", acall))
    assert got == "computed anyway"
    assert any("waited 0.3s for another process" in r.getMessage() for r in caplog.records)
    backend.unlock(key, "another process")
    cache.close()


@pytest.mark.parametrize("shell", ["sync", "async"])
def test_both_shells_serve_what_the_lock_holder_stored(shell: str) -> None:
    class CountingBackend(MemoryBackend):
        tries = 0

        def try_lock(self, key: str, ttl: float, owner: str) -> bool:
            self.tries += 1
            return super().try_lock(key, ttl, owner)

    backend = CountingBackend()
    holder, waiter = Cache(backend), Cache(backend, lock_timeout=30)
    key = waiter.key("q")
    assert backend.try_lock(key, 60, "holder") is True
    results: list[str] = []

    def wait() -> None:
        if shell == "sync":
            results.append(waiter.get_or_call("q", never))
        else:
            results.append(asyncio.run(waiter.aget_or_call("q", anever)))

    t = threading.Thread(target=wait)
    t.start()
    wait_until(lambda: backend.tries >= 3, what="the waiter to poll the lock")
    holder.set("q", "from the holder")
    backend.unlock(key, "holder")
    t.join(30)
    assert results == ["from the holder"]
    holder.close()
    waiter.close()


def test_refresh_mode_replaces_samples_in_turn(db: str) -> None:
    llm = Sampler("first")
    with Cache(db) as cache:
        assert [cache.get_or_call("q", llm, samples=2) for _ in range(2)] == ["first 1", "first 2"]
        fresh = Sampler("fresh")
        with cache.override(mode="refresh"):
            got = [cache.get_or_call("q", fresh, samples=2) for _ in range(2)]
        assert got == ["fresh 1", "fresh 2"] and cache.backend.count() == 2
        assert {cache.get_or_call("q", never, samples=2) for _ in range(2)} == set(got)
