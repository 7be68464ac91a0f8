"""``sheetcache proxy``: the openai SDK pointed at the proxy, which points at a local stub."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from llm_stub import LLMStub
from typer.testing import CliRunner

from sheetcache import Cache
from sheetcache.cli import app as cli_app
from sheetcache.proxy import TOKEN_HEADER, create_app

SECRET = "sk-proxy-5ecret-key-never-stored"
MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


class Proxy:
    """uvicorn serving the proxy app on a free loopback port, in a thread."""

    def __init__(self, cache: Cache, upstream: str, token: str | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(create_app(cache, upstream, token=token), log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> Proxy:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:  # polling uvicorn's own flag, with a deadline
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


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


@pytest.fixture
def proxy(cache: Cache, stub: LLMStub) -> Iterator[Proxy]:
    with Proxy(cache, stub.url) as p:
        yield p


def client(proxy: Proxy, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key=SECRET, base_url=proxy.url + "/v1", max_retries=0, **kwargs)


def test_repeat_through_the_proxy_is_a_hit(proxy: Proxy, stub: LLMStub) -> None:
    with client(proxy) as c:
        first = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
        again = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert (first.headers["x-sheetcache"], again.headers["x-sheetcache"]) == ("miss", "hit")
    assert again.parse().choices[0].message.content == "echo: What is 2+2?"
    assert len(stub.posts()) == 1


def test_stream_replay_through_the_proxy(proxy: Proxy, stub: LLMStub) -> None:
    with client(proxy) as c:
        runs = []
        for _ in range(2):
            stream = c.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            runs.append([chunk.model_dump_json() for chunk in stream])
    assert runs[0] == runs[1] and len(runs[0]) > 3
    assert len(stub.posts()) == 1


def test_stream_passes_through_as_it_arrives(proxy: Proxy, stub: LLMStub) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client() as raw,
        raw.stream("POST", proxy.url + "/v1/chat/completions", json=body) as r,
    ):
        assert r.headers["x-sheetcache"] == "miss"
        assert r.headers["content-type"].startswith("text/event-stream")
        chunks = list(r.iter_raw())
    assert b"".join(chunks).endswith(b"data: [DONE]\n\n")


def test_auth_header_reaches_upstream_but_not_the_store(
    proxy: Proxy, stub: LLMStub, cache: Cache, db: Path
) -> None:
    with client(proxy) as c:
        c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        list(c.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    cache.flush()
    assert stub.posts()[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    data = b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    assert b"What is 2+2?" in data
    assert SECRET.encode() not in data


def test_token_is_required_when_set(cache: Cache, stub: LLMStub) -> None:
    with Proxy(cache, stub.url, token="let-me-in") as proxy:
        for headers in ({}, {TOKEN_HEADER: "wrong"}):
            with (
                client(proxy, default_headers=headers) as c,
                pytest.raises(openai.AuthenticationError),
            ):
                c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert stub.posts() == []
        with client(proxy, default_headers={TOKEN_HEADER: "let-me-in"}) as c:
            assert c.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        (request,) = stub.posts()
        assert TOKEN_HEADER not in request["headers"]  # the proxy's token stays with the proxy


def test_other_routes_pass_through(proxy: Proxy, stub: LLMStub) -> None:
    with client(proxy) as c:
        assert [m.id for m in c.models.list()] == ["gpt-4o"]
    assert [r["path"] for r in stub.requests] == ["/v1/models"]


def test_healthz_reports_store_and_stats(proxy: Proxy, cache: Cache) -> None:
    with client(proxy) as c:
        for _ in range(2):
            c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    health = httpx.get(proxy.url + "/healthz").json()
    assert health["status"] == "ok"
    assert health["store"] == {"url": cache.url, "reachable": True, "error": None}
    assert health["stats"]["hits"] == 1 and health["stats"]["misses"] == 1
    assert health["stats"]["hit_rate"] == 0.5


def test_upstream_down_is_a_502(cache: Cache) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with Proxy(cache, dead) as proxy:
        response = httpx.post(
            proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []}
        )
    assert response.status_code == 502
    assert "upstream" in response.json()["error"]["message"]


def test_cli_refuses_other_hosts_without_a_token() -> None:
    result = CliRunner().invoke(
        cli_app,
        [
            "proxy",
            "--upstream",
            "https://api.openai.com",
            "--host",
            "0.0.0.0",
            "--url",
            "memory://",
        ],
    )
    assert result.exit_code == 2
    assert "--token" in result.output


def test_events_arrive_before_the_stream_ends(proxy: Proxy, stub: LLMStub) -> None:
    stub.mid_stream = threading.Event()
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client(timeout=30) as raw,
        raw.stream("POST", proxy.url + "/v1/chat/completions", json=body) as r,
    ):
        lines = r.iter_lines()
        first = next(line for line in lines if line)
        # The upstream is still holding the rest of the stream: this event came through live.
        assert not stub.mid_stream.is_set()
        assert first.startswith("data: {")
        stub.mid_stream.set()
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"


def test_anthropic_sdk_through_the_proxy(proxy: Proxy, stub: LLMStub) -> None:
    import anthropic

    with anthropic.Anthropic(api_key=SECRET, base_url=proxy.url, max_retries=0) as c:
        texts = [
            c.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
            .content[0]
            .text  # type: ignore[union-attr]
            for _ in range(2)
        ]
        events = [
            [e.type for e in c.messages.create(
                model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES, stream=True)]
            for _ in range(2)
        ]  # fmt: skip
    assert texts == ["echo: What is 2+2?"] * 2
    assert events[0] == events[1] and events[0][-1] == "message_stop"
    assert len(stub.posts()) == 2
    assert stub.posts()[0]["headers"]["authorization"] == f"Bearer {SECRET}"


def test_healthz_says_when_the_store_is_down(stub: LLMStub) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Cache(f"redis://127.0.0.1:{port}/0") as cache, Proxy(cache, stub.url) as proxy:
        with client(proxy) as c:  # calls still go through: the cache fails open
            assert c.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        health = httpx.get(proxy.url + "/healthz").json()
        cache.close(timeout=0.5)
    assert health["status"] == "degraded"
    # The first failure names the connection; after it the circuit breaker skips the store.
    error = health["store"]["error"]
    assert health["store"]["reachable"] is False
    assert "Connection" in error or "CircuitOpenError" in error, error


def test_the_cli_serves_the_proxy(stub: LLMStub, db: Path, subprocess_env: dict[str, str]) -> None:
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "sheetcache.cli", "proxy", "--upstream", stub.url,
               "--url", f"sqlite:///{db}", "--port", str(port)]  # fmt: skip
    with subprocess.Popen(command, env=subprocess_env, stderr=subprocess.PIPE) as server:
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:  # poll until uvicorn listens, with a generous deadline
                try:
                    health = httpx.get(base + "/healthz").json()
                    break
                except httpx.TransportError:
                    assert server.poll() is None, "the proxy exited"
                    assert time.monotonic() < deadline, "the proxy did not start"
                    time.sleep(0.05)
            assert health["store"]["url"] == f"sqlite:///{db}"
            with openai.OpenAI(api_key=SECRET, base_url=base + "/v1", max_retries=0) as c:
                for _ in range(2):
                    c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert len(stub.posts()) == 1
        finally:
            server.terminate()
            server.wait(30)


def test_path_and_query_reach_upstream_as_sent(proxy: Proxy, stub: LLMStub) -> None:
    httpx.post(
        proxy.url + "/v1/chat/completions?api-version=2024-06-01&x=a%2Fb",
        json={"model": "gpt-4o", "messages": MESSAGES},
    )
    assert stub.posts()[0]["path"] == "/v1/chat/completions?api-version=2024-06-01&x=a%2Fb"


def test_upstream_with_a_base_path(cache: Cache, stub: LLMStub) -> None:
    with (
        Proxy(cache, stub.url + "/v1") as proxy,
        openai.OpenAI(api_key=SECRET, base_url=proxy.url, max_retries=0) as c,
    ):
        assert c.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    assert stub.posts()[0]["path"] == "/v1/chat/completions"
