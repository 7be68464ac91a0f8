"""A local OpenAI + Anthropic API stub for the transport and proxy tests: stdlib, real HTTP.

Routes: ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings`` (OpenAI) and
``/v1/messages`` (Anthropic), as JSON or, with ``"stream": true``, as server-sent events
written one event per write. Like the real APIs it makes up a fresh id for every response,
so a cache keyed on the response could never hit. The answer text is ``echo: <last user
message>``. Every request (path, headers, JSON body) is kept in :attr:`LLMStub.requests`.

Faults: :attr:`LLMStub.fail_with` answers the next requests with that HTTP status;
:attr:`LLMStub.cut_stream` closes streams before their terminal event.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content)
    return str(messages)


class LLMStub:
    """The server on a free loopback port, in a daemon thread. Use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self.cut_stream = False
        self.mid_stream: threading.Event | None = None
        """If set, streams pause after their second event until it is set (10 s at most)."""
        self.gate: threading.Event | None = None
        """If set, answers wait for it: a test holds calls in flight with it."""
        self.tool_args: dict[str, Any] = {"city": "Paris"}
        self.input_tokens = 11
        self.output_tokens = 7
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                with stub._lock:
                    stub.requests.append(
                        {
                            "method": "GET",
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                        }
                    )
                self._send(200, {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub._lock:
                    stub.requests.append(
                        {
                            "method": "POST",
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                if stub.gate is not None:
                    stub.gate.wait(30)
                if stub.fail_with is not None:
                    self._send(
                        stub.fail_with, {"error": {"message": "overloaded", "type": "server_error"}}
                    )
                    return
                path = self.path.split("?")[0].rstrip("/")
                text = "echo: " + _last_user_text(body.get("messages") or body.get("input"))
                if path == "/v1/chat/completions" and body.get("tools") and not body.get("stream"):
                    self._send(200, stub._chat_tool_call(body))
                elif path == "/v1/chat/completions":
                    if body.get("stream"):
                        self._stream(stub._chat_events(body, text))
                    else:
                        self._send(200, stub._chat(body, text))
                elif path == "/v1/messages":
                    if body.get("stream"):
                        self._stream(stub._anthropic_events(body, text))
                    else:
                        self._send(200, stub._anthropic(body, text))
                elif path == "/v1/responses":
                    if body.get("stream"):
                        self._stream(stub._responses_events(body, text))
                    else:
                        self._send(200, stub._responses(body, text))
                elif path == "/v1/embeddings":
                    self._send(200, stub._embeddings(body))
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-request-id", uuid.uuid4().hex)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, events: Iterator[str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                items = list(events)
                if stub.cut_stream:
                    items = items[: len(items) // 2]
                for i, event in enumerate(items):
                    if i == 2 and stub.mid_stream is not None:
                        stub.mid_stream.wait(10)
                    try:
                        self.wfile.write((event + "\n\n").encode())
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):  # the client went away
                        break
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def posts(self, path: str | None = None) -> list[dict[str, Any]]:
        """The POST requests received (to ``path`` if given)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r["method"] == "POST" and (path is None or r["path"] == path)
            ]

    def __enter__(self) -> LLMStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- answers ---------------------------------------------------------------------------

    def _usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens}  # fmt: skip

    def _chat(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": 1,
            "model": body.get("model", "gpt-4o"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": self._usage(),
        }  # fmt: skip

    def _chat_tool_call(self, body: dict[str, Any]) -> dict[str, Any]:
        """A call of the first offered tool, with :attr:`tool_args`."""
        name = body["tools"][0]["function"]["name"]
        call = {"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                "function": {"name": name, "arguments": json.dumps(self.tool_args)}}  # fmt: skip
        answer = self._chat(body, "")
        answer["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [call],
        }
        answer["choices"][0]["finish_reason"] = "tool_calls"
        return answer

    def _chat_events(self, body: dict[str, Any], text: str) -> Iterator[str]:
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        model = body.get("model", "gpt-4o")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return "data: " + json.dumps({
                "id": cid, "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })  # fmt: skip

        yield chunk({"role": "assistant", "content": ""})
        for word in text.split(" "):
            yield chunk({"content": word + " "})
        yield chunk({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk",
                                         "created": 1, "model": model, "choices": [],
                                         "usage": self._usage()})  # fmt: skip
        yield "data: [DONE]"

    def _anthropic(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant",
            "model": body.get("model"), "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        }  # fmt: skip

    def _anthropic_events(self, body: dict[str, Any], text: str) -> Iterator[str]:
        def event(kind: str, data: dict[str, Any]) -> str:
            return f"event: {kind}\ndata: " + json.dumps({"type": kind, **data})

        message = self._anthropic(body, "")
        message["content"] = []
        message["usage"] = {"input_tokens": self.input_tokens, "output_tokens": 1}
        yield event("message_start", {"message": message})
        yield event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        yield event("ping", {})
        for word in text.split(" "):
            yield event("content_block_delta",
                        {"index": 0, "delta": {"type": "text_delta", "text": word + " "}})  # fmt: skip
        yield event("content_block_stop", {"index": 0})
        yield event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": self.output_tokens}})  # fmt: skip
        yield event("message_stop", {})

    def _responses(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"resp_{uuid.uuid4().hex}", "object": "response", "created_at": 1,
            "status": "completed", "model": body.get("model"),
            "output": [{"type": "message", "id": f"msg_{uuid.uuid4().hex}", "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                      "total_tokens": self.input_tokens + self.output_tokens,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        }  # fmt: skip

    def _responses_events(self, body: dict[str, Any], text: str) -> Iterator[str]:
        final = self._responses(body, text)
        item = final["output"][0]
        started = {**final, "status": "in_progress", "output": [], "usage": None}
        seq = iter(range(1000))

        def event(kind: str, **data: Any) -> str:
            return f"event: {kind}\ndata: " + json.dumps(
                {"type": kind, "sequence_number": next(seq), **data}
            )

        yield event("response.created", response=started)
        yield event("response.output_item.added", output_index=0,
                    item={**item, "status": "in_progress", "content": []})  # fmt: skip
        yield event("response.content_part.added", item_id=item["id"], output_index=0,
                    content_index=0, part={"type": "output_text", "text": "", "annotations": []})  # fmt: skip
        for word in text.split(" "):
            yield event("response.output_text.delta", item_id=item["id"], output_index=0,
                        content_index=0, delta=word + " ", logprobs=[])  # fmt: skip
        yield event("response.output_text.done", item_id=item["id"], output_index=0,
                    content_index=0, text=text, logprobs=[])  # fmt: skip
        yield event("response.output_item.done", output_index=0, item=item)
        yield event("response.completed", response=final)

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        return {
            "object": "list", "model": body.get("model"),
            "data": [{"object": "embedding", "index": i, "embedding": [0.5, float(len(str(x))), 0.25]}
                     for i, x in enumerate(inputs)],
            "usage": {"prompt_tokens": self.input_tokens, "total_tokens": self.input_tokens},
        }  # fmt: skip
