"""LiteLLM and DSPy through CacheTransport, as docs/transport.md tells their users to wire it.

Both are heavy and optional (not in the dev extra): these run where they are installed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import openai
import pytest
from llm_stub import LLMStub

from sheetcache import Cache
from sheetcache.transport import CacheTransport

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price download at import
litellm = pytest.importorskip("litellm")

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]
# LiteLLM's and DSPy's own import-time warnings (pydantic schema notes) are not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as s:
        yield s


@pytest.fixture
def cache() -> Iterator[Cache]:
    with Cache("memory://") as c:
        yield c


def test_litellm_with_an_openai_client(stub: LLMStub, cache: Cache) -> None:
    with httpx.Client(transport=CacheTransport(cache)) as http:
        client = openai.OpenAI(api_key="sk-x", base_url=stub.url + "/v1", http_client=http)
        texts = [
            litellm.completion(model="openai/gpt-4o", messages=MESSAGES, client=client)
            .choices[0]
            .message.content
            for _ in range(2)
        ]
    assert texts == ["echo: What is 2+2?"] * 2
    assert len(stub.posts()) == 1 and cache.stats.hits == 1


def test_litellm_and_dspy_with_a_client_session(
    stub: LLMStub, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = httpx.Client(transport=CacheTransport(cache))
    monkeypatch.setattr(litellm, "client_session", http)
    for _ in range(2):
        litellm.completion(
            model="openai/gpt-4o", messages=MESSAGES, api_base=stub.url + "/v1", api_key="sk-y"
        )
    assert len(stub.posts()) == 1
    dspy = pytest.importorskip("dspy")
    lm = dspy.LM(
        "openai/gpt-4o", api_base=stub.url + "/v1", api_key="sk-z", cache=False, engine="litellm"
    )
    assert lm("Hello?") == lm("Hello?") == ["echo: Hello?"]
    assert len(stub.posts()) == 2
    http.close()
