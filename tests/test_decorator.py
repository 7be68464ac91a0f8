"""``@cache.cached`` on real code: methods, pydantic-ai tools, edited functions, ignored
and secret arguments; and secrets absent from every store's bytes and from ``export``."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic_ai import Agent, RunContext
from pydantic_ai.models.test import TestModel
from redis_fixtures import (  # noqa: F401 - fixtures
    redis_client_fixture,
    redis_server_fixture,
    redis_url_fixture,
)
from sheets_fixtures import Sheet, emulator, sheet  # noqa: F401 - fixtures
from typer.testing import CliRunner

from sheetcache import Cache, ConfigError, _keys
from sheetcache.cli import app

SECRET = "sk-live-DO-NOT-STORE-7f3a9c"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cache.db'}"


# -- methods -------------------------------------------------------------------------------


def test_a_method_is_keyed_by_its_class_not_by_self(db: str) -> None:
    """Issue 10, failure 4: decorating a method raised TypeError (self can't be keyed)."""
    calls: list[str] = []
    with Cache(db) as cache:

        class Assistant:
            def __init__(self) -> None:
                self.client = object()  # unkeyable state on the instance

            @cache.cached(model="m")
            def ask(self, question: str) -> str:
                calls.append(question)
                return f"{type(self).__name__}: {question}"

        class Polite(Assistant):
            pass

        assert Assistant().ask("hi") == "Assistant: hi"
        assert Assistant().ask("hi") == "Assistant: hi"  # another instance, same class: hit
        assert Polite().ask("hi") == "Polite: hi"  # a subclass is another class: miss
        assert calls == ["hi", "hi"]
        (entry, _) = sorted(cache.entries(), key=lambda e: str(e.prompt))
        assert "self" not in entry.prompt["arguments"]
        assert entry.prompt["self"]["class"].endswith("Assistant")


def test_cache_key_hook_tells_instances_apart(db: str) -> None:
    with Cache(db) as cache:

        class Bot:
            def __init__(self, persona: str) -> None:
                self.persona = persona

            def __cache_key__(self) -> str:
                return self.persona

            @cache.cached
            def greet(self, name: str) -> str:
                return f"{self.persona} greets {name}"

        assert Bot("pirate").greet("ann") == "pirate greets ann"
        assert Bot("butler").greet("ann") == "butler greets ann"
        assert Bot("pirate").greet("ann") == "pirate greets ann"
        assert cache.stats.hits == 1


async def test_classmethods_and_async_methods(db: str) -> None:
    calls: list[str] = []
    with Cache(db) as cache:

        class Service:
            @classmethod
            @cache.cached
            def describe(cls, topic: str) -> str:
                calls.append(topic)
                return f"{cls.__name__} on {topic}"

            @cache.cached
            async def answer(self, q: str) -> str:
                calls.append(q)
                return q.upper()

        assert Service.describe("x") == Service.describe("x") == "Service on x"
        assert await Service().answer("q") == await Service().answer("q") == "Q"
        assert calls == ["x", "q"]


# -- pydantic-ai tools ---------------------------------------------------------------------


@pytest.fixture
def run_sync_loop() -> Iterator[None]:
    """Close the event loop ``Agent.run_sync`` leaves open (else a ResourceWarning lands on
    a later, unrelated test)."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = asyncio.get_event_loop_policy().get_event_loop()
    if not loop.is_running():
        loop.close()
    asyncio.set_event_loop(None)


@pytest.mark.usefixtures("run_sync_loop")
def test_a_tool_taking_run_context_is_cached_without_ctx(db: str) -> None:
    """Issue 10, failure 4: a tool taking RunContext crashed (ctx can't be keyed)."""
    looked_up: list[str] = []
    with Cache(db) as cache:
        agent = Agent(TestModel())

        @agent.tool
        @cache.cached
        def lookup(ctx: RunContext[None], city: str) -> str:
            looked_up.append(city)
            return f"sunny in {city}"

        first = agent.run_sync("weather?").output
        second = agent.run_sync("weather?").output
        assert first == second and "sunny in" in first
        assert len(looked_up) == 1
        (entry,) = cache.entries()
        assert set(entry.prompt["arguments"]) == {"city"}


# -- the function's source -----------------------------------------------------------------

TEMPLATE = """
from sheetcache import Cache

cache = Cache({url!r})


@cache.cached(source={source})
def summarize(text: str) -> str:
    prompt = {template!r} + text
    return "summary of: " + prompt
"""


def _load(tmp_path: Path, url: str, template: str, source: bool = True) -> Any:
    path = tmp_path / "prompts_mod.py"
    path.write_text(TEMPLATE.format(url=url, template=template, source=source))
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop("prompts_mod", None)
        importlib.invalidate_caches()
        return importlib.import_module("prompts_mod")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("prompts_mod", None)


def test_editing_the_function_is_a_miss(tmp_path: Path, db: str) -> None:
    """Issue 10, failure 4: editing the prompt inside the function kept the old answer."""
    old = _load(tmp_path, db, "Summarize briefly: ")
    assert old.summarize("doc") == "summary of: Summarize briefly: doc"
    old.cache.close()
    edited = _load(tmp_path, db, "Summarize in French: ")
    assert edited.summarize("doc") == "summary of: Summarize in French: doc"
    edited.cache.close()
    unchanged = _load(tmp_path, db, "Summarize in French: ")
    assert unchanged.summarize("doc") == "summary of: Summarize in French: doc"
    assert unchanged.cache.stats.hits == 1
    unchanged.cache.close()


def test_source_false_keeps_serving_across_edits(tmp_path: Path, db: str) -> None:
    first = _load(tmp_path, db, "A: ", source=False)
    assert first.summarize("doc") == "summary of: A: doc"
    first.cache.close()
    edited = _load(tmp_path, db, "B: ", source=False)
    assert edited.summarize("doc") == "summary of: A: doc"  # documented: you asked for it
    edited.cache.close()


def test_a_function_without_source_still_caches_and_edits_still_miss(db: str) -> None:
    with Cache(db) as cache:
        namespace: dict[str, Any] = {}
        exec("def f(x):\n    return 'v1:' + x\n", namespace)  # no file: no source
        f1 = cache.cached(namespace["f"])
        assert f1("a") == f1("a") == "v1:a" and cache.stats.hits == 1
        exec("def f(x):\n    return 'v2:' + x\n", namespace)
        assert cache.cached(namespace["f"])("a") == "v2:a"


# -- ignore and include --------------------------------------------------------------------


def test_ignore_leaves_any_argument_out(db: str) -> None:
    with Cache(db) as cache:

        @cache.cached(ignore=("client", "log"))
        def ask(client: object, q: str, log: Any = None) -> str:
            return f"answer to {q}"

        assert ask(object(), "q") == ask(object(), "q", log=print)
        assert cache.stats.hits == 1
        with pytest.raises(ConfigError, match="no argument 'clinet'"):
            cache.cached(ignore=("clinet",))(lambda client, q: q)


def test_secret_arguments_are_left_out_unless_included(
    db: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, failure 3: a decorated function's api_key went into the key and the row,
    and rotating the key made every call a miss."""
    # Warnings are once per name per process: start from a process that warned of nothing.
    monkeypatch.setattr(_keys, "_warned", set())
    monkeypatch.setattr(_keys, "_secret_memo", {})
    caplog.set_level(logging.WARNING, "sheetcache")
    calls: list[str] = []
    with Cache(db) as cache:

        @cache.cached(model="m")
        def ask(q: str, api_key: str, max_tokens: int = 5) -> str:
            calls.append(api_key)
            return f"answer to {q}"

        assert ask("q", api_key=SECRET) == ask("q", api_key="rotated") == "answer to q"
        assert calls == [SECRET]
        (entry,) = cache.entries()
        assert entry.prompt["arguments"] == {"q": "q", "max_tokens": 5}

        @cache.cached(include=("token",))
        def by_token(token: str) -> str:
            return token

        assert (by_token("a"), by_token("b")) == ("a", "b")
    assert [
        r.getMessage().count("'api_key'") for r in caplog.records if "api_key" in r.getMessage()
    ] == [2]
    assert SECRET not in caplog.text


# -- secrets never reach a store -----------------------------------------------------------


def _store_secrets(url: str) -> None:
    with Cache(url) as cache:

        @cache.cached(model="m")
        def ask(q: str, api_key: str, **options: Any) -> str:
            return "fine"

        ask("q", api_key=SECRET, password=SECRET)
        cache.get_or_call("p", lambda p: "ok", model="m", authorization=f"Bearer {SECRET}")
        assert cache.flush(timeout=60)
        assert len(list(cache.entries())) == 2


def _export(url: str) -> str:
    result = CliRunner().invoke(app, ["export", "--url", url])
    assert result.exit_code == 0, result.output
    assert '"fine"' in result.output
    return result.output


def test_secrets_are_absent_from_the_sqlite_file_and_export(tmp_path: Path, db: str) -> None:
    _store_secrets(db)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("cache.db"))
    assert b"fine" in stored and SECRET.encode() not in stored
    assert SECRET not in _export(db)


def test_secrets_are_absent_from_redis(redis_url: str, redis_client: redis.Redis) -> None:
    _store_secrets(redis_url)
    dumped = b"".join(redis_client.dump(k) or b"" for k in redis_client.scan_iter())
    assert b"fine" in dumped and SECRET.encode() not in dumped
    # The durable outbox on the way to Redis holds no secret either.
    home = Path(os.environ["SHEETCACHE_DIR"])
    outbox = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert outbox and SECRET.encode() not in outbox
    assert SECRET not in _export(redis_url)


def test_secrets_are_absent_from_the_sheet(sheet: Sheet, tmp_path: Path) -> None:  # noqa: F811
    _store_secrets(sheet.url)
    state = tmp_path / "emulator-state.json"
    sheet.emu.save_state(state)  # every tab, cell, note and metadata the emulator holds
    stored = state.read_bytes()
    assert b"fine" in stored and SECRET.encode() not in stored
    assert SECRET not in _export(sheet.url)


def test_samples_pass_through_the_decorator(db: str) -> None:
    drawn: list[int] = []
    with Cache(db) as cache:

        @cache.cached(samples=2, temperature=0.9)
        def draw(q: str) -> str:
            drawn.append(1)
            return f"sample {len(drawn)}"

        first = [draw("q"), draw("q")]
        assert first == ["sample 1", "sample 2"]
        assert sorted([draw("q"), draw("q")]) == first and len(drawn) == 2


def test_entries_from_before_format_2_are_found_with_source_false(db: str) -> None:
    """The upgrade story for decorated functions: same prompt shape, found by the old key."""
    from sheetcache import Entry
    from sheetcache._keys import legacy_key

    def ask(q: str, style: str = "short") -> str:
        return "called"

    name = f"{ask.__module__}.{ask.__qualname__}"
    old_prompt = {"function": name, "arguments": {"q": "hi", "style": "short"}}
    old_key = legacy_key(old_prompt, "default", {"model": "m"})
    assert old_key is not None
    with Cache(db) as cache:
        cache.backend.put_many([Entry(old_key, "stored before", prompt=old_prompt)])
        assert cache.cached(model="m", source=False)(ask)("hi") == "stored before"
        assert cache.cached(model="m")(ask)("hi") == "called"  # the source hash is new
