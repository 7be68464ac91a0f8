"""LangChainCache: LangChain's own standard cache suites on memory, SQLite and the Sheets
emulator, then what a LangChain user notices (keys, equality, readability, review, usage)."""

# ruff: noqa: F811  (the fixtures imported from sheets_fixtures are used as parameters)

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from langchain_core.caches import BaseCache
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite
from sheets_fixtures import Sheet, emulator, sheet  # noqa: F401

from sheetcache import Cache, CacheMissError
from sheetcache.langchain import LangChainCache, key_parts_of, prompt_of

STORES = ["memory", "sqlite", "sheets"]


def _open(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Cache:
    if kind == "memory":
        return Cache("memory://")
    if kind == "sqlite":
        return Cache(f"sqlite:///{tmp_path / 'lc.db'}")
    sheet: Sheet = request.getfixturevalue("sheet")
    return Cache(sheet.url)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cache]:
    cache = _open(request.param, tmp_path, request)
    yield cache
    cache.close()


class TestSyncStandardSuite(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, store: Cache) -> BaseCache:
        return LangChainCache(store)


class TestAsyncStandardSuite(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, store: Cache) -> AsyncIterator[BaseCache]:
        yield LangChainCache(store)


# -- what users notice --------------------------------------------------------------------------


class CountingChat(GenericFakeChatModel):
    """A chat model that answers from a list and counts its real calls."""

    calls: int = 0

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super()._generate(*args, **kwargs)


def chat(cache: LangChainCache, *answers: AIMessage, **settings: Any) -> CountingChat:
    return CountingChat(messages=iter(answers), cache=cache, **settings)


@pytest.fixture
def sqlite_cache(tmp_path: Path) -> Iterator[Cache]:
    with Cache(f"sqlite:///{tmp_path / 'lc.db'}") as c:
        yield c


def test_a_chat_model_hits_on_the_second_call(sqlite_cache: Cache) -> None:
    model = chat(LangChainCache(sqlite_cache), AIMessage("4"), AIMessage("five"))
    first = model.invoke([HumanMessage("What is 2+2?")])
    again = model.invoke([HumanMessage("What is 2+2?")])
    assert (first.content, again.content, model.calls) == ("4", "4", 1)
    model.invoke([HumanMessage("What is 2+3?")])
    assert model.calls == 2


def test_tool_calls_and_usage_come_back_equal(sqlite_cache: Cache) -> None:
    lc = LangChainCache(sqlite_cache)
    message = AIMessage(
        content="",
        tool_calls=[{"name": "add", "args": {"a": 2, "b": 2}, "id": "call_1"}],
        usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        response_metadata={"model_name": "gpt-4o", "finish_reason": "tool_calls"},
    )
    generations = [ChatGeneration(message=message, generation_info={"finish_reason": "tool_calls"})]
    lc.update("p", "llm", generations)
    sqlite_cache._l1.clear()
    assert lc.lookup("p", "llm") == generations


def test_llm_string_is_parsed_and_dict_order_does_not_matter() -> None:
    base = '{"id": ["langchain", "chat_models", "openai", "ChatOpenAI"], "kwargs": {"model_name": "gpt-4o", "temperature": 0.0}, "lc": 1, "type": "constructor"}'
    a = key_parts_of(
        base + "---[('response_format', {'type': 'json', 'strict': True}), ('stop', None)]"
    )
    b = key_parts_of(
        base + "---[('response_format', {'strict': True, 'type': 'json'}), ('stop', None)]"
    )
    assert a == b
    assert a["model"] == "gpt-4o"
    assert a["llm"]["kwargs"]["temperature"] == 0.0
    with Cache("memory://") as cache:
        assert cache.key("p", **a) == cache.key("p", **b)
        assert cache.key("p", **a) != cache.key(
            "p", **key_parts_of(base.replace("0.0", "1.0") + "---[]")
        )


def test_unparsable_llm_string_is_kept_whole() -> None:
    assert key_parts_of("Sample LLM string configuration.") == {
        "llm_string": "Sample LLM string configuration.", "integration": "langchain-v1",
    }  # fmt: skip


def test_settings_change_is_a_miss(sqlite_cache: Cache) -> None:
    lc = LangChainCache(sqlite_cache)
    cold = chat(lc, AIMessage("a"), AIMessage("b"))
    cold.invoke("hi")
    other = chat(lc, AIMessage("c"))
    other.invoke("hi", stop=["\n"])
    assert other.calls == 1


def test_store_is_readable(sqlite_cache: Cache) -> None:
    model = chat(LangChainCache(sqlite_cache), AIMessage("Paris."))
    model.invoke([SystemMessage("Be brief."), HumanMessage("Capital of France?")])
    (entry,) = sqlite_cache.entries()
    assert entry.prompt == [
        {"role": "system", "content": "Be brief."},
        {"role": "human", "content": "Capital of France?"},
    ]
    assert entry.value.startswith("Paris.\n\n--- sheetcache: LangChain generations v1.")
    assert "params" in entry.key_parts


def test_reviewer_edit_and_rejection_are_honoured(sqlite_cache: Cache) -> None:
    lc = LangChainCache(sqlite_cache)
    model = chat(lc, AIMessage("Lyon."), AIMessage("Paris."))
    question = [HumanMessage("Capital of France?")]
    model.invoke(question)
    (entry,) = sqlite_cache.entries()
    entry.value = "Paris, of course." + entry.value[entry.value.index("\n\n--- sheetcache") :]
    sqlite_cache.backend.put_many([entry])
    sqlite_cache._l1.clear()
    assert model.invoke(question).content == "Paris, of course."
    entry.status = "rejected"
    sqlite_cache.backend.put_many([entry])
    sqlite_cache._l1.clear()
    assert model.invoke(question).content == "Paris."
    assert model.calls == 2


def test_reviewer_edit_in_the_sheet(sheet: Sheet) -> None:
    with Cache(sheet.url) as cache:
        lc = LangChainCache(cache)
        lc.update("q", "llm", [Generation(text="old answer")])
        cache.flush()
    ws = sheet.reviewer()
    row = sheet.rows()[0]
    column = list(sheet.rows()[0]).index("response") + 1
    ws.update_cell(2, column, row["response"].replace("old answer", "new answer", 1))
    with Cache(sheet.url) as cache:
        assert LangChainCache(cache).lookup("q", "llm") == [Generation(text="new answer")]


def test_hits_save_genai_prices_dollars() -> None:
    with Cache("memory://") as cache:
        lc = LangChainCache(cache)
        usage = {"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200}
        message = AIMessage("hi", usage_metadata=usage, response_metadata={"model_name": "gpt-4o"})
        lc.update("p", "llm", [ChatGeneration(message=message)])
        lc.lookup("p", "llm")
        lc.lookup("p", "llm")
        one = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=1000, output_tokens=200), "gpt-4o"
        ).total_price
        assert cache.stats.saved_tokens == 2400
        assert cache.stats.saved_usd == pytest.approx(2 * float(one))


def test_replay_mode_raises_instead_of_calling(sqlite_cache: Cache) -> None:
    model = chat(LangChainCache(sqlite_cache), AIMessage("x"))
    with sqlite_cache.override(mode="replay"), pytest.raises(CacheMissError):
        model.invoke("never recorded")
    assert model.calls == 0


async def test_async_chat_model_hits(sqlite_cache: Cache) -> None:
    model = chat(LangChainCache(sqlite_cache), AIMessage("4"), AIMessage("five"))
    first = await model.ainvoke("2+2?")
    again = await model.ainvoke("2+2?")
    assert (first.content, again.content, model.calls) == ("4", "4", 1)


def test_clear_leaves_other_entries(sqlite_cache: Cache) -> None:
    sqlite_cache.set("plain", "kept")
    lc = LangChainCache(sqlite_cache)
    lc.update("p", "llm", [Generation(text="gone")])
    lc.clear()
    assert lc.lookup("p", "llm") is None
    assert sqlite_cache.get("plain") == "kept"


def test_prompt_of_plain_text() -> None:
    assert prompt_of("Tell me a joke") == "Tell me a joke"
    assert prompt_of("[{not json") == "[{not json"


def test_global_llm_cache(sqlite_cache: Cache) -> None:
    from langchain_core.globals import get_llm_cache, set_llm_cache

    previous = get_llm_cache()
    set_llm_cache(LangChainCache(sqlite_cache))
    try:
        model = CountingChat(messages=iter([AIMessage("4"), AIMessage("five")]))
        assert [model.invoke("2+2?").content for _ in range(2)] == ["4", "4"]
        assert model.calls == 1
    finally:
        set_llm_cache(previous)


def test_secret_named_call_arguments_are_not_keyed() -> None:
    base = '{"id": ["x", "ChatX"], "kwargs": {"model": "m"}, "lc": 1, "type": "constructor"}'
    parts = key_parts_of(base + "---[('api_key', 'sk-live-123'), ('stop', None)]")
    assert parts["params"] == {"stop": None}
    assert "sk-live-123" not in repr(parts)


def test_reviewer_edit_of_tool_call_arguments(sqlite_cache: Cache) -> None:
    lc = LangChainCache(sqlite_cache)
    message = AIMessage(
        content="", tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "c1"}]
    )
    lc.update("p", "llm", [ChatGeneration(message=message)])
    (entry,) = sqlite_cache.entries()
    assert entry.value.startswith('[\n  {\n    "tool_call": "weather"')
    entry.value = entry.value.replace('"Paris"', '"Lyon"', 1)
    sqlite_cache.backend.put_many([entry])
    sqlite_cache._l1.clear()
    (generation,) = lc.lookup("p", "llm") or []
    assert generation.message.tool_calls[0]["args"] == {"city": "Lyon"}  # type: ignore[attr-defined]
    assert generation.message.tool_calls[0]["id"] == "c1"  # type: ignore[attr-defined]
