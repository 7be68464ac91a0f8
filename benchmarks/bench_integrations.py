"""Integration benchmark: what a hit costs through the transport, the proxy's core and
LangChain, against baselines measured in the same run.

Run: ``python benchmarks/bench_integrations.py [--n 2000]``.

Figures are medians per call, in microseconds, on a memory store (the store's own cost is
in bench_core; this measures what each integration adds):

- ``get_or_call hit``: the core's hit, with the same prompt and key parts the transport uses;
- ``httpx + MockTransport``: an httpx POST answered by a mock, no cache: the floor of any
  transport-level hit;
- ``httpx + CacheTransport hit``: the same POST answered by the cache;
- ``httpx stream``: a 21-event SSE body read chunk by chunk, mock vs a replayed hit (the
  stream path runs the lookup in a worker thread, so this includes a thread start);
- ``openai SDK + mock`` vs ``openai SDK + CacheTransport hit``: the same through the SDK;
- ``LangChain InMemoryCache`` vs ``LangChainCache hit``: a lookup, with LangChain's prompt and
  llm_string as a chat model passes them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson

from sheetcache import Cache
from sheetcache.transport import CacheTransport

MESSAGES = [
    {"role": "system", "content": "You are a careful assistant. Answer briefly. " * 20},
    {"role": "user", "content": "What is the capital of France? " * 10},
]
BODY = {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.2, "max_tokens": 256}
ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Paris."}}],
    "usage": {"prompt_tokens": 300, "completion_tokens": 2, "total_tokens": 302},
}  # fmt: skip
URL = "https://api.openai.com/v1/chat/completions"


def _mock(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=ANSWER)


def median_us(fn: Callable[[], Any], n: int) -> float:
    for _ in range(min(200, n)):  # warm up
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    content = orjson.dumps(BODY)
    rows: list[tuple[str, float, str]] = []

    cache = Cache("memory://")
    request = dict(BODY)
    prompt = request.pop("messages")
    model = request.pop("model")
    parts = {
        "model": model,
        "request": request,
        "endpoint": "POST api.openai.com/v1/chat/completions",
        "integration": "http-v1",
    }
    core_cache = Cache("memory://", namespace="core-baseline")
    core_cache.get_or_call(prompt, lambda p: "Paris.", **parts)
    core = median_us(lambda: core_cache.get_or_call(prompt, lambda p: "x", **parts), n)
    rows.append(("get_or_call hit", core, "1.00x (baseline)"))

    plain = httpx.Client(transport=httpx.MockTransport(_mock))
    floor = median_us(lambda: plain.post(URL, content=content), n)
    rows.append(("httpx + MockTransport (no cache)", floor, "1.00x (baseline)"))
    cached_client = httpx.Client(
        transport=CacheTransport(cache, transport=httpx.MockTransport(_mock))
    )
    cached_client.post(URL, content=content)
    hit = median_us(lambda: cached_client.post(URL, content=content), n)
    rows.append(("httpx + CacheTransport hit", hit, f"{hit / floor:.2f}x httpx+mock"))

    sse = (
        b"".join(
            b'data: {"choices":[{"index":0,"delta":{"content":"w%d "}}]}\n\n' % i for i in range(20)
        )
        + b"data: [DONE]\n\n"
    )

    def _mock_sse(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    stream_body = orjson.dumps({**BODY, "stream": True})

    def read_stream(client: httpx.Client) -> Callable[[], Any]:
        def run() -> None:
            with client.stream("POST", URL, content=stream_body) as response:
                for _ in response.iter_bytes():
                    pass

        return run

    sse_plain = httpx.Client(transport=httpx.MockTransport(_mock_sse))
    sse_cached = httpx.Client(
        transport=CacheTransport(cache, transport=httpx.MockTransport(_mock_sse))
    )
    read_stream(sse_cached)()
    sse_floor = median_us(read_stream(sse_plain), n)
    sse_hit = median_us(read_stream(sse_cached), n)
    rows.append(("httpx stream + MockTransport (no cache)", sse_floor, "1.00x (baseline)"))
    rows.append(
        ("httpx stream + CacheTransport hit", sse_hit, f"{sse_hit / sse_floor:.2f}x stream+mock")
    )

    try:
        import openai
    except ImportError:
        print("openai not installed: SDK rows skipped")
    else:
        sdk_plain = openai.OpenAI(api_key="sk-bench", http_client=plain)
        sdk_cached = openai.OpenAI(api_key="sk-bench", http_client=cached_client)

        def ask(client: Any) -> Callable[[], Any]:
            return lambda: client.chat.completions.create(**BODY)

        sdk_floor = median_us(ask(sdk_plain), n)
        sdk_hit = median_us(ask(sdk_cached), n)
        rows.append(("openai SDK + MockTransport (no cache)", sdk_floor, "1.00x (baseline)"))
        rows.append(
            ("openai SDK + CacheTransport hit", sdk_hit, f"{sdk_hit / sdk_floor:.2f}x SDK+mock")
        )

    try:
        from langchain_core.caches import InMemoryCache
        from langchain_core.load import dumps
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
        from langchain_core.outputs import ChatGeneration

        from sheetcache.langchain import LangChainCache
    except ImportError:
        print("langchain-core not installed: LangChain rows skipped")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lc_prompt = dumps(
                [SystemMessage(MESSAGES[0]["content"]), HumanMessage(MESSAGES[1]["content"])]
            )
        llm_string = (
            '{"id": ["langchain", "chat_models", "openai", "ChatOpenAI"], "kwargs": '
            '{"model_name": "gpt-4o", "temperature": 0.2}, "lc": 1, "type": "constructor"}'
            "---[('stop', None)]"
        )
        generations = [ChatGeneration(message=AIMessage("Paris."))]
        memory = InMemoryCache()
        memory.update(lc_prompt, llm_string, generations)
        ours = LangChainCache(Cache("memory://"))
        ours.update(lc_prompt, llm_string, generations)
        base = median_us(lambda: memory.lookup(lc_prompt, llm_string), n)
        lc_hit = median_us(lambda: ours.lookup(lc_prompt, llm_string), n)
        rows.append(("LangChain InMemoryCache lookup", base, "1.00x (baseline)"))
        rows.append(
            ("LangChainCache hit (memory store)", lc_hit, f"{lc_hit / base:.1f}x InMemoryCache")
        )

    width = max(len(name) for name, _, _ in rows)
    print(f"median per call over n={n}")
    for name, us, ratio in rows:
        print(f"  {name:<{width}}  {us:9.1f} us   {ratio}")


if __name__ == "__main__":
    main()
