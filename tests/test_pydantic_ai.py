"""pydantic-ai integration: CachedModel, CacheCapability, the key, the readable codec.

Models are pydantic-ai's FunctionModel (counting calls) and OpenAIChatModel against a local
OpenAI-compatible HTTP server (tests/openai_stub.py); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub
from pydantic import BaseModel
from pydantic_ai import Agent, BinaryContent
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.usage import RequestUsage
from pydantic_evals import Case, Dataset
from redis_fixtures import redis_server_fixture, redis_url_fixture  # noqa: F401 - fixtures
from rich.console import Console
from sheets_fixtures import Sheet, emulator, sheet  # noqa: F401 - fixtures

import sheetcache.pydantic_ai as integration
from sheetcache import Cache, ConfigError, make_key
from sheetcache._codec import decode_value, encode_value
from sheetcache._display import model_of, prompt_text
from sheetcache.cli._demo_agent import run_agent_demo
from sheetcache.pydantic_ai import CacheCapability, CachedModel, ModelCacheStats, request_key


class City(BaseModel):
    name: str
    population: int


class ScriptedModel:
    """A FunctionModel body that counts calls: calls the tool ``add`` once if offered, then
    answers in text (or with the output tool when text is not allowed)."""

    def __init__(
        self, answer: str = "4", *, parts: list[Any] | None = None, **response: Any
    ) -> None:
        self.answer = answer
        self.parts = parts
        self.response = response
        self.calls = 0
        self.seen: list[list[ModelMessage]] = []
        self._lock = threading.Lock()

    def _count(self, messages: list[ModelMessage]) -> None:
        with self._lock:
            self.calls += 1
            self.seen.append(messages)

    def _tool_step(self, messages: list[ModelMessage], info: AgentInfo) -> bool:
        returned = any(p.part_kind == "tool-return" for m in messages for p in m.parts)
        return not returned and any(t.name == "add" for t in info.function_tools)

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self._count(messages)
        if self.parts is not None:
            return ModelResponse(parts=list(self.parts), **self.response)
        if self._tool_step(messages, info):
            # No tool_call_id given: pydantic-ai makes up a random one, as providers do.
            return ModelResponse(parts=[ToolCallPart("add", {"a": 2, "b": 2})])
        if not info.allow_text_output:
            tool = info.output_tools[0]
            return ModelResponse(
                parts=[ToolCallPart(tool.name, {"name": "Paris", "population": 2_100_000})]
            )
        return ModelResponse(parts=[TextPart(self.answer)], **self.response)

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        self._count(messages)
        if self._tool_step(messages, info):
            yield {0: DeltaToolCall(name="add", json_args='{"a": 2, "b": 2}')}
            return
        if not info.allow_text_output:
            tool = info.output_tools[0]
            calls: DeltaToolCalls = {
                0: DeltaToolCall(name=tool.name, json_args='{"name": "Paris", ')
            }
            yield calls
            yield {0: DeltaToolCall(json_args='"population": 2100000}')}
            return
        for word in self.answer.split(" "):
            yield word + " "


def function_model(script: ScriptedModel, name: str = "scripted") -> FunctionModel:
    return FunctionModel(script, stream_function=script.stream, model_name=name)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Cache]:
    with Cache("sqlite:///" + str(tmp_path / "c.db")) as c:
        yield c


@pytest.fixture
def run_sync_loop() -> Iterator[None]:
    """Close the event loop ``Agent.run_sync`` made.

    run_sync creates an event loop, sets it as current and leaves it open for the next call;
    once a later async test replaces it, it would be garbage collected open: a ResourceWarning,
    which ``-W error`` reports against an unrelated test.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # no current loop: nothing to close
        loop = asyncio.get_event_loop_policy().get_event_loop()
    if not loop.is_running():
        loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def script() -> ScriptedModel:
    return ScriptedModel("two plus two is four")


def tool_agent(model: Any, tool_runs: list[int] | None = None, **kwargs: Any) -> Agent[None, Any]:
    agent: Agent[None, Any] = Agent(model, system_prompt="You add numbers.", **kwargs)

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two integers."""
        if tool_runs is not None:
            tool_runs.append(a + b)
        return a + b

    return agent


# -- the public surface ----------------------------------------------------------------------


def test_public_surface_is_pinned() -> None:
    assert integration.__all__ == sorted(integration.__all__)
    assert set(integration.__all__) == {
        "CacheCapability",
        "CachedModel",
        "ModelCacheStats",
        "request_key",
    }
    for name in integration.__all__:
        assert hasattr(integration, name)


def test_bad_arguments_fail_early(script: ScriptedModel) -> None:
    with pytest.raises(ConfigError, match=r"sheetcache.Cache"):
        CachedModel(function_model(script), "memory://")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="namespace"):
        CachedModel(function_model(script), Cache("memory://"), namespace="")
    with pytest.raises(ConfigError, match=r"sheetcache.Cache"):
        CacheCapability(None)  # type: ignore[arg-type]


# -- the run APIs: second run, no model call, same output -------------------------------------


@pytest.mark.usefixtures("run_sync_loop")
def test_run_sync_second_run_is_served_from_the_cache(cache: Cache, script: ScriptedModel) -> None:
    model = CachedModel(function_model(script), cache)
    agent = Agent(model, system_prompt="Be brief.")
    first = agent.run_sync("What is 2+2?")
    second = agent.run_sync("What is 2+2?")
    assert script.calls == 1
    assert second.output == first.output == "two plus two is four"
    # The hit costs this run nothing: no tokens in its usage, the step still counted.
    assert first.usage.input_tokens > 0
    assert (second.usage.input_tokens, second.usage.output_tokens, second.usage.requests) == (
        0,
        0,
        1,
    )
    response = second.all_messages()[-1]
    assert isinstance(response, ModelResponse)
    assert response.model_name == "scripted"
    assert response.metadata is not None and response.metadata["sheetcache"]["hit"] is True
    # A replayed response belongs to the run that received it.
    assert response.run_id == second.run_id != first.run_id
    assert response.timestamp > first.all_messages()[-1].timestamp
    assert (
        response.metadata["sheetcache"]["answered_at"]
        == first.all_messages()[-1].timestamp.isoformat()
    )
    assert model.stats == ModelCacheStats(
        hits=1, misses=1, tokens_saved=first.usage.input_tokens + first.usage.output_tokens
    )


async def test_run_async(cache: Cache, script: ScriptedModel) -> None:
    agent = Agent(CachedModel(function_model(script), cache))
    outputs = [(await agent.run("What is 2+2?")).output for _ in range(3)]
    assert outputs == ["two plus two is four"] * 3
    assert script.calls == 1


async def test_run_stream_replays_the_stored_response_as_a_stream(
    cache: Cache, script: ScriptedModel
) -> None:
    model = CachedModel(function_model(script), cache)
    agent = Agent(model)
    streamed: list[list[str]] = []
    for _ in range(2):
        async with agent.run_stream("What is 2+2?") as result:
            streamed.append(
                [text async for text in result.stream_text(delta=True, debounce_by=None)]
            )
    assert script.calls == 1
    assert "".join(streamed[0]) == "two plus two is four "
    assert len(streamed[0]) > 1  # the miss streamed word by word, live
    assert streamed[1] == streamed[0]  # and the hit replays the same words
    # A stream and a non-streamed run of the same request share the entry.
    assert (await agent.run("What is 2+2?")).output == "two plus two is four "
    assert script.calls == 1
    assert (model.stats.hits, model.stats.misses) == (2, 1)


async def test_stream_abandoned_early_is_not_stored(cache: Cache, script: ScriptedModel) -> None:
    model = CachedModel(function_model(script), cache)
    agent = Agent(model)
    async with agent.iter("What is 2+2?") as run:
        async for node in run:
            if Agent.is_model_request_node(node):
                async with node.stream(run.ctx) as events:
                    async for _event in events:
                        break  # the user stops reading after the first event
                break
    assert model.stats.not_stored == 1
    assert len(list(cache.entries())) == 0
    async with agent.run_stream("What is 2+2?") as result:
        assert await result.get_output() == "two plus two is four "
    assert script.calls == 2
    assert len(list(cache.entries())) == 1


async def test_stream_that_fails_is_not_stored(cache: Cache) -> None:
    calls = 0

    async def broken(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        nonlocal calls
        calls += 1
        yield "half an answer"
        raise ConnectionError("provider dropped the stream")

    agent = Agent(CachedModel(FunctionModel(stream_function=broken, model_name="broken"), cache))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            async with agent.run_stream("hi") as result:
                await result.get_output()
    assert calls == 2
    assert len(list(cache.entries())) == 0


async def test_iter_with_and_without_streaming(cache: Cache, script: ScriptedModel) -> None:
    agent = Agent(CachedModel(function_model(script), cache))

    async def by_iter(stream: bool) -> str:
        async with agent.iter("What is 2+2?") as run:
            async for node in run:
                if stream and Agent.is_model_request_node(node):
                    async with node.stream(run.ctx) as events:
                        async for _event in events:
                            pass
        assert run.result is not None
        return str(run.result.output)

    assert await by_iter(stream=False) == "two plus two is four"
    assert await by_iter(stream=False) == "two plus two is four"
    assert script.calls == 1
    # The same request streamed: the stored response replays as a stream.
    assert await by_iter(stream=True) == "two plus two is four"
    assert script.calls == 1


async def test_run_stream_events(cache: Cache, script: ScriptedModel) -> None:
    agent = Agent(CachedModel(function_model(script), cache))
    runs = []
    for _ in range(2):
        async with agent.run_stream_events("What is 2+2?") as events:
            runs.append([event async for event in events])
    assert script.calls == 1
    outputs = [run[-1].result.output for run in runs]  # the AgentRunResultEvent
    assert outputs == ["two plus two is four "] * 2


async def test_structured_output(cache: Cache, script: ScriptedModel) -> None:
    agent = Agent(CachedModel(function_model(script), cache), output_type=City)
    first = await agent.run("Largest city of France?")
    second = await agent.run("Largest city of France?")
    async with agent.run_stream("Largest city of France?") as result:
        streamed = await result.get_output()
    assert first.output == second.output == streamed == City(name="Paris", population=2_100_000)
    assert script.calls == 1


async def test_structured_output_streamed_first(cache: Cache, script: ScriptedModel) -> None:
    agent = Agent(CachedModel(function_model(script), cache), output_type=City)
    outputs = []
    for _ in range(2):
        async with agent.run_stream("Largest city of France?") as result:
            outputs.append(await result.get_output())
    assert outputs == [City(name="Paris", population=2_100_000)] * 2
    assert script.calls == 1


async def test_tool_agent_replays_every_step_and_tools_still_run(
    cache: Cache, script: ScriptedModel
) -> None:
    tool_runs: list[int] = []
    agent = tool_agent(CachedModel(function_model(script), cache), tool_runs)
    first = await agent.run("What is 2+2?")
    assert script.calls == 2  # a tool call, then the answer
    second = await agent.run("What is 2+2?")
    assert script.calls == 2
    assert second.output == first.output
    assert tool_runs == [4, 4]  # tools are not cached: they ran again
    # FunctionModel made up a random tool call id: only position-based renaming lets the
    # second step (which echoes the id back) hit.
    ids = [
        p.tool_call_id for m in first.all_messages() for p in m.parts if p.part_kind == "tool-call"
    ]
    assert ids[0].startswith("pyd_ai_") and len(ids[0]) > 20
    assert len(list(cache.entries())) == 2


async def test_tool_agent_streamed(cache: Cache, script: ScriptedModel) -> None:
    tool_runs: list[int] = []
    agent = tool_agent(CachedModel(function_model(script), cache), tool_runs)
    outputs = []
    for _ in range(2):
        async with agent.run_stream("What is 2+2?") as result:
            outputs.append(await result.get_output())
    assert outputs[0] == outputs[1] == "two plus two is four "
    assert script.calls == 2
    assert tool_runs == [4, 4]


async def test_retry_prompts_replay_too(cache: Cache) -> None:
    calls = 0

    def first_wrong(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        calls += 1
        retried = any(isinstance(m, ModelResponse) for m in messages)
        population = 2_100_000 if retried else "a lot"
        tool = info.output_tools[0].name
        return ModelResponse(
            parts=[ToolCallPart(tool, {"name": "Paris", "population": population})]
        )

    agent = Agent(
        CachedModel(FunctionModel(first_wrong, model_name="fixer"), cache), output_type=City
    )
    first = await agent.run("Largest city?")
    second = await agent.run("Largest city?")
    assert first.output == second.output == City(name="Paris", population=2_100_000)
    assert calls == 2  # a wrong answer, the retry prompt, a right one; then nothing
    # pydantic-ai 2.x sends the validation errors back as a tool return marked 'retried',
    # echoing the random tool call id.
    retry = first.all_messages()[2].parts[0]
    assert (retry.part_kind, getattr(retry, "outcome", None)) == ("tool-return", "retried")
    assert retry.tool_call_id.startswith("pyd_ai_")


async def test_message_history_continuation(cache: Cache, script: ScriptedModel) -> None:
    agent = Agent(CachedModel(function_model(script), cache))

    async def conversation() -> list[str]:
        first = await agent.run("What is 2+2?")
        follow = await agent.run("And 3+3?", message_history=first.all_messages())
        return [first.output, follow.output]

    assert await conversation() == await conversation()
    assert script.calls == 2
    # The follow-up's key holds the first exchange: another history is another question.
    other = await agent.run(
        "And 3+3?", message_history=(await agent.run("What is 5+5?")).all_messages()
    )
    assert other.output
    assert script.calls == 4


# -- what is in the key ----------------------------------------------------------------------


def _variant(name: str, script: ScriptedModel, cache: Cache) -> Agent[None, Any]:
    """The base agent, or the base agent with one thing changed."""
    model = CachedModel(
        function_model(script, "other-model" if name == "model" else "scripted"), cache
    )
    agent: Agent[None, Any] = Agent(
        model,
        system_prompt="You add numbers carefully."
        if name == "system prompt"
        else "You add numbers.",
        model_settings={"temperature": 0.7 if name == "temperature" else 0.0},
        output_type=City if name == "output type" else str,
    )
    if name == "instructions":

        @agent.instructions
        def be_terse() -> str:
            return "Be terse."

    if name in {"tool", "tool schema"}:
        if name == "tool":

            def lookup(term: str) -> str:
                """Look a term up."""
                return term

        else:

            def lookup(term: str, exact: bool = False) -> str:  # same tool, one more argument
                """Look a term up."""
                return term

        agent.tool_plain(lookup)
    return agent


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("base", "temperature"),
        ("base", "system prompt"),
        ("base", "instructions"),
        ("base", "tool"),
        ("tool", "tool schema"),
        ("base", "output type"),
        ("base", "model"),
    ],
)
async def test_a_change_that_changes_the_answer_is_a_miss(
    cache: Cache, before: str, after: str
) -> None:
    script = ScriptedModel("4")
    for _ in range(2):
        await _variant(before, script, cache).run("What is 2+2?")
    assert script.calls == 1
    for _ in range(2):
        await _variant(after, script, cache).run("What is 2+2?")
    assert script.calls == 2


async def test_binary_content_is_keyed_by_digest(cache: Cache, script: ScriptedModel) -> None:
    agent = Agent(CachedModel(function_model(script), cache))
    png = b"\x89PNG" + bytes(range(256)) * 40
    for data in (png, png, png[:-1] + b"\x00"):
        await agent.run(["What is in this image?", BinaryContent(data, media_type="image/png")])
    assert script.calls == 2
    entry = next(iter(cache.entries()))
    content = entry.prompt[-1]["parts"][-1]["content"]
    assert content[1]["data"].startswith("sha256:")
    assert len(str(entry.prompt)) < 2000  # the image itself is not in the sheet
    assert prompt_text(entry.prompt) == "What is in this image?"


@pytest.mark.usefixtures("run_sync_loop")
def test_volatile_fields_differ_on_every_run_and_are_left_out(script: ScriptedModel) -> None:
    """Without the exclusions, every request of a re-run would be a miss."""
    agent = tool_agent(function_model(script))
    agent.run_sync("What is 2+2?")
    agent.run_sync("What is 2+2?")
    assert script.calls == 4  # uncached: two runs of two steps
    run1_step2, run2_step2 = script.seen[1], script.seen[3]
    raw1, raw2 = (
        ModelMessagesTypeAdapter.dump_python(m, mode="json") for m in (run1_step2, run2_step2)
    )
    # What differs between the two runs of the same agent and question:
    assert raw1[0]["run_id"] != raw2[0]["run_id"]
    assert raw1[0]["conversation_id"] != raw2[0]["conversation_id"]
    assert raw1[0]["timestamp"] != raw2[0]["timestamp"]
    assert raw1[0]["parts"][1]["timestamp"] != raw2[0]["parts"][1]["timestamp"]
    assert raw1[1]["parts"][0]["tool_call_id"] != raw2[1]["parts"][0]["tool_call_id"]
    assert raw1[1]["timestamp"] != raw2[1]["timestamp"]
    assert raw1[2]["parts"][0]["tool_call_id"] == raw1[1]["parts"][0]["tool_call_id"]  # echoed back
    # so a key of the raw messages would never hit,
    assert make_key(raw1) != make_key(raw2)
    # while the normalised key is the same.
    model = function_model(script)
    key1 = request_key(model, run1_step2, None, _params())
    key2 = request_key(model, run2_step2, None, _params())
    assert key1 == key2
    assert key1[0][1]["parts"][0]["tool_call_id"] == "call_1"
    assert "run_id" not in key1[0][0] and "timestamp" not in key1[0][0]


def test_transport_settings_and_part_ids_are_not_in_the_key(script: ScriptedModel) -> None:
    from pydantic_ai.models import ModelRequestParameters

    model = function_model(script)
    params = ModelRequestParameters()

    def key(settings: dict[str, Any], response_part_id: str | None = None) -> tuple[Any, Any]:
        messages: list[ModelMessage] = [
            ModelRequest(parts=[UserPromptPart("hi")]),
            ModelResponse(
                parts=[TextPart("hello", id=response_part_id)],
                provider_response_id=response_part_id,
            ),
            ModelRequest(parts=[UserPromptPart("again")]),
        ]
        return request_key(model, messages, settings, params)  # type: ignore[arg-type]

    base = key({"temperature": 0.0})
    assert (
        key({"temperature": 0.0, "timeout": 30, "max_retries": 5, "request_timeout": 9.0}) == base
    )
    assert key({"temperature": 0.0}, response_part_id="msg_123") == base
    assert key({"temperature": 0.5}) != base
    assert key({"temperature": 0.0, "seed": 1}) != base
    with_header = key({"temperature": 0.0, "extra_headers": {"Authorization": "Bearer sk-secret"}})
    assert with_header != base
    assert "sk-secret" not in str(with_header)  # a digest, never the header itself


async def test_namespace(cache: Cache, script: ScriptedModel) -> None:
    async def ask(namespace: str | None) -> None:
        await Agent(CachedModel(function_model(script), cache, namespace=namespace)).run(
            "What is 2+2?"
        )

    await ask(None)
    await ask(None)
    await ask("staging")
    await ask("staging")
    await ask("prod")
    assert script.calls == 3
    assert {e.key_parts.get("namespace") for e in cache.entries()} == {None, "staging", "prod"}


# -- the sheet: prompt column, model column, readable and editable answer ---------------------


async def test_entries_show_the_model_and_the_last_user_prompt(
    cache: Cache, script: ScriptedModel
) -> None:
    agent = tool_agent(CachedModel(function_model(script, "gpt-4o-mini"), cache))
    await agent.run("What is 2+2?")
    entries = list(cache.entries())
    assert len(entries) == 2  # the tool call step and the answer step
    for entry in entries:
        assert prompt_text(entry.prompt) == "What is 2+2?"
        assert model_of(entry.key_parts) == "gpt-4o-mini"
        assert entry.value_type == "pydantic-ai-response"
    values = sorted(e.value for e in entries)
    assert values[0].startswith('[\n  {\n    "tool_call": "add",\n    "args": {\n      "a": 2')
    assert values[1].startswith("two plus two is four\n\n--- sheetcache: pydantic-ai response v1")


def _edit(cache_url: str, old: str, new: str) -> None:
    with Cache(cache_url) as cache:
        (entry,) = [e for e in cache.entries() if old in e.value]
        cache.backend.put_many([dataclasses.replace(entry, value=entry.value.replace(old, new, 1))])


async def test_a_reviewers_edit_of_a_text_answer_is_served(
    tmp_path: Path, script: ScriptedModel
) -> None:
    url = "sqlite:///" + str(tmp_path / "c.db")
    with Cache(url) as cache:
        first = await Agent(CachedModel(function_model(script), cache)).run("What is 2+2?")
    assert first.output == "two plus two is four"
    _edit(url, "two plus two is four\n", "2 + 2 = 4, exactly.\n")
    with Cache(url) as cache:
        model = CachedModel(function_model(script), cache)
        edited = await Agent(model).run("What is 2+2?")
    assert edited.output == "2 + 2 = 4, exactly."
    assert script.calls == 1
    response = edited.all_messages()[-1]
    assert isinstance(response, ModelResponse) and response.metadata is not None
    marker = response.metadata["sheetcache"]
    assert marker["edited"] is marker["hit"] is True
    assert marker["saved_usage"] == {
        "input_tokens": first.usage.input_tokens,
        "output_tokens": first.usage.output_tokens,
    }


async def test_a_reviewers_edit_of_a_structured_answer_is_served(
    tmp_path: Path, script: ScriptedModel
) -> None:
    url = "sqlite:///" + str(tmp_path / "c.db")
    with Cache(url) as cache:
        await Agent(CachedModel(function_model(script), cache), output_type=City).run(
            "Largest city?"
        )
    _edit(url, '"population": 2100000', '"population": 2102650')
    with Cache(url) as cache:
        edited = await Agent(CachedModel(function_model(script), cache), output_type=City).run(
            "Largest city?"
        )
    assert edited.output == City(name="Paris", population=2_102_650)
    assert script.calls == 1


async def test_an_edit_that_breaks_the_shape_is_a_miss(
    tmp_path: Path, script: ScriptedModel
) -> None:
    url = "sqlite:///" + str(tmp_path / "c.db")
    with Cache(url) as cache:
        await Agent(CachedModel(function_model(script), cache), output_type=City).run(
            "Largest city?"
        )
    _edit(url, '"tool_call": "final_result"', '"tool_call": "something_else"')
    with Cache(url) as cache:
        again = await Agent(CachedModel(function_model(script), cache), output_type=City).run(
            "Largest city?"
        )
    assert again.output.name == "Paris"
    assert script.calls == 2


async def test_a_rejected_entry_is_a_miss(tmp_path: Path, script: ScriptedModel) -> None:
    url = "sqlite:///" + str(tmp_path / "c.db")
    with Cache(url) as cache:
        await Agent(CachedModel(function_model(script), cache)).run("What is 2+2?")
        (entry,) = cache.entries()
        cache.backend.put_many([dataclasses.replace(entry, status="rejected")])
    with Cache(url) as cache:
        model = CachedModel(function_model(script), cache)
        await Agent(model).run("What is 2+2?")
        assert script.calls == 2
        assert (model.stats.hits, model.stats.misses) == (0, 1)
        (entry,) = cache.entries()
        assert entry.status == ""  # the new answer replaced the rejected one, for review again


def _round_trip(response: ModelResponse) -> ModelResponse:
    value_type, text = encode_value(response)
    assert value_type == "pydantic-ai-response"
    decoded = decode_value(value_type, text)
    assert isinstance(decoded, ModelResponse)
    return decoded


def test_codec_round_trips_a_response_exactly() -> None:
    from datetime import datetime, timezone
    from decimal import Decimal

    response = ModelResponse(
        parts=[
            ThinkingPart("let me think", signature="sig=="),
            TextPart("first", id="msg_1", provider_details={"logprobs": [-0.1]}),
            ToolCallPart("add", '{"a": 1}', tool_call_id="call_x"),
            TextPart("second\n\nwith a blank line"),
        ],
        usage=RequestUsage(
            input_tokens=10, output_tokens=5, details={"reasoning": 3}, cost=Decimal("0.0012")
        ),
        model_name="gpt-4o-2024-08-06",
        timestamp=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
        provider_name="openai",
        provider_url="https://api.openai.com/v1",
        provider_details={
            "timestamp": datetime(2025, 1, 2, tzinfo=timezone.utc),
            "finish_reason": "stop",
        },
        provider_response_id="chatcmpl-123",
        finish_reason="tool_call",
        metadata={"mine": [1, 2]},
    )
    assert _round_trip(response) == response
    text_only = dataclasses.replace(
        response, parts=[TextPart("a"), ThinkingPart("b"), TextPart("c")]
    )
    assert _round_trip(text_only) == text_only
    empty = ModelResponse(parts=[], finish_reason="content_filter")
    assert _round_trip(empty) == empty


def test_codec_refuses_text_without_its_data() -> None:
    with pytest.raises(ValueError, match="marker"):
        decode_value("pydantic-ai-response", "just an answer")


# -- what is not stored ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        {"finish_reason": "content_filter"},
        {"finish_reason": "length"},
        {"finish_reason": "error"},
        {"parts": []},
    ],
    ids=["refusal", "truncated", "error", "empty"],
)
async def test_refusals_truncations_and_errors_are_not_stored(
    cache: Cache, response: dict[str, Any]
) -> None:
    parts = response.pop("parts", [TextPart("I cannot")])
    script = ScriptedModel(parts=parts, **response)
    model = FunctionModel(script, model_name="refusing")
    plain = CachedModel(model, cache)
    for _ in range(2):
        await plain.request([ModelRequest(parts=[UserPromptPart("hi")])], None, _params())
    assert script.calls == 2
    assert plain.stats.not_stored == 2
    assert len(list(cache.entries())) == 0
    keeping = CachedModel(model, cache, cache_errors=True)
    for _ in range(2):
        await keeping.request([ModelRequest(parts=[UserPromptPart("hi")])], None, _params())
    assert script.calls == 3
    assert len(list(cache.entries())) == 1


def _params() -> Any:
    from pydantic_ai.models import ModelRequestParameters

    return ModelRequestParameters()


async def test_exceptions_are_never_stored(cache: Cache) -> None:
    calls = 0

    def failing(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        calls += 1
        raise RuntimeError("provider is down")

    agent = Agent(CachedModel(FunctionModel(failing, model_name="down"), cache, cache_errors=True))
    for _ in range(2):
        with pytest.raises(RuntimeError, match="provider is down"):
            await agent.run("hi")
    assert calls == 2
    assert len(list(cache.entries())) == 0


# -- concurrency, capability, evals, demo ----------------------------------------------------


async def test_twenty_identical_concurrent_runs_make_one_model_call(cache: Cache) -> None:
    release = asyncio.Event()
    calls = 0

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        calls += 1
        await release.wait()  # held until every run is waiting on this call
        return ModelResponse(parts=[TextPart("4")])

    model = CachedModel(FunctionModel(slow, model_name="slow"), cache)
    agent = Agent(model)
    runs = [asyncio.create_task(agent.run("What is 2+2?")) for _ in range(20)]

    async def all_twenty_in_flight() -> None:
        # One run is inside the model call, the other 19 wait on its flight in the cache.
        while not (
            calls == 1 and any(len(f._async_waiters) == 19 for f in list(cache._flights.values()))
        ):
            await asyncio.sleep(0)

    await asyncio.wait_for(all_twenty_in_flight(), timeout=30)
    release.set()
    outputs = [r.output for r in await asyncio.gather(*runs)]
    assert outputs == ["4"] * 20
    assert calls == 1
    assert (model.stats.hits, model.stats.misses) == (19, 1)


async def test_capability_form(cache: Cache, script: ScriptedModel) -> None:
    capability = CacheCapability(cache)
    tool_runs: list[int] = []
    agent = tool_agent(function_model(script), tool_runs, capabilities=[capability])
    first = await agent.run("What is 2+2?")
    second = await agent.run("What is 2+2?")
    async with agent.run_stream("What is 2+2?") as result:
        streamed = await result.get_output()
    assert first.output == second.output == streamed
    assert script.calls == 2
    assert tool_runs == [4, 4, 4]
    assert (capability.stats.hits, capability.stats.misses) == (4, 2)
    # An explicitly cached model is not wrapped twice.
    model = CachedModel(function_model(script), cache)
    assert capability.get_wrapper_model(model) is None
    wrapped = capability.get_wrapper_model(function_model(script))
    assert isinstance(wrapped, CachedModel) and wrapped.cache is cache


async def test_capability_with_a_run_model(cache: Cache, script: ScriptedModel) -> None:
    capability = CacheCapability(cache, namespace="runs")
    agent: Agent[None, str] = Agent(capabilities=[capability])
    for _ in range(2):
        result = await agent.run("What is 2+2?", model=function_model(script))
        assert result.output == "two plus two is four"
    assert script.calls == 1
    assert {e.key_parts["namespace"] for e in cache.entries()} == {"runs"}


async def test_a_dataset_evaluated_twice_makes_no_model_calls_the_second_time(
    cache: Cache, script: ScriptedModel
) -> None:
    model = CachedModel(function_model(script), cache)
    agent = Agent(model, output_type=str)

    async def task(question: str) -> str:
        return (await agent.run(question)).output

    dataset = Dataset[str, str, Any](
        name="twice", cases=[Case(name=f"q{i}", inputs=f"What is {i}+{i}?") for i in range(25)]
    )
    first = await dataset.evaluate(task, progress=False)
    assert script.calls == 25
    second = await dataset.evaluate(task, progress=False)
    assert script.calls == 25
    assert [c.output for c in second.cases] == [c.output for c in first.cases]
    assert model.stats.hits == 25


def test_demo_prints_and_returns_both_runs(cache: Cache) -> None:
    out = io.StringIO()
    figures = run_agent_demo(cache, console=Console(file=out, width=120), latency=0.001)
    first, second = figures["runs"]
    assert first["model_calls"] == first["cases"] >= 20
    assert (second["model_calls"], second["hits"]) == (0, second["cases"])
    assert second["tokens_saved"] > 0 and first["passed"] == second["passed"] == first["cases"]
    assert figures["simulated"] is True
    text = out.getvalue()
    assert "simulated" in text and "tokens saved" in text


# -- the real provider code path: OpenAIChatModel over HTTP ---------------------------------


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        yield stub


def openai_model(stub: OpenAIStub) -> OpenAIChatModel:
    return OpenAIChatModel(
        "gpt-4o", provider=OpenAIProvider(base_url=stub.base_url, api_key="test")
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_openai_second_run_sends_no_http_request(
    cache: Cache, openai_stub: OpenAIStub, streamed: bool
) -> None:
    openai_stub.tool_args = {"city": "Paris"}
    model = CachedModel(openai_model(openai_stub), cache)
    agent: Agent[None, str] = Agent(model, system_prompt="Use tools.")

    @agent.tool_plain
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    async def run() -> tuple[str, Any]:
        if streamed:
            async with agent.run_stream("Weather in Paris?") as result:
                output = await result.get_output()
            return output, result
        result = await agent.run("Weather in Paris?")
        return result.output, result

    async with agent:  # closes the provider's HTTP client at the end
        first, first_result = await run()
        assert openai_stub.count == 2  # tool call, then the answer
        assert first == "echo: Weather in Paris? (tools said: sunny in Paris)"
        second, second_result = await run()
    assert openai_stub.count == 2
    assert second == first
    assert second_result.usage.input_tokens == 0 < first_result.usage.input_tokens
    # genai-prices knows gpt-4o: the hits saved real (simulated-usage) dollars.
    assert (
        model.stats.tokens_saved
        == first_result.usage.input_tokens + first_result.usage.output_tokens
    )
    assert model.stats.dollars_saved > 0
    # The stub made up a random tool call id, which the second request echoed back.
    call_ids = [
        m["tool_calls"][0]["id"]
        for r in openai_stub.requests
        for m in r["messages"]
        if m.get("tool_calls")
    ]
    assert call_ids and call_ids[0].startswith("call_")


async def test_openai_response_round_trips_exactly(cache: Cache, openai_stub: OpenAIStub) -> None:
    model = openai_model(openai_stub)
    async with model:
        response = await model.request(
            [ModelRequest(parts=[UserPromptPart("hi")])], None, _params()
        )
    assert response.provider_details and "timestamp" in response.provider_details
    assert _round_trip(response) == response


# -- the provider's identity is in the key (issue 10) ----------------------------------------


async def test_two_servers_serving_a_model_named_default_never_share_answers(
    cache: Cache,
) -> None:
    with OpenAIStub("default", name="server A") as a, OpenAIStub("default", name="server B") as b:
        agents = [
            Agent(CachedModel(OpenAIChatModel("default", provider=p), cache))
            for p in (
                OpenAIProvider(base_url=a.base_url, api_key="key-a"),
                OpenAIProvider(base_url=b.base_url, api_key="key-b"),
            )
        ]
        outputs = []
        for _ in range(2):
            for agent in agents:
                async with agent:
                    outputs.append((await agent.run("Who are you?")).output)
    assert outputs == ["server A: Who are you?", "server B: Who are you?"] * 2
    assert (a.count, b.count) == (1, 1)  # each answered once; the re-runs were hits
    urls = sorted(e.key_parts["base_url"] for e in cache.entries())
    assert urls == sorted([a.base_url, b.base_url])
    assert {e.key_parts["system"] for e in cache.entries()} == {"openai"}


def test_the_endpoint_in_the_key_holds_no_credentials(tmp_path: Path) -> None:
    def key_parts(base_url: str) -> dict[str, Any]:
        model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=base_url, api_key="k"))
        messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart("hi")])]
        return request_key(model, messages, None, _params())[1]

    secret = "https://bob:sk-pass-123@API.Example.com:443/v1/?code=sk-query-456#frag"
    parts = key_parts(secret)
    assert parts["base_url"] == "https://api.example.com/v1"
    assert key_parts("https://api.example.com/v1") == parts  # spellings of one endpoint
    assert key_parts("https://api.example.com:8443/v1")["base_url"] == (
        "https://api.example.com:8443/v1"
    )
    assert key_parts("http://api.example.com/v1") != parts
    assert key_parts("https://api.example.com/v2") != parts
    assert key_parts("https://[::1]:9000/v1")["base_url"] == "https://[::1]:9000/v1"
    assert integration._endpoint("https://u:sk-9@h:notaport/v1") == "https://h:notaport/v1"
    # Nothing of the secrets reaches the stored bytes.
    path = tmp_path / "c.db"
    with Cache(f"sqlite:///{path}") as cache:
        cache.set([{"role": "user", "content": "hi"}], "hello", **parts)
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"api.example.com" in data
    for leaked in (b"sk-pass-123", b"sk-query-456", b"bob", b"frag"):
        assert leaked not in data


def test_models_without_a_url_have_no_base_url_part(script: ScriptedModel) -> None:
    messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart("hi")])]
    _, parts = request_key(function_model(script), messages, None, _params())
    assert "base_url" not in parts and parts["system"] == "function"
    assert parts["integration"] == "pydantic-ai/2"


# -- hostile content never fails a paid-for call (issue 10) ----------------------------------


async def test_non_string_dict_keys_in_a_response_round_trip(cache: Cache) -> None:
    details = {1: "one", None: [2], (3, 4): {"nested": {5: True}}, "ok": "str key"}
    script = ScriptedModel(parts=[TextPart("4")], provider_details=details)
    model = CachedModel(FunctionModel(script, model_name="odd-keys"), cache)
    agent = Agent(model)
    first = await agent.run("What is 2+2?")
    second = await agent.run("What is 2+2?")
    assert first.output == second.output == "4"
    assert script.calls == 1
    replayed = second.all_messages()[-1]
    assert isinstance(replayed, ModelResponse)
    assert replayed.provider_details == details
    # Parts' details and metadata too, through the codec.
    response = ModelResponse(
        parts=[
            TextPart("a", provider_details={1: "x"}),
            ToolCallPart("t", {"a": 1}, tool_call_id="c", provider_details={None: 2}),
        ],
        metadata={3: "m"},  # type: ignore[dict-item]
    )
    assert _round_trip(response) == response


async def test_non_string_dict_keys_in_a_tool_result(cache: Cache, script: ScriptedModel) -> None:
    agent = tool_agent(CachedModel(function_model(script), cache))

    @agent.tool_plain
    def table() -> dict[int, str]:
        """A lookup table with int keys."""
        return {1: "a", 2: "b"}

    outputs = [(await agent.run("What is 2+2?")).output for _ in range(2)]
    assert outputs[0] == outputs[1]
    assert script.calls == 2  # both steps replayed on the second run


async def test_a_lone_surrogate_in_the_answer_returns_it_with_one_warning(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    truncated = "The answer is 4 \ud83d"  # half an emoji, as a JSON decoder can leave it
    script = ScriptedModel(parts=[TextPart(truncated)])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield truncated[:-1]
        yield truncated[-1]

    model = CachedModel(
        FunctionModel(script, stream_function=stream, model_name="surrogate"), cache
    )
    agent = Agent(model)
    with caplog.at_level("WARNING", logger="sheetcache"):
        result = await agent.run("What is 2+2?")
    assert result.output == truncated
    warnings_ = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings_) == 1
    assert "not valid Unicode" in warnings_[0].getMessage()
    assert model.stats.not_stored == 1
    assert len(list(cache.entries())) == 0
    # The same holds streamed.
    async with agent.run_stream("What is 2+2?") as streamed:
        assert await streamed.get_output() == truncated
    assert model.stats.not_stored == 2


async def test_a_lone_surrogate_in_a_tool_result_is_keyed_and_cached(
    cache: Cache, script: ScriptedModel
) -> None:
    agent: Agent[None, str] = Agent(CachedModel(function_model(script), cache))
    tool_runs: list[int] = []

    @agent.tool_plain
    def add(a: int, b: int) -> str:
        """Add two integers."""
        tool_runs.append(a + b)
        return f"{a + b} \ud83d"  # a scraped page cut inside an emoji

    outputs = [(await agent.run("What is 2+2?")).output for _ in range(2)]
    assert outputs == ["two plus two is four"] * 2
    assert script.calls == 2 and tool_runs == [4, 4]
    # Another broken character is another question.
    (step,) = [e for e in cache.entries() if "tool-return" in str(e.prompt)]
    content = step.prompt[-1]["parts"][0]["content"]
    assert content == {"$utf16": "4 \ud83d".encode("utf-16-be", "surrogatepass").hex()}
    # Another broken character is another question.
    from pydantic_ai.messages import ToolReturnPart

    def prompt(content: Any) -> Any:
        messages: list[ModelMessage] = [
            ModelRequest(parts=[ToolReturnPart("add", content, tool_call_id="c")])
        ]
        return request_key(function_model(script), messages, None, _params())[0]

    assert prompt("4 \ud83d") != prompt("4 \ud83c") != prompt("4 ")


# -- a run that fails output validation is not replayed (issue 13) ---------------------------


class FirstWrong:
    """Answers the output tool with a population that fails validation on the first call only."""

    def __init__(self) -> None:
        self.calls = 0

    def _args(self) -> dict[str, Any]:
        self.calls += 1
        return {"name": "Paris", "population": "a lot" if self.calls == 1 else 2_100_000}

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, self._args())])

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        import json

        args = json.dumps(self._args())
        yield {0: DeltaToolCall(name=info.output_tools[0].name, json_args=args[:10])}
        yield {0: DeltaToolCall(json_args=args[10:])}


@pytest.mark.parametrize("form", ["capability", "model and capability"])
@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
async def test_a_run_failing_output_validation_calls_the_model_next_time(
    tmp_path: Path, form: str, streamed: bool
) -> None:
    from pydantic_ai import UnexpectedModelBehavior

    url = "sqlite:///" + str(tmp_path / "c.db")
    script = FirstWrong()
    model = FunctionModel(script, stream_function=script.stream, model_name="first-wrong")

    def agent(cache: Cache) -> tuple[Agent[None, City], CacheCapability]:
        capability = CacheCapability(cache)
        inner = CachedModel(model, cache) if form == "model and capability" else model
        return Agent(inner, output_type=City, retries=0, capabilities=[capability]), capability

    async def run(agent: Agent[None, City]) -> City:
        if streamed:
            async with agent.run_stream("Largest city of France?") as result:
                return await result.get_output()
        return (await agent.run("Largest city of France?")).output

    with Cache(url) as cache:
        failing, capability = agent(cache)
        with pytest.raises(UnexpectedModelBehavior, match="retries"):
            await run(failing)
        assert capability.stats.rejected == 1
    with Cache(url) as cache:
        (entry,) = cache.entries()
        assert entry.status == "rejected"  # what a reviewer sees in the sheet
        assert "run failed" in entry.note and "UnexpectedModelBehavior" in entry.note
        fixed, _ = agent(cache)
        assert await run(fixed) == City(name="Paris", population=2_100_000)
        assert script.calls == 2  # the rejected answer was not replayed
        assert await run(fixed) == City(name="Paris", population=2_100_000)
        assert script.calls == 2  # the good answer is
        (entry,) = cache.entries()
        assert entry.status == ""


@pytest.fixture(params=["sqlite", "redis", "sheets"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path / "c.db")
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return request.getfixturevalue("sheet").url  # type: ignore[no-any-return]


async def test_the_rejection_reaches_every_store(
    request: pytest.FixtureRequest, store_url: str
) -> None:
    """On stores written through the outbox the mark follows the answer it marks, in order."""
    from pydantic_ai import UnexpectedModelBehavior

    script = FirstWrong()
    model = FunctionModel(script, model_name="first-wrong")
    with Cache(store_url) as cache:
        agent = Agent(model, output_type=City, retries=0, capabilities=[CacheCapability(cache)])
        with pytest.raises(UnexpectedModelBehavior):
            await agent.run("Largest city of France?")
        if store_url.startswith("sheets://"):
            assert cache.flush(timeout=30)
            (row,) = request.getfixturevalue("sheet").rows()
            assert row["status"] == "rejected" and "run failed" in row["note"]
        # A queued rejection, flushed or not, already makes the entry a miss here.
        assert (await agent.run("Largest city of France?")).output.population == 2_100_000
        assert script.calls == 2
        assert cache.flush(timeout=30)
    if store_url.startswith("sheets://"):
        sheet: Sheet = request.getfixturevalue("sheet")
        (row,) = sheet.rows()
        # The reviewer sees the good answer, and in the note the rejected one it replaced.
        assert row["status"] == "" and "2100000" in row["response"]
        assert "a lot" in row["note"]
    with Cache(store_url) as cache:
        agent = Agent(model, output_type=City, retries=0, capabilities=[CacheCapability(cache)])
        assert (await agent.run("Largest city of France?")).output.population == 2_100_000
        assert script.calls == 2
        (entry,) = cache.entries()
        assert entry.status == ""


async def test_an_output_validator_failing_rejects_the_answer(cache: Cache) -> None:
    from pydantic_ai import ModelRetry, UnexpectedModelBehavior

    script = ScriptedModel("no digits here")
    agent: Agent[None, str] = Agent(
        function_model(script), retries=0, capabilities=[CacheCapability(cache)]
    )
    want_digits = True

    @agent.output_validator
    def has_digits(output: str) -> str:
        if want_digits and not any(c.isdigit() for c in output):
            raise ModelRetry("answer with digits")
        return output

    with pytest.raises(UnexpectedModelBehavior):
        await agent.run("What is 2+2?")
    want_digits = False
    assert (await agent.run("What is 2+2?")).output == "no digits here"
    assert script.calls == 2


async def test_a_failed_run_rejects_only_its_own_answer(cache: Cache) -> None:
    from pydantic_ai import UnexpectedModelBehavior

    def by_question(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        question = str(messages[0].parts[-1].content)  # type: ignore[union-attr]
        population: Any = "a lot" if "bad" in question else 1
        return ModelResponse(
            parts=[ToolCallPart(info.output_tools[0].name, {"name": "X", "population": population})]
        )

    capability = CacheCapability(cache)
    agent = Agent(
        FunctionModel(by_question, model_name="q"),
        output_type=City,
        retries=0,
        capabilities=[capability],
    )
    good, bad = await asyncio.gather(
        agent.run("good question"), agent.run("bad question"), return_exceptions=True
    )
    assert not isinstance(good, BaseException) and good.output.population == 1
    assert isinstance(bad, UnexpectedModelBehavior)
    statuses = {prompt_text(e.prompt): e.status for e in cache.entries()}
    assert statuses == {"good question": "", "bad question": "rejected"}


async def test_a_run_failing_for_another_reason_rejects_nothing(
    cache: Cache, script: ScriptedModel
) -> None:
    agent: Agent[None, str] = Agent(function_model(script), capabilities=[CacheCapability(cache)])

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two integers."""
        raise RuntimeError("a bug in the tool, not in the model's answer")

    with pytest.raises(RuntimeError, match="bug in the tool"):
        await agent.run("What is 2+2?")
    (entry,) = cache.entries()  # the model's tool call
    assert entry.status == ""


# -- a streamed hit replays the miss's deltas (issue 13) -------------------------------------


async def _stream_pieces(agent: Agent[None, Any], prompt: str) -> tuple[list[str], int]:
    """(text deltas as stream_text yields them, start + delta events of the model stream)."""
    from pydantic_ai.messages import PartDeltaEvent, PartStartEvent

    async with agent.run_stream_events(prompt) as events:
        counted = [e async for e in events if isinstance(e, (PartStartEvent, PartDeltaEvent))]
    async with agent.run_stream(prompt) as result:
        pieces = [t async for t in result.stream_text(delta=True, debounce_by=None)]
    return pieces, len(counted)


async def test_a_streamed_hit_yields_the_deltas_the_miss_streamed(cache: Cache) -> None:
    words = "one two three four five six seven eight nine ten"
    script = ScriptedModel(words)
    model = CachedModel(function_model(script), cache)
    agent: Agent[None, str] = Agent(model)
    from pydantic_ai.messages import PartDeltaEvent, PartStartEvent

    async with agent.run_stream_events("Count to ten") as events:
        miss = [e async for e in events if isinstance(e, (PartStartEvent, PartDeltaEvent))]
    assert script.calls == 1 and len(miss) == 10
    pieces, hit_events = await _stream_pieces(agent, "Count to ten")
    assert script.calls == 1
    assert hit_events == 10
    assert pieces == [w + " " for w in words.split(" ")]
    # A non-streamed run of the same request still gets the whole answer.
    assert (await agent.run("Count to ten")).output == words + " "


async def test_streamed_tool_calls_replay_in_their_deltas(
    cache: Cache, script: ScriptedModel
) -> None:
    from pydantic_ai.messages import PartDeltaEvent, PartStartEvent

    agent = Agent(CachedModel(function_model(script), cache), output_type=City)
    runs = []
    for _ in range(2):
        async with agent.run_stream_events("Largest city?") as events:
            runs.append(
                [
                    (type(e).__name__, getattr(getattr(e, "delta", None), "args_delta", None))
                    async for e in events
                    if isinstance(e, (PartStartEvent, PartDeltaEvent))
                ]
            )
    assert script.calls == 1
    assert runs[0] == runs[1]
    assert runs[0] == [("PartStartEvent", None), ("PartDeltaEvent", '"population": 2100000}')]


async def test_openai_stream_replays_its_chunks(cache: Cache, openai_stub: OpenAIStub) -> None:
    agent: Agent[None, str] = Agent(CachedModel(openai_model(openai_stub), cache))
    runs = []
    async with agent:
        for _ in range(2):
            async with agent.run_stream("Say something long enough") as result:
                runs.append([t async for t in result.stream_text(delta=True, debounce_by=None)])
    assert openai_stub.count == 1
    assert runs[0] == runs[1]
    assert len(runs[0]) > 5 and {len(p) for p in runs[0][:-1]} == {5}  # the stub's 5-char chunks


async def test_an_edited_streamed_answer_replays_as_one_chunk(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "c.db")
    script = ScriptedModel("one two three")
    with Cache(url) as cache:
        agent: Agent[None, str] = Agent(CachedModel(function_model(script), cache))
        async with agent.run_stream("Count") as result:
            assert await result.get_output() == "one two three "
    _edit(url, "one two three \n", "1, 2, 3\n")
    with Cache(url) as cache:
        agent = Agent(CachedModel(function_model(script), cache))
        async with agent.run_stream("Count") as result:
            pieces = [t async for t in result.stream_text(delta=True, debounce_by=None)]
    assert pieces == ["1, 2, 3"]
    assert script.calls == 1


# -- per-run control: modes, override, samples (issue 13) ------------------------------------


class Counting:
    """Answers ``answer <n>`` on its n-th call, streamed in two deltas."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        return ModelResponse(parts=[TextPart(f"answer {self.calls}")])

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        self.calls += 1
        yield "answer "
        yield str(self.calls)


def counting_agent(cache: Cache, **options: Any) -> tuple[Agent[None, str], Counting]:
    counting = Counting()
    model = FunctionModel(counting, stream_function=counting.stream, model_name="counting")
    return Agent(CachedModel(model, cache, **options)), counting


async def _ask(agent: Agent[None, str], streamed: bool) -> str:
    if streamed:
        async with agent.run_stream("Question?") as result:
            return await result.get_output()
    return (await agent.run("Question?")).output


@pytest.mark.usefixtures("run_sync_loop")
def test_replay_raises_before_the_model_is_called_run_sync(cache: Cache) -> None:
    from sheetcache import CacheMissError

    agent, counting = counting_agent(cache)
    with cache.override(mode="replay"), pytest.raises(CacheMissError):
        agent.run_sync("Question?")
    assert counting.calls == 0
    assert agent.run_sync("Question?").output == "answer 1"
    with cache.override(mode="replay"):
        assert agent.run_sync("Question?").output == "answer 1"  # a stored answer is served
    assert counting.calls == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
async def test_replay_raises_before_the_model_is_called(cache: Cache, streamed: bool) -> None:
    from sheetcache import CacheMissError

    agent, counting = counting_agent(cache)
    with cache.override(mode="replay"), pytest.raises(CacheMissError):
        await _ask(agent, streamed)
    assert counting.calls == 0
    assert list(cache.entries()) == []
    # The mode set on the cache itself (as $SHEETCACHE_MODE does) works the same way.
    with Cache(cache.backend, mode="replay") as ci:
        ci_agent, ci_counting = counting_agent(ci)
        with pytest.raises(CacheMissError, match="replay"):
            await _ask(ci_agent, streamed)
        assert ci_counting.calls == 0


async def test_a_replay_miss_says_what_changed(cache: Cache) -> None:
    from sheetcache import CacheMissError

    agent, counting = counting_agent(cache)
    await agent.run("Question?", model_settings={"temperature": 0.2})
    with cache.override(mode="replay"), pytest.raises(CacheMissError) as raised:
        await agent.run("Question?", model_settings={"temperature": 0.7})
    assert "parts.settings.temperature: 0.2 → 0.7" in str(raised.value)
    assert counting.calls == 1


async def test_replay_raises_for_a_request_that_has_no_key(cache: Cache) -> None:
    from sheetcache import CacheMissError

    agent, counting = counting_agent(cache, namespace="ns")
    unkeyable = {"temperature": float("nan")}  # JSON, hence a key, has no NaN
    with cache.override(mode="replay"), pytest.raises(CacheMissError, match="no cache key"):
        await agent.run("Question?", model_settings=unkeyable)  # type: ignore[arg-type]
    assert counting.calls == 0
    # Outside replay such a request is answered uncached, never failed.
    assert (await agent.run("Question?", model_settings=unkeyable)).output == "answer 1"  # type: ignore[arg-type]


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
async def test_refresh_calls_and_stores_over_the_old_answer(cache: Cache, streamed: bool) -> None:
    agent, counting = counting_agent(cache)
    assert await _ask(agent, streamed) == "answer 1"
    assert await _ask(agent, streamed) == "answer 1"
    with cache.override(mode="refresh"):
        assert await _ask(agent, streamed) == "answer 2"
    assert counting.calls == 2
    assert await _ask(agent, streamed) == "answer 2"  # the refreshed answer is what is stored
    assert counting.calls == 2
    assert len(list(cache.entries())) == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
async def test_off_bypasses_the_cache(cache: Cache, streamed: bool) -> None:
    agent, _counting = counting_agent(cache)
    with cache.override(mode="off"):
        assert await _ask(agent, streamed) == "answer 1"
        assert await _ask(agent, streamed) == "answer 2"
    assert list(cache.entries()) == []
    assert await _ask(agent, streamed) == "answer 3"
    with cache.override(mode="off"):
        assert await _ask(agent, streamed) == "answer 4"  # not served from the cache either


async def test_an_override_holds_for_its_own_task_only(cache: Cache) -> None:
    from sheetcache import CacheMissError

    agent, counting = counting_agent(cache)

    async def in_replay() -> str:
        with cache.override(mode="replay"):
            return await agent.run("Other question?")  # type: ignore[return-value]

    replayed, plain = await asyncio.gather(
        in_replay(), agent.run("Question?"), return_exceptions=True
    )
    assert isinstance(replayed, CacheMissError)
    assert not isinstance(plain, BaseException) and plain.output == "answer 1"
    assert counting.calls == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
async def test_samples_keeps_n_answers_and_rotates(cache: Cache, streamed: bool) -> None:
    agent, counting = counting_agent(cache, samples=2)
    outputs = [await _ask(agent, streamed) for _ in range(6)]
    assert counting.calls == 2
    assert outputs[:2] == ["answer 1", "answer 2"]
    assert sorted(outputs[2:]) == ["answer 1", "answer 1", "answer 2", "answer 2"]
    assert len(list(cache.entries())) == 2  # each sample is a row of its own
    with pytest.raises(ConfigError, match="samples"):
        CachedModel(FunctionModel(counting), cache, samples=0)


async def test_samples_streamed_replays_the_deltas(cache: Cache) -> None:
    agent, counting = counting_agent(cache, samples=2)
    runs = []
    for _ in range(4):
        async with agent.run_stream("Question?") as result:
            runs.append([t async for t in result.stream_text(delta=True, debounce_by=None)])
    assert counting.calls == 2
    assert sorted(map(tuple, runs)) == [("answer ", "1")] * 2 + [("answer ", "2")] * 2


# -- usage recorded for the savings stats (issue 14) -----------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
async def test_usage_is_stored_and_each_hit_adds_to_saved_tokens(
    script: ScriptedModel, streamed: bool
) -> None:
    cache = Cache("memory://")
    agent = Agent(CachedModel(function_model(script), cache))

    async def ask() -> Any:
        if streamed:
            async with agent.run_stream("What is 2+2?") as result:
                await result.get_output()
            return result
        return await agent.run("What is 2+2?")

    first = await ask()
    (entry,) = cache.entries()
    usage = {
        "model": "scripted",
        "provider": "function",
        "input_tokens": first.usage.input_tokens,
        "output_tokens": first.usage.output_tokens,
    }
    assert entry.metadata == {"usage": usage} and usage["input_tokens"] > 0
    tokens = usage["input_tokens"] + usage["output_tokens"]
    assert cache.stats.saved_tokens == 0
    await ask()
    assert cache.stats.saved_tokens == tokens
    await ask()
    assert cache.stats.saved_tokens == 2 * tokens
    assert cache.lookup(entry.prompt, **entry.key_parts).metadata["usage"] == usage


async def test_openai_usage_names_the_model_and_provider(openai_stub: OpenAIStub) -> None:
    cache = Cache("memory://")
    agent: Agent[None, str] = Agent(CachedModel(openai_model(openai_stub), cache))
    async with agent:
        first = await agent.run("hi")
        await agent.run("hi")
    (entry,) = cache.entries()
    assert entry.metadata["usage"] == {
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": first.usage.input_tokens,
        "output_tokens": first.usage.output_tokens,
    }
    assert cache.stats.saved_tokens == first.usage.input_tokens + first.usage.output_tokens


@pytest.mark.parametrize(
    "deltas",
    ["[[0,[3,3]]]", "[[0,[]]]", "[[1,[14]]]", "[[0,[-1]]]", '"nonsense"', "[[0,[20,-6]]]"],
    ids=["short", "empty", "no-such-part", "whole-marker", "not-a-list", "negative"],
)
async def test_damaged_delta_boundaries_replay_the_answer_whole(
    tmp_path: Path, deltas: str
) -> None:
    url = "sqlite:///" + str(tmp_path / "c.db")
    script = ScriptedModel("one two three")
    with Cache(url) as cache:
        agent: Agent[None, str] = Agent(CachedModel(function_model(script), cache))
        async with agent.run_stream("Count") as result:
            await result.get_output()
    _edit(url, '{"deltas":[[0,[4,4,6]]]', '{"deltas":' + deltas)
    with Cache(url) as cache:
        agent = Agent(CachedModel(function_model(script), cache))
        async with agent.run_stream("Count") as result:
            pieces = [t async for t in result.stream_text(delta=True, debounce_by=None)]
    assert pieces == ["one two three "]
    assert script.calls == 1


async def test_thinking_and_text_replay_in_their_deltas(cache: Cache) -> None:
    from pydantic_ai.messages import PartDeltaEvent, PartStartEvent
    from pydantic_ai.models.function import DeltaThinkingPart

    calls = 0

    async def think(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        nonlocal calls
        calls += 1
        yield {0: DeltaThinkingPart(content="Two and ")}
        yield {0: DeltaThinkingPart(content="two.", signature="sig-1")}
        yield "It is "
        yield "4."

    agent: Agent[None, str] = Agent(
        CachedModel(FunctionModel(stream_function=think, model_name="thinker"), cache)
    )

    def piece(event: Any) -> tuple[str, int, str]:
        text = (
            event.part.content if isinstance(event, PartStartEvent) else event.delta.content_delta
        )
        return type(event).__name__, event.index, text

    runs = []
    for _ in range(2):
        async with agent.run_stream_events("What is 2+2?") as events:
            runs.append(
                [piece(e) async for e in events if isinstance(e, (PartStartEvent, PartDeltaEvent))]
            )
    assert calls == 1
    # The same pieces of thinking and text; the signature comes with the whole part.
    assert (
        runs[0]
        == runs[1]
        == [
            ("PartStartEvent", 0, "Two and "),
            ("PartDeltaEvent", 0, "two."),
            ("PartStartEvent", 1, "It is "),
            ("PartDeltaEvent", 1, "4."),
        ]
    )
    async with agent.run_stream("What is 2+2?") as result:
        assert await result.get_output() == "It is 4."
        response = result.all_messages()[-1]
    assert isinstance(response, ModelResponse)
    thinking = response.parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert (thinking.content, thinking.signature) == ("Two and two.", "sig-1")


async def test_openai_stream_cancelled_midway_is_not_stored(
    cache: Cache, openai_stub: OpenAIStub
) -> None:
    model = CachedModel(openai_model(openai_stub), cache)
    agent: Agent[None, str] = Agent(model)
    async with agent:
        async with agent.run_stream("Say something long enough") as result:
            async for _text in result.stream_text(delta=True, debounce_by=None):
                await result.cancel()  # the user stops the answer after its first words
                break
        assert list(cache.entries()) == []
        assert model.stats.not_stored == 1
        async with agent.run_stream("Say something long enough") as result:
            assert await result.get_output() == "echo: Say something long enough"
    assert openai_stub.count == 2
    assert len(list(cache.entries())) == 1


@pytest.mark.usefixtures("run_sync_loop")
def test_the_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/pydantic-ai.md's first Python block, as a reader would paste it."""
    import re

    doc = (Path(__file__).parents[1] / "docs" / "pydantic-ai.md").read_text()
    block = re.search(r"```python\n(.*?)```", doc, re.S)
    assert block is not None and "FunctionModel" in block.group(1)
    exec(compile(block.group(1), "docs/pydantic-ai.md", "exec"), {})
    out = capsys.readouterr().out
    assert "replay mode: no stored answer" in out
    assert re.search(r"^[1-9][0-9]* tokens saved$", out, re.M)
