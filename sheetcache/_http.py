"""The HTTP integrations' core, without I/O: which requests are cached, their keys, the stored
answer and its readable text. :mod:`sheetcache.transport` (httpx/httpx2) and
:mod:`sheetcache.proxy` (ASGI) are thin shells around it.

Cached: ``POST`` to an OpenAI-compatible ``/chat/completions``, ``/responses``,
``/completions`` or ``/embeddings``, and Anthropic's ``/v1/messages``, with a JSON object body.
Everything else goes through untouched.

The key (see :func:`call_for`) is the canonical body (the core sorts object keys at every
depth, so key order never matters), the method, the host, the path and any query parameters
not named like a credential. Headers are never part of it (API keys, SDK versions, retry
counts) and never stored.

The stored text (see :func:`_encode`) is the assistant's text, a marker line, and one line
of JSON holding the provider's response with that text left out. A reviewer edits the text;
a hit serves the edited text inside the provider's JSON shape, or inside the same stream
events for a ``stream: true`` call.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sheetcache._codec import register_codec
from sheetcache._keys import is_secret_name

__all__ = ["CODEC_NAME", "Call", "HTTPAnswer", "SSERecorder", "call_for", "is_cached_route"]

CODEC_NAME = "http-response"
KEY_FORMAT = "http-v1"

# path suffix -> (api, the body field that is the prompt)
_ROUTES: dict[str, tuple[str, str]] = {
    "/chat/completions": ("openai-chat", "messages"),
    "/responses": ("openai-responses", "input"),
    "/completions": ("openai-completions", "prompt"),
    "/embeddings": ("openai-embeddings", "input"),
    "/v1/messages": ("anthropic-messages", "messages"),
}
# Hosts whose provider genai-prices knows by id; elsewhere it guesses from the model name.
_PROVIDERS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x-ai",
    "openrouter.ai": "openrouter",
}
# Response headers a hit serves again; the rest (request ids, rate limits, cookies) are
# about the original exchange, not the answer.
KEPT_HEADERS = ("content-type",)


def _route(method: str, path: str) -> tuple[str, str] | None:
    if method != "POST":
        return None
    path = path.rstrip("/")
    for suffix, route in _ROUTES.items():
        # /chat/completions also ends in /completions: the dict order checks it first.
        if path.endswith(suffix):
            return route
    return None


def is_cached_route(method: str, path: str) -> bool:
    """True if a request to ``path`` with ``method`` is one the cache answers."""
    return _route(method, path) is not None


@dataclass(frozen=True)
class Call:
    """A cacheable request, taken apart for :meth:`sheetcache.Cache.get_or_call`."""

    api: str
    """``openai-chat``, ``openai-responses``, ``openai-completions``, ``openai-embeddings``
    or ``anthropic-messages``."""
    prompt: Any
    """The messages (or input, or prompt) of the body: the Sheet's prompt column."""
    key_parts: dict[str, Any]
    """``model`` (the Sheet's model column), ``request`` (the rest of the body) and
    ``endpoint`` (method, host and path)."""
    stream: bool
    """The body asks for server-sent events."""
    provider: str | None
    """The genai-prices provider id for the host, if it is a known one."""


def call_for(
    method: str, host: str, path: str, body: bytes, query: str | bytes = ""
) -> Call | None:
    """The cacheable call a request is, or None to pass it through.

    Args:
        method: the HTTP method.
        host: the host (and port, if not the scheme's default) the request goes to.
        path: the URL path, without the query.
        body: the raw request body.
        query: the URL's query string. Its parameters (an Azure ``api-version``, say) join
            the key as ``query``, sorted, except those named like a credential (``key``,
            ``api-key``, ``token``, ``sig``...), which are neither in the key nor stored.

    Returns:
        None unless the route is cached and the body is a JSON object.
    """
    route = _route(method, path)
    if route is None:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    api, prompt_field = route
    # A body field named like a secret (an "api_key" some gateways take) is sent upstream
    # but, like a header, is neither part of the key nor stored.
    request = {k: v for k, v in data.items() if not is_secret_name(k)}
    prompt = request.pop(prompt_field, None)
    model = request.pop("model", None)
    key_parts = {
        "model": model,
        "request": request,
        "endpoint": f"{method} {host}{path.rstrip('/')}",
        "integration": KEY_FORMAT,
    }
    params = _query_params(query)
    if params:
        key_parts["query"] = params
    bare_host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return Call(api, prompt, key_parts, data.get("stream") is True, _PROVIDERS.get(bare_host))


_SECRET_PARAM = re.compile(r"key|token|secret|sig|auth|password|credential", re.IGNORECASE)


def _query_params(query: str | bytes) -> list[list[str]]:
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
    return sorted([k, v] for k, v in pairs if not _SECRET_PARAM.search(k))


# -- the stored answer -------------------------------------------------------------------------


@dataclass
class HTTPAnswer:
    """A provider's 2xx response as the cache keeps it: status, content type, and either the
    JSON body or the list of server-sent events (each event's text without its blank line).
    """

    api: str
    status: int
    content_type: str
    body: Any = None
    """The JSON body (None for a stream)."""
    events: list[str] | None = None
    """The stream's events in order, as received (None for a JSON body)."""
    edited: bool = False
    """A reviewer changed the text since the call."""

    def content(self) -> bytes:
        """The response body to serve (a JSON document or the whole event stream)."""
        if self.events is not None:
            return b"".join(chunk for chunk in self.chunks())
        return orjson.dumps(self.body)

    def chunks(self) -> list[bytes]:
        """The body as the pieces to send: one per event for a stream, so boundaries hold."""
        if self.events is None:
            return [orjson.dumps(self.body)]
        return [(event + "\n\n").encode() for event in self.events]

    def text(self) -> str:
        """What a reviewer reads: the assistant's text (or tool calls, or an embedding
        summary).
        """
        if self.events is not None:
            return _stream_text(self.api, self.events)
        return _body_text(self.api, self.body)

    def usage(self, request_model: Any, provider: str | None) -> dict[str, Any] | None:
        """``{"model", "provider", "input_tokens", "output_tokens"}`` from the response."""
        found = (
            _stream_usage(self.api, self.events)
            if self.events is not None
            else _body_usage(self.api, self.body)
        )
        if found is None:
            return None
        model, input_tokens, output_tokens = found
        return {
            "model": model or request_model,
            "provider": provider,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }


def _get(obj: Any, *path: Any) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or len(obj) <= step:
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[step] if isinstance(step, int) else obj.get(step)
    return obj


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# -- text and edits of JSON bodies -------------------------------------------------------------


def _body_text(api: str, body: Any) -> str:
    if api == "openai-chat":
        message = _get(body, "choices", 0, "message") or {}
        content = message.get("content")
        if isinstance(content, str) and content:
            return content
        calls = [
            {
                "tool_call": _get(c, "function", "name"),
                "arguments": _get(c, "function", "arguments"),
            }
            for c in message.get("tool_calls") or []
        ]
        return _json_text(calls) if calls else (content or "")
    if api == "openai-completions":
        return str(_get(body, "choices", 0, "text") or "")
    if api == "openai-responses":
        texts = [
            part.get("text", "")
            for item in _get(body, "output") or []
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        if texts:
            return "".join(texts)
        calls = [
            {"tool_call": item.get("name"), "arguments": item.get("arguments")}
            for item in _get(body, "output") or []
            if isinstance(item, dict) and item.get("type") == "function_call"
        ]
        return _json_text(calls)
    if api == "anthropic-messages":
        blocks = [b for b in _get(body, "content") or [] if isinstance(b, dict)]
        texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
        if any(texts):
            return "\n\n".join(texts)
        calls = [
            {"tool_call": b.get("name"), "input": b.get("input")}
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        return _json_text(calls)
    if api == "openai-embeddings":
        vectors = _get(body, "data") or []
        width = len(_get(vectors, 0, "embedding") or [])
        return f"({len(vectors)} embedding(s) of {width} dimensions; edits are ignored)"
    return ""


def _json_text(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() if obj else ""


def _edit_body(api: str, body: Any, old_text: str, text: str) -> Any:
    """``body`` with the reviewer's ``text`` in place of ``old_text``.

    Raises:
        ValueError: the edit cannot be put into this shape (the entry is then a miss).
    """
    if api == "openai-embeddings":
        return body
    if api == "openai-completions":
        body["choices"][0]["text"] = text
        return body
    if api == "openai-chat":
        message = body["choices"][0]["message"]
        if isinstance(message.get("content"), str) and message["content"]:
            message["content"] = text
        else:
            calls = _edited_calls(text, len(message.get("tool_calls") or []), "arguments")
            for call, new in zip(message["tool_calls"], calls, strict=True):
                call["function"]["arguments"] = _arguments_text(new)
        return body
    if api == "openai-responses":
        items = [i for i in body.get("output") or [] if isinstance(i, dict)]
        parts = [
            part
            for item in items
            if item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        if parts:
            for i, part in enumerate(parts):
                part["text"] = text if i == 0 else ""
        else:
            fcalls = [i for i in items if i.get("type") == "function_call"]
            for item, new in zip(
                fcalls, _edited_calls(text, len(fcalls), "arguments"), strict=True
            ):
                item["arguments"] = _arguments_text(new)
        return body
    if api == "anthropic-messages":
        blocks = body["content"]
        texts = [b for b in blocks if b.get("type") == "text"]
        if any(b.get("text") for b in texts):
            first = blocks.index(texts[0])
            body["content"] = [b for b in blocks if b.get("type") != "text"]
            body["content"].insert(first, {**texts[0], "text": text})
        else:
            uses = [b for b in blocks if b.get("type") == "tool_use"]
            for block, new in zip(uses, _edited_calls(text, len(uses), "input"), strict=True):
                block["input"] = new
        return body
    raise ValueError(f"unknown api {api!r}")


def _edited_calls(text: str, count: int, field_name: str) -> list[Any]:
    try:
        calls = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the edited tool calls are not JSON: {exc}") from None
    if not isinstance(calls, list) or len(calls) != count:
        raise ValueError(f"the edited answer must stay a JSON list of {count} tool call(s)")
    if not all(isinstance(c, dict) and field_name in c for c in calls):
        raise ValueError(f"each edited tool call must keep its {field_name!r}")
    return [c[field_name] for c in calls]


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()


def _body_usage(api: str, body: Any) -> tuple[Any, int, int] | None:
    usage = _get(body, "usage")
    if not isinstance(usage, dict):
        return None
    if api in ("openai-chat", "openai-completions", "openai-embeddings"):
        return (
            _get(body, "model"),
            _int(usage.get("prompt_tokens")),
            _int(usage.get("completion_tokens")),
        )
    return _get(body, "model"), _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))


# -- server-sent events ------------------------------------------------------------------------


def _event_fields(event: str) -> tuple[str | None, str]:
    """(event type, data) of one event's text, per the SSE format."""
    kind: str | None = None
    data: list[str] = []
    for line in event.split("\n"):
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
    return kind, "\n".join(data)


def _event_json(event: str) -> Any:
    _kind, data = _event_fields(event)
    if not data or data == "[DONE]":
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _with_data(event: str, payload: Any) -> str:
    """The event with its data replaced by ``payload``, other lines kept in place."""
    lines = [line for line in event.split("\n") if not line.startswith("data:")]
    at = next((i for i, line in enumerate(event.split("\n")) if line.startswith("data:")), 0)
    lines.insert(at, "data: " + orjson.dumps(payload).decode())
    return "\n".join(lines)


def _delta_slot(api: str, payload: Any) -> tuple[Callable[[], str], Callable[[str], None]] | None:
    """(read, write) of the text delta an event carries, if it carries one."""
    if not isinstance(payload, dict):
        return None
    if api == "openai-chat":
        delta = _get(payload, "choices", 0, "delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            return (lambda: delta["content"]), (lambda t: delta.__setitem__("content", t))
    elif api == "openai-completions":
        choice = _get(payload, "choices", 0)
        if isinstance(choice, dict) and isinstance(choice.get("text"), str):
            return (lambda: choice["text"]), (lambda t: choice.__setitem__("text", t))
    elif api == "openai-responses":
        if payload.get("type") == "response.output_text.delta":
            return (lambda: payload.get("delta", "")), (lambda t: payload.__setitem__("delta", t))
    elif api == "anthropic-messages":
        text_delta: dict[str, Any] = payload.get("delta") or {}
        if (
            payload.get("type") == "content_block_delta"
            and _get(text_delta, "type") == "text_delta"
        ):
            return (lambda: text_delta["text"]), (lambda t: text_delta.__setitem__("text", t))
    return None


def _stream_text(api: str, events: list[str]) -> str:
    pieces = []
    for event in events:
        slot = _delta_slot(api, _event_json(event))
        if slot is not None:
            pieces.append(slot[0]())
    return "".join(pieces)


def _edit_stream(api: str, events: list[str], text: str) -> list[str]:
    """The events with the first text delta carrying all of ``text`` and later ones empty,
    so the stream keeps its event count and boundaries.
    """
    out: list[str] = []
    first = True
    for event in events:
        payload = _event_json(event)
        slot = _delta_slot(api, payload)
        if slot is not None:
            slot[1](text if first else "")
            first = False
            event = _with_data(event, payload)
        elif api == "openai-responses" and isinstance(payload, dict):
            if payload.get("type") == "response.output_text.done":
                payload["text"] = text
                event = _with_data(event, payload)
            elif payload.get("type") == "response.completed":
                response = payload.get("response")
                if isinstance(response, dict):
                    payload["response"] = _edit_body(api, response, "", text)
                    event = _with_data(event, payload)
        out.append(event)
    if first and text:
        raise ValueError("this stream carries no text to edit")
    return out


def _stream_usage(api: str, events: list[str]) -> tuple[Any, int, int] | None:
    model: Any = None
    input_tokens = output_tokens = 0
    found = False
    for event in events:
        payload = _event_json(event)
        if not isinstance(payload, dict):
            continue
        if api == "anthropic-messages":
            message = payload.get("message")
            usage = _get(message, "usage") if payload.get("type") == "message_start" else None
            if isinstance(message, dict):
                model = message.get("model") or model
            if payload.get("type") == "message_delta":
                usage = payload.get("usage")
            if isinstance(usage, dict):
                found = True
                input_tokens = max(input_tokens, _int(usage.get("input_tokens")))
                output_tokens = max(output_tokens, _int(usage.get("output_tokens")))
        elif api == "openai-responses":
            if payload.get("type") == "response.completed":
                found_usage = _body_usage(api, payload.get("response"))
                if found_usage is not None:
                    return found_usage
        else:
            model = payload.get("model") or model
            usage = payload.get("usage")
            if isinstance(usage, dict):  # the last chunk, with stream_options.include_usage
                found = True
                input_tokens = _int(usage.get("prompt_tokens"))
                output_tokens = _int(usage.get("completion_tokens"))
    return (model, input_tokens, output_tokens) if found else None


def is_terminal(api: str, event: str) -> bool | None:
    """True at the event that completes a stream, False at one that fails it, else None."""
    kind, data = _event_fields(event)
    if data.strip() == "[DONE]" or kind == "message_stop":
        return True
    if kind in ("response.completed", "response.incomplete"):
        return True
    if kind in ("error", "response.failed"):
        return False
    return None


@dataclass
class SSERecorder:
    """Splits a server-sent event stream into events as bytes arrive and notes its end."""

    api: str
    events: list[str] = field(default_factory=list)
    complete: bool = False
    failed: bool = False
    _buffer: str = ""
    _decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())

    def feed(self, chunk: bytes) -> list[str]:
        """Take the next bytes of the body; return the events they completed."""
        text = self._buffer + self._decoder.decode(chunk)
        # The SSE format allows CR LF and lone CR line ends; events are kept with LF only.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        *events, self._buffer = text.split("\n\n")
        done: list[str] = []
        for event in events:
            if not event.strip():
                continue
            if self.complete or self.failed:
                break  # nothing after the terminal event is part of the answer
            self.events.append(event)
            done.append(event)
            end = is_terminal(self.api, event)
            if end is True:
                self.complete = True
            elif end is False:
                self.failed = True
        return done

    def answer(self, status: int, content_type: str) -> HTTPAnswer | None:
        """The stream as an answer to store, or None if it did not end at its terminal event."""
        if not self.complete or self.failed:
            return None
        return HTTPAnswer(self.api, status, content_type, events=list(self.events))


# -- the stored text ---------------------------------------------------------------------------

_TRAILER = "--- sheetcache: HTTP response v1. Edit the answer above; keep this line and below ---"
_SEPARATOR = "\n\n" + _TRAILER + "\n"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(answer: HTTPAnswer) -> str:
    text = answer.text()
    meta = {
        "api": answer.api,
        "status": answer.status,
        "content_type": answer.content_type,
        "text_sha256": _sha256(text),
    }
    if answer.events is not None:
        meta["events"] = answer.events
    else:
        meta["body"] = answer.body
    return text + _SEPARATOR + orjson.dumps(meta).decode()


def _decode_unchecked(stored: str) -> HTTPAnswer:
    at = stored.rfind("\n" + _TRAILER + "\n")
    if at < 0:
        raise ValueError("the HTTP response marker line is missing")
    text = stored[:at].removesuffix("\n")
    meta = orjson.loads(stored[at + len(_TRAILER) + 2 :])
    api = meta["api"]
    answer = HTTPAnswer(api, int(meta["status"]), str(meta["content_type"]))
    answer.edited = _sha256(text) != meta.get("text_sha256")
    if "events" in meta:
        events = [str(e) for e in meta["events"]]
        answer.events = _edit_stream(api, events, text) if answer.edited else events
    else:
        body = meta["body"]
        answer.body = _edit_body(api, body, "", text) if answer.edited else body
    return answer


def _decode(stored: str) -> HTTPAnswer:
    """Inverse of :func:`_encode`; a reviewer's edit is put into the provider's shape.

    Raises:
        ValueError: the text was damaged beyond reading, or the edit does not fit the shape
            (the entry is then a miss).
    """
    try:
        return _decode_unchecked(stored)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"the stored HTTP response does not read back: {exc!r}") from None


register_codec(CODEC_NAME, HTTPAnswer, _encode, _decode)
