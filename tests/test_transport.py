"""CacheTransport / AsyncCacheTransport with the real openai and anthropic SDKs against a
local stub over loopback HTTP, on real SQLite files (and the Sheets emulator)."""

# ruff: noqa: F811  (the fixtures imported from sheets_fixtures are used as parameters)

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest
from llm_stub import LLMStub
from redis_fixtures import redis_server_fixture, redis_url_fixture  # noqa: F401
from sheets_fixtures import Sheet, emulator, sheet  # noqa: F401

from sheetcache import Cache
from sheetcache.transport import AsyncCacheTransport, CacheTransport

SECRET = "sk-test-5ecret-key-never-stored"
MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as s:
        yield s


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cache.db"


@pytest.fixture
def cache(db: Path) -> Iterator[Cache]:
    c = Cache(f"sqlite:///{db}")
    yield c
    c.close()


_open: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def oai(stub: LLMStub, cache: Cache, http: Any = httpx, key: str = SECRET) -> openai.OpenAI:
    client = http.Client(transport=CacheTransport(cache))
    _open.append(client)
    return openai.OpenAI(api_key=key, base_url=stub.url + "/v1", http_client=client, max_retries=0)


def claude(stub: LLMStub, cache: Cache, key: str = SECRET) -> anthropic.Anthropic:
    client = httpx2.Client(transport=CacheTransport(cache))
    _open.append(client)
    return anthropic.Anthropic(api_key=key, base_url=stub.url, http_client=client, max_retries=0)


def stored_bytes(db: Path) -> bytes:
    """Every byte of the SQLite file and its WAL, as an attacker with the file would see."""
    data = b""
    for path in (db, Path(f"{db}-wal")):
        if path.exists():
            data += path.read_bytes()
    return data


# -- OpenAI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("http", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_openai_repeat_is_a_hit(stub: LLMStub, cache: Cache, http: Any) -> None:
    client = oai(stub, cache, http)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    again = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert first.headers["x-sheetcache"] == "miss" and again.headers["x-sheetcache"] == "hit"
    assert again.parse().choices[0].message.content == "echo: What is 2+2?"
    assert again.parse().id == first.parse().id  # the stored answer, not a new call
    assert len(stub.posts()) == 1
    assert cache.stats.hits == 1


def test_openai_changed_setting_is_a_miss(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=1)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)
    assert len(stub.posts()) == 3


def test_api_key_and_body_key_order_do_not_matter(stub: LLMStub, cache: Cache) -> None:
    oai(stub, cache, key="sk-one").chat.completions.create(
        model="gpt-4o", messages=MESSAGES, temperature=0
    )
    oai(stub, cache, key="sk-two").chat.completions.create(
        model="gpt-4o", messages=MESSAGES, temperature=0
    )
    with httpx.Client(transport=CacheTransport(cache)) as raw:
        reordered = b'{"temperature":0,"messages":[{"content":"What is 2+2?","role":"user"}],"model":"gpt-4o"}'
        response = raw.post(
            stub.url + "/v1/chat/completions",
            content=reordered,
            headers={"authorization": "Bearer sk-three", "x-stainless-retry-count": "7"},
        )
    assert response.headers["x-sheetcache"] == "hit"
    assert len(stub.posts()) == 1


def test_different_host_or_path_is_a_miss(stub: LLMStub, cache: Cache) -> None:
    with LLMStub() as other:
        oai(stub, cache).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        oai(other, cache).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(other.posts()) == 1


def test_openai_stream_replays_the_same_chunks(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)

    def run() -> tuple[list[str], str]:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return [c.model_dump_json() for c in chunks], text

    first, text = run()
    again, text_again = run()
    assert len(stub.posts()) == 1
    assert text == text_again == "echo: What is 2+2? "
    assert again == first  # the same events, one SDK chunk each
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-sheetcache"] == "hit"
    assert len(list(raw.parse())) == len(first)


def test_stream_bytes_pass_through_with_event_boundaries(stub: LLMStub, cache: Cache) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    seen = []
    with httpx.Client(transport=CacheTransport(cache)) as raw:
        for _ in range(2):
            with raw.stream("POST", stub.url + "/v1/chat/completions", json=body) as response:
                seen.append((response.headers["x-sheetcache"], list(response.iter_raw())))
    (miss, miss_chunks), (hit, hit_chunks) = seen
    assert (miss, hit) == ("miss", "hit")
    assert b"".join(hit_chunks) == b"".join(miss_chunks)
    assert all(chunk.endswith(b"\n\n") and chunk.count(b"\n\n") == 1 for chunk in hit_chunks)
    assert hit_chunks[-1] == b"data: [DONE]\n\n"


def test_cut_off_stream_is_not_stored(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    stub.cut_stream = True
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    stub.cut_stream = False
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert len(stub.posts()) == 2


def test_abandoned_stream_is_not_stored(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert len(stub.posts()) == 2
    assert [e.key for e in cache.entries()] != []


def test_error_responses_are_not_stored(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    stub.fail_with = 503
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    stub.fail_with = None
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    assert len(stub.posts()) == 3
    assert len(list(cache.entries())) == 1


def test_other_routes_pass_through(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    client.models.list()
    response = client.models.with_raw_response.list()
    assert "x-sheetcache" not in response.headers
    assert len([r for r in stub.requests if r["method"] == "GET"]) == 2
    assert list(cache.entries()) == []


def test_responses_and_embeddings_are_cached(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    texts = [client.responses.create(model="gpt-4o", input="hello").output_text for _ in "ab"]
    vectors = [
        client.embeddings.create(model="text-embedding-3-small", input=["a", "bb"]) for _ in "ab"
    ]
    assert texts == ["echo: hello"] * 2
    assert vectors[0].data[1].embedding == vectors[1].data[1].embedding == [0.5, 2.0, 0.25]
    assert len(stub.posts()) == 2


async def test_openai_async_hit_and_stream(stub: LLMStub, cache: Cache) -> None:
    for http in (httpx, httpx2):
        cache.clear()
        before = len(stub.posts())
        transport = AsyncCacheTransport(cache)
        client = openai.AsyncOpenAI(
            api_key=SECRET, base_url=stub.url + "/v1", max_retries=0,
            http_client=http.AsyncClient(transport=transport),  # type: ignore[attr-defined]
        )  # fmt: skip
        first = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES
        )
        again = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES
        )
        assert (first.headers["x-sheetcache"], again.headers["x-sheetcache"]) == ("miss", "hit")
        counts = []
        for _ in range(2):
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )
            counts.append(len([c async for c in stream]))
        assert counts[0] == counts[1] > 3
        assert len(stub.posts()) == before + 2
        await client.close()


async def test_async_abandoned_stream_is_not_stored(stub: LLMStub, cache: Cache) -> None:
    client = openai.AsyncOpenAI(
        api_key=SECRET, base_url=stub.url + "/v1", max_retries=0,
        http_client=httpx.AsyncClient(transport=AsyncCacheTransport(cache)),
    )  # fmt: skip
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    await stream.__anext__()
    await stream.close()
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert len([c async for c in stream]) > 3
    assert len(stub.posts()) == 2
    await client.close()


def test_no_secret_in_the_stored_bytes(stub: LLMStub, cache: Cache, db: Path) -> None:
    client = oai(stub, cache)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    claude(stub, cache).messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
    cache.flush()
    assert stub.posts()[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # it did go upstream
    assert stub.posts()[2]["headers"]["authorization"] == f"Bearer {SECRET}"
    data = stored_bytes(db)
    assert b"What is 2+2?" in data  # the file does hold the entries
    assert SECRET.encode() not in data
    assert b"x-stainless" not in data.lower() and b"x-request-id" not in data.lower()


def test_store_is_readable(stub: LLMStub, cache: Cache, db: Path) -> None:
    oai(stub, cache).chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0)
    (entry,) = cache.entries()
    assert entry.prompt == MESSAGES
    assert entry.key_parts["model"] == "gpt-4o"
    assert entry.key_parts["request"] == {"temperature": 0}
    assert entry.value.startswith("echo: What is 2+2?\n\n--- sheetcache: HTTP response v1.")
    with sqlite3.connect(db) as conn:  # what someone opening the file sees
        (value,) = conn.execute("SELECT value FROM entries").fetchone()
    assert value.startswith("echo: What is 2+2?")


def _review(cache: Cache, old: str, new: str) -> None:
    """A reviewer edits the answer text of the only entry (SQLite: in place)."""
    (entry,) = cache.entries()
    entry.value = entry.value.replace(old, new, 1)
    cache.backend.put_many([entry])
    cache._l1.clear()


def test_reviewer_edit_is_served_in_the_provider_shape(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    _review(cache, "echo: What is 2+2?", "4")
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "4"
    assert answer.choices[0].finish_reason == "stop" and answer.usage is not None


def test_reviewer_edit_of_a_stream_keeps_its_events(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    first = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    (entry,) = cache.entries()
    entry.value = "Four." + entry.value[entry.value.index("\n\n--- sheetcache") :]
    cache.backend.put_many([entry])
    cache._l1.clear()
    again = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert len(again) == len(first)
    assert "".join(c.choices[0].delta.content or "" for c in again) == "Four."


# -- Anthropic (SDK 2.x takes httpx2 clients only) ---------------------------------------------


def test_anthropic_hit_and_changed_max_tokens(stub: LLMStub, cache: Cache) -> None:
    client = claude(stub, cache)
    first = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES
    )
    again = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES
    )
    assert (first.headers["x-sheetcache"], again.headers["x-sheetcache"]) == ("miss", "hit")
    assert again.parse().content[0].text == "echo: What is 2+2?"  # type: ignore[union-attr]
    client.messages.create(model="claude-sonnet-4-5", max_tokens=65, messages=MESSAGES)
    assert len(stub.posts()) == 2
    claude(stub, cache, key="another-key").messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES
    )
    assert len(stub.posts()) == 2


def test_anthropic_stream_replays_the_same_events(stub: LLMStub, cache: Cache) -> None:
    client = claude(stub, cache)

    def run() -> list[str]:
        stream = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES, stream=True
        )
        return [event.model_dump_json() for event in stream]

    first, again = run(), run()
    assert again == first and len(first) >= 6
    assert orjson.loads(first[-1])["type"] == "message_stop"
    assert len(stub.posts()) == 1


async def test_anthropic_async(stub: LLMStub, cache: Cache) -> None:
    client = anthropic.AsyncAnthropic(
        api_key=SECRET, base_url=stub.url, max_retries=0,
        http_client=httpx2.AsyncClient(transport=AsyncCacheTransport(cache)),
    )  # fmt: skip
    texts = []
    for _ in range(2):
        message = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES
        )
        texts.append(message.content[0].text)  # type: ignore[union-attr]
    counts = []
    for _ in range(2):
        stream = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES, stream=True
        )
        counts.append(len([e async for e in stream]))
    assert texts == ["echo: What is 2+2?"] * 2
    assert counts[0] == counts[1] >= 6
    assert len(stub.posts()) == 2
    await client.close()


def test_transport_needs_a_cache() -> None:
    with pytest.raises(TypeError, match=r"needs a sheetcache.Cache"):
        CacheTransport("sqlite:///x.db")  # type: ignore[arg-type]


# -- usage, savings, modes, single-flight ------------------------------------------------------


@pytest.fixture
def memory() -> Iterator[Cache]:
    """A memory store: it keeps entry metadata (usage) on every branch of the core."""
    c = Cache("memory://")
    yield c
    c.close()


def test_usage_is_recorded_and_hits_save_genai_prices_dollars(stub: LLMStub, memory: Cache) -> None:
    import genai_prices

    cache = memory
    client = oai(stub, cache)
    stub.input_tokens, stub.output_tokens = 1200, 345
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (entry,) = cache.entries()
    assert entry.metadata["usage"] == {
        "model": "gpt-4o", "provider": None, "input_tokens": 1200, "output_tokens": 345,
    }  # fmt: skip
    one = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1200, output_tokens=345), "gpt-4o"
    ).total_price
    stats = cache.stats
    assert stats.hits == 2 and stats.saved_tokens == 2 * 1545
    assert stats.saved_usd == pytest.approx(2 * float(one))


def test_stream_usage_is_recorded(stub: LLMStub, memory: Cache) -> None:
    cache = memory
    list(
        oai(stub, cache).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    list(
        claude(stub, cache).messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES, stream=True
        )
    )
    usages = sorted((e.metadata["usage"] for e in cache.entries()), key=lambda u: u["model"])
    assert usages == [
        {"model": "claude-sonnet-4-5", "provider": None, "input_tokens": 11, "output_tokens": 7},
        {"model": "gpt-4o", "provider": None, "input_tokens": 11, "output_tokens": 7},
    ]


def test_replay_mode_serves_hits_and_refuses_misses(stub: LLMStub, db: Path) -> None:
    with Cache(f"sqlite:///{db}") as recording:
        oai(stub, recording).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with Cache(f"sqlite:///{db}", mode="replay") as ci:
        client = oai(stub, ci)
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        with pytest.raises(openai.APIStatusError, match="replay mode") as caught:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=1)
        assert caught.value.status_code == 424
        with pytest.raises(openai.APIStatusError, match="replay mode"):
            list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        with pytest.raises(anthropic.APIStatusError, match="replay mode"):
            claude(stub, ci).messages.create(model="claude-x", max_tokens=5, messages=MESSAGES)
    assert len(stub.posts()) == 1  # nothing was sent in replay mode


async def test_replay_override_holds_for_async_and_streams(stub: LLMStub, cache: Cache) -> None:
    client = openai.AsyncOpenAI(
        api_key=SECRET, base_url=stub.url + "/v1", max_retries=0,
        http_client=httpx.AsyncClient(transport=AsyncCacheTransport(cache)),
    )  # fmt: skip
    with cache.override(mode="replay"):
        with pytest.raises(openai.APIStatusError, match="replay mode"):
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with pytest.raises(openai.APIStatusError, match="replay mode"):
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    sync = oai(stub, cache)
    with cache.override(mode="replay"), pytest.raises(openai.APIStatusError):
        list(sync.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert stub.posts() == []
    await client.close()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_concurrent_identical_calls_share_one_request(
    stub: LLMStub, cache: Cache, stream: bool
) -> None:
    import threading

    stub.gate = threading.Event()
    client = oai(stub, cache)
    results: list[str] = []

    def ask() -> None:
        answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream)
        if stream:
            results.append("".join(c.choices[0].delta.content or "" for c in answer if c.choices))
        else:
            results.append(answer.choices[0].message.content or "")

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    # Hold the first call upstream; without single-flight the others would arrive too.
    deadline = time.monotonic() + 1.5
    while len(stub.posts()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    stub.gate.set()
    for t in threads:
        t.join(30)
    assert len(stub.posts()) == 1
    assert len(results) == 4 and len(set(results)) == 1


# -- the Sheet a reviewer reads ------------------------------------------------------------------


def test_sheet_columns_are_readable_and_edits_are_served(stub: LLMStub, sheet: Sheet) -> None:
    with Cache(sheet.url) as cache:
        oai(stub, cache).chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0)
        cache.flush()
    (row,) = sheet.rows()
    assert row["model"] == "gpt-4o"
    assert "What is 2+2?" in str(row["prompt"]) and "sk-" not in str(row["prompt"])
    assert str(row["response"]).startswith("echo: What is 2+2?\n")
    column = list(row).index("response") + 1
    sheet.reviewer().update_cell(
        2, column, str(row["response"]).replace("echo: What is 2+2?", "4", 1)
    )
    with Cache(sheet.url) as cache:
        answer = oai(stub, cache).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, temperature=0
        )
    assert answer.choices[0].message.content == "4"
    assert len(stub.posts()) == 1


def test_a_foreign_entry_under_the_key_is_not_served(stub: LLMStub, cache: Cache) -> None:
    """Other code that stored a plain value under the transport's key never breaks the SDK."""
    client = oai(stub, cache)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (entry,) = cache.entries()
    cache.set(entry.prompt, "not an HTTP answer", **entry.key_parts)
    cache._l1.clear()
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "echo: What is 2+2?"
    assert len(stub.posts()) == 2


def test_errors_reach_the_sdk_with_their_headers(stub: LLMStub, cache: Cache) -> None:
    stub.fail_with = 429
    with httpx.Client(transport=CacheTransport(cache)) as raw:
        response = raw.post(stub.url + "/v1/chat/completions", json={"model": "m", "messages": []})
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "overloaded"
    assert "x-request-id" in response.headers  # retry-after and friends reach the SDK too
    assert response.headers["x-sheetcache"] == "miss"


@pytest.mark.parametrize(
    "content",
    ["nul \x00 inside", "a" * 1_000_000, "emoji 🎉 and RTL \u202e", '=HYPERLINK("x")'],
    ids=["nul", "1mb", "unicode", "formula"],
)
def test_hostile_text_round_trips(stub: LLMStub, cache: Cache, content: str) -> None:
    client = oai(stub, cache)
    messages = [{"role": "user", "content": content}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages)
    cache._l1.clear()
    again = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert again.choices[0].message.content == first.choices[0].message.content
    assert len(stub.posts()) == 1


def test_lone_surrogate_goes_through_uncached(stub: LLMStub, cache: Cache) -> None:
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"\\ud800"}]}'
    with httpx.Client(transport=CacheTransport(cache)) as raw:
        for _ in range(2):
            response = raw.post(stub.url + "/v1/chat/completions", content=body)
            assert response.status_code == 200 and "x-sheetcache" not in response.headers
    assert len(stub.posts()) == 2 and list(cache.entries()) == []


def test_stream_events_arrive_as_they_are_sent(stub: LLMStub, cache: Cache) -> None:
    import threading

    stub.mid_stream = threading.Event()
    stream = oai(stub, cache).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    chunks = iter(stream)
    next(chunks)
    assert not stub.mid_stream.is_set()  # the SDK has an event while the server holds the rest
    stub.mid_stream.set()
    assert len(list(chunks)) > 2


def test_responses_stream_is_stored_at_response_completed(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)

    def run() -> list[Any]:
        return list(client.responses.create(model="gpt-4o", input="hello", stream=True))

    first, again = run(), run()
    assert [e.type for e in again] == [e.type for e in first]
    assert first[-1].type == "response.completed"
    assert again[-1].response.output_text == "echo: hello"
    assert len(stub.posts()) == 1


def test_reviewer_edit_of_a_responses_stream(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    list(client.responses.create(model="gpt-4o", input="hello", stream=True))
    (entry,) = cache.entries()
    assert entry.value.startswith("echo: hello \n")
    _review(cache, "echo: hello ", "Hi there.")
    events = list(client.responses.create(model="gpt-4o", input="hello", stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Hi there."
    assert events[-1].response.output_text == "Hi there."


def test_reviewer_edit_in_the_anthropic_shape(stub: LLMStub, cache: Cache) -> None:
    client = claude(stub, cache)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
    _review(cache, "echo: What is 2+2?", "Four.")
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Four."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 7


# -- outages -----------------------------------------------------------------------------------


def _dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_store_never_breaks_the_sdk(stub: LLMStub) -> None:
    with Cache(f"redis://127.0.0.1:{_dead_port()}/0") as cache:
        client = oai(stub, cache)
        for _ in range(2):
            answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert answer.choices[0].message.content == "echo: What is 2+2?"
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert len(list(stream)) > 3
        assert cache.stats.errors > 0
        cache.close(timeout=0.5)


def test_a_dead_upstream_is_a_connection_error_and_stores_nothing(cache: Cache) -> None:
    http = httpx.Client(transport=CacheTransport(cache))
    _open.append(http)
    client = openai.OpenAI(
        api_key=SECRET, base_url=f"http://127.0.0.1:{_dead_port()}/v1", http_client=http,
        max_retries=0,
    )  # fmt: skip
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert list(cache.entries()) == []


def test_a_miss_carries_upstream_headers_and_a_hit_does_not(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    miss = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    hit = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert "x-request-id" in miss.headers  # the SDK's request_id works on a miss
    assert "x-request-id" not in hit.headers  # never stored, so never replayed


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_tool_calls_are_shown_and_their_edits_served(stub: LLMStub, cache: Cache) -> None:
    client = oai(stub, cache)
    first = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)
    (entry,) = cache.entries()
    shown = orjson.loads(entry.value[: entry.value.index("\n\n--- sheetcache")])
    assert shown == [{"tool_call": "weather", "arguments": '{"city": "Paris"}'}]
    _review(cache, '{\\"city\\": \\"Paris\\"}', '{\\"city\\": \\"Lyon\\"}')
    again = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)
    (call,) = again.choices[0].message.tool_calls or []
    assert orjson.loads(call.function.arguments) == {"city": "Lyon"}  # type: ignore[union-attr]
    assert call.id == first.choices[0].message.tool_calls[0].id  # type: ignore[index]
    assert len(stub.posts()) == 1


_KILLED_CHILD = """
import sys, httpx, openai
from sheetcache import Cache
from sheetcache.transport import CacheTransport
cache = Cache(sys.argv[1])
client = openai.OpenAI(api_key="sk-x", base_url=sys.argv[2],
                       http_client=httpx.Client(transport=CacheTransport(cache)))
stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}], stream=True)
next(iter(stream))
print("reading", flush=True)
sys.stdin.read()  # blocks until killed
"""


def test_a_process_killed_mid_stream_stores_nothing(
    stub: LLMStub, db: Path, subprocess_env: dict[str, str]
) -> None:
    import signal
    import subprocess
    import sys
    import threading

    stub.mid_stream = threading.Event()
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, f"sqlite:///{db}", stub.url + "/v1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=subprocess_env, text=True,
    ) as child:  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "reading"
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
            stub.mid_stream.set()
    with Cache(f"sqlite:///{db}") as cache:
        assert list(cache.entries()) == []
        stub.mid_stream = None
        client = oai(stub, cache)
        messages = [{"role": "user", "content": "q"}]
        assert (
            len(
                list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
            )
            > 2
        )
    assert len(stub.posts()) == 2


def test_query_parameters_key_but_credentials_in_them_never_do(
    stub: LLMStub, cache: Cache, db: Path
) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES}
    url = stub.url + "/v1/chat/completions"
    with httpx.Client(transport=CacheTransport(cache)) as raw:
        states = [
            raw.post(url, params=params, json=body).headers["x-sheetcache"]
            for params in (
                {"api-version": "2024-06-01", "api-key": SECRET},
                {"api-key": "another-key", "api-version": "2024-06-01"},
                {"api-version": "2025-01-01", "key": SECRET},
            )
        ]
    assert states == ["miss", "hit", "miss"]  # the version keys; the key in the URL does not
    cache.flush()
    assert SECRET.encode() not in stored_bytes(db)


_RACER = """
import sys, httpx, openai
from sheetcache import Cache
from sheetcache.transport import CacheTransport
with Cache(sys.argv[1]) as cache:
    client = openai.OpenAI(api_key="sk-x", base_url=sys.argv[2], max_retries=0,
                           http_client=httpx.Client(transport=CacheTransport(cache)))
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "race"}])
    print(answer.choices[0].message.content, flush=True)
"""


def test_processes_on_one_redis_store_send_one_request(
    stub: LLMStub, redis_url: str, subprocess_env: dict[str, str]
) -> None:
    """Cross-process single-flight, as in the core: N processes, one upstream call."""
    import subprocess
    import sys
    import threading

    stub.gate = threading.Event()
    command = [sys.executable, "-c", _RACER, redis_url, stub.url + "/v1"]
    racers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, env=subprocess_env, text=True)
        for _ in range(3)
    ]
    try:
        # Hold the first call upstream; without single-flight the others would arrive too.
        deadline = time.monotonic() + 5
        while len(stub.posts()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        stub.gate.set()
        outputs = [racer.communicate(timeout=60)[0].strip() for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
            racer.wait()
    assert outputs == ["echo: race"] * 3
    assert len(stub.posts()) == 1


def test_secret_named_body_fields_are_sent_but_never_keyed_or_stored(
    stub: LLMStub, cache: Cache, db: Path
) -> None:
    url = stub.url + "/v1/chat/completions"
    with httpx.Client(transport=CacheTransport(cache)) as raw:
        states = [
            raw.post(url, json={"model": "gpt-4o", "messages": MESSAGES, "api_key": key}).headers[
                "x-sheetcache"
            ]
            for key in (SECRET, "another")
        ]
    assert states == ["miss", "hit"]
    assert stub.posts()[0]["body"]["api_key"] == SECRET  # upstream got it
    cache.flush()
    assert SECRET.encode() not in stored_bytes(db)


@pytest.mark.parametrize(
    "damage",
    [
        lambda v: v[: v.index("\n\n--- sheetcache")],  # marker line deleted
        lambda v: v[:-10],  # JSON cut short
        lambda v: v.replace('"body":', '"bodx":'),  # a field renamed
    ],
    ids=["no-marker", "cut", "renamed"],
)
def test_a_damaged_entry_is_a_miss_not_an_error(stub: LLMStub, cache: Cache, damage: Any) -> None:
    client = oai(stub, cache)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (entry,) = cache.entries()
    entry.value = damage(entry.value)
    cache.backend.put_many([entry])
    cache._l1.clear()
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "echo: What is 2+2?"
    assert len(stub.posts()) == 2
