"""A small OpenAI-compatible chat completions server for tests: stdlib only, real HTTP.

It answers ``POST /v1/chat/completions`` the way OpenAI does, as one JSON body or, with
``"stream": true``, as server-sent event chunks ending in ``data: [DONE]``. Like OpenAI it
makes up a new completion id, ``created`` time and tool call id for every response, so a
cache that keyed on them would never hit. Every request body is kept in :attr:`requests`.

Answers:

- the request offers tools and holds no tool result yet: a call of the first tool with
  :attr:`OpenAIStub.tool_args`;
- otherwise: ``"<name>: <last user message>"`` (``name`` is ``"echo"`` unless given), plus
  the tool results if there are any.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIStub:
    """The server, started on a free port of 127.0.0.1 in a daemon thread.

    Example:
        >>> with OpenAIStub() as stub:
        ...     stub.base_url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(self, model: str = "gpt-4o", *, name: str = "echo") -> None:
        self.model = model
        self.name = name
        self.tool_args: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with stub._lock:
                    stub.requests.append(body)
                if body.get("stream"):
                    self._stream(stub._chunks(body))
                else:
                    self._send(200, stub._completion(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, chunks: Iterator[dict[str, Any]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in chunks:
                    self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                self._write_chunk(b"data: [DONE]\n\n")
                self._write_chunk(b"")

            def _write_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the serving loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The URL to give ``OpenAIProvider(base_url=...)``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.requests)

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers -------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """(text, tool call) for a request."""
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        results = [m.get("content") for m in messages if m.get("role") == "tool"]
        if tools and not results:
            call = {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": tools[0]["function"]["name"],
                    "arguments": json.dumps(self.tool_args),
                },
            }
            return None, call
        users = [m.get("content") for m in messages if m.get("role") == "user"]
        last = users[-1] if users else ""
        if isinstance(last, list):
            last = " ".join(p.get("text", "") for p in last if isinstance(p, dict))
        text = f"{self.name}: {last}"
        if results:
            text += f" (tools said: {', '.join(str(r) for r in results)})"
        return text, None

    def _usage(self, body: dict[str, Any], text: str | None) -> dict[str, int]:
        prompt = len(json.dumps(body.get("messages"))) // 4
        completion = len(text or "x") // 4 + 1
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text, call = self._answer(body)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if call is not None:
            message["tool_calls"] = [call]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if call else "stop",
                    "logprobs": None,
                }
            ],
            "usage": self._usage(body, text),
        }

    def _chunks(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        text, call = self._answer(body)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**base, "choices": [choice]}

        yield chunk({"role": "assistant", "content": ""})
        if call is not None:
            first = {
                **call,
                "index": 0,
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            yield chunk({"tool_calls": [first]})
            yield chunk(
                {
                    "tool_calls": [
                        {"index": 0, "function": {"arguments": call["function"]["arguments"]}}
                    ]
                }
            )
        else:
            assert text is not None
            for start in range(0, len(text), 5):
                yield chunk({"content": text[start : start + 5]})
        yield chunk({}, "tool_calls" if call else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": self._usage(body, text)}
