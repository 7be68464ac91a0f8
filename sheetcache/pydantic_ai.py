"""pydantic-ai integration: a response cache for any pydantic-ai model, streaming included.

Two ways in, the same behaviour::

    from pydantic_ai import Agent
    from sheetcache import Cache
    from sheetcache.pydantic_ai import CacheCapability, CachedModel

    cache = Cache("sheets://ID/llm-cache")
    agent = Agent(CachedModel("openai:gpt-4o", cache), system_prompt="...")
    agent = Agent("openai:gpt-4o", capabilities=[CacheCapability(cache)], system_prompt="...")

Each model request is one cache entry. Its key (see :func:`request_key`) holds what changes
the answer and nothing that changes from run to run:

- in: the wrapped model's ``system``, ``model_name`` and endpoint (scheme, host, port and
  path of its ``base_url``, never user info or the query string); every message (system prompts,
  instructions, user prompts with binary content by sha256, earlier responses' parts, tool
  calls and returns, retry prompts); the model settings (temperature, max_tokens, seed, ...);
  the request parameters (function and output tools with their schemas, output mode and
  object schema, whether text output is allowed, native tools, instruction parts).
- out: timestamps, ``run_id``, ``conversation_id``, message ``metadata`` (never sent to the
  model), an earlier response's usage, provider ids and details, ids of response parts,
  tool definitions' ``metadata`` and ``timeout`` (not sent), and the transport settings
  ``timeout``, ``request_timeout`` and ``max_retries``. Tool call ids are renamed by position
  (``call_1``, ``call_2``, ... in order of first appearance), because FunctionModel, OpenAI and
  most providers make up new random ones on every run. ``extra_headers`` enter as a digest, so
  a header holding a secret never reaches the sheet.

What is stored: complete responses only. Exceptions are never cached; by default neither are
responses with no parts, or whose ``finish_reason`` is ``length`` (truncated),
``content_filter`` (a refusal) or ``error``. ``cache_errors=True`` stores those too. Responses
that are not ``complete`` (a stream stopped early, a suspended background or batch job) are
never stored, and continuation requests (history ending in a model response) bypass the cache.

A hit returns the stored response with its parts, finish reason, model name and provider
fields unchanged, its ``usage`` zeroed, so ``result.usage`` counts no tokens (and no cost)
for it (``requests`` still counts the step), and ``metadata["sheetcache"]`` recording the hit
and the usage it saved. :attr:`CachedModel.stats` sums tokens and, where genai-prices knows the
model, dollars saved.

A streamed hit replays the deltas the miss streamed, in the same boundaries. Under a
:class:`CacheCapability`, a run that fails on an answer (output validation out of retries)
marks that answer's entry ``rejected``, so the next run asks the model again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import orjson

from sheetcache._answer import Answer
from sheetcache._cache import Cache
from sheetcache._codec import encode_value, register_codec
from sheetcache._errors import (
    CacheMissError,
    ConfigError,
    MissingDependencyError,
    UnsupportedValueError,
)

try:
    from pydantic import TypeAdapter
    from pydantic_ai import RunContext, UnexpectedModelBehavior
    from pydantic_ai._run_context import get_current_run_context
    from pydantic_ai.capabilities import AbstractCapability, WrapRunHandler
    from pydantic_ai.messages import (
        BaseToolCallPart,
        ModelMessage,
        ModelMessagesTypeAdapter,
        ModelResponse,
        PartDeltaEvent,
        PartStartEvent,
        TextPart,
        TextPartDelta,
        ThinkingPart,
        ThinkingPartDelta,
        ToolCallPart,
        ToolCallPartDelta,
    )
    from pydantic_ai.models import (
        CompletedStreamedResponse,
        KnownModelName,
        Model,
        ModelRequestParameters,
        StreamedResponse,
    )
    from pydantic_ai.models.wrapper import WrapperModel
    from pydantic_ai.run import AgentRunResult
    from pydantic_ai.settings import ModelSettings, merge_model_settings
    from pydantic_ai.usage import RequestUsage
    from pydantic_core import to_jsonable_python
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        f"sheetcache.pydantic_ai needs pydantic-ai ({exc}): pip install 'sheetcache[pydantic-ai]'"
    ) from exc

__all__ = ["CacheCapability", "CachedModel", "ModelCacheStats", "request_key"]

log = logging.getLogger("sheetcache")

#: Part of every key this module makes (key part ``integration``): bump it when
#: :func:`request_key` changes, so old entries become misses rather than wrong hits.
KEY_FORMAT = "pydantic-ai/2"

# -- the key -------------------------------------------------------------------------------

# Settings that change how the request travels, never what the model answers.
_TRANSPORT_SETTINGS = frozenset({"timeout", "request_timeout", "max_retries"})
_MESSAGE_DROP = frozenset({"timestamp", "run_id", "conversation_id", "metadata"})
# An earlier response in the history: only what the next request sends back counts.
_RESPONSE_DROP = _MESSAGE_DROP | {
    "usage", "provider_url", "provider_details", "provider_response_id", "finish_reason",
    "workspace_ref", "history_digest", "failed_attempts",
}  # fmt: skip
_PART_DROP = frozenset({"timestamp", "metadata"})
# Provider item ids and opaque details of response parts: new on every fresh call.
_RESPONSE_PART_DROP = _PART_DROP | {"id", "provider_details"}
_TOOL_DEF_DROP = frozenset({"metadata", "timeout"})  # documented as not sent to the model
_PARAM_LISTS = {
    "function_tools": _TOOL_DEF_DROP,
    "output_tools": _TOOL_DEF_DROP,
    "native_tools": frozenset(),
    "instruction_parts": frozenset(),
}
_SET_FIELDS = ("revealed_tool_names", "introduced_tool_names", "deferred_capability_ids")

_PARAMS_TA: TypeAdapter[ModelRequestParameters] = TypeAdapter(ModelRequestParameters)
_RESPONSE_TA: TypeAdapter[ModelResponse] = TypeAdapter(ModelResponse)


def _sha256(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _prune(obj: dict[str, Any], drop: frozenset[str]) -> dict[str, Any]:
    # None-valued fields carry no information with a fixed schema; leaving them out keeps the
    # stored prompt short and the canonical JSON free of the nulls the key checker inspects.
    return {k: v for k, v in obj.items() if k not in drop and v is not None}


def _digest_binary(content: Any) -> Any:
    """Binary data (base64 in the JSON dump) by digest: the key stays small, the sheet readable."""
    if isinstance(content, list):
        return [_digest_binary(item) for item in content]
    if isinstance(content, dict):
        if content.get("kind") == "binary" and isinstance(content.get("data"), str):
            return {**_prune(content, _PART_DROP), "data": _sha256(content["data"])}
        if content.get("kind") == "text-content":
            return _prune(content, _PART_DROP)
    return content


class _ToolCallIds:
    """Renames tool call ids by order of first appearance: random ids, stable keys."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __call__(self, part: dict[str, Any]) -> dict[str, Any]:
        tool_call_id = part.get("tool_call_id")
        if isinstance(tool_call_id, str):
            name = self._names.setdefault(tool_call_id, f"call_{len(self._names) + 1}")
            part = {**part, "tool_call_id": name}
        return part


def _normalise_messages(messages: Sequence[ModelMessage]) -> list[dict[str, Any]]:
    dumped = ModelMessagesTypeAdapter.dump_python(
        list(messages), mode="json", fallback=repr, warnings=False
    )
    rename = _ToolCallIds()
    out: list[dict[str, Any]] = []
    for message in dumped:
        response = message.get("kind") == "response"
        part_drop = _RESPONSE_PART_DROP if response else _PART_DROP
        parts = []
        for part in message.get("parts") or []:
            part = rename(_prune(part, part_drop))
            if "content" in part:
                part["content"] = _digest_binary(part["content"])
            parts.append(part)
        message = _prune(message, _RESPONSE_DROP if response else _MESSAGE_DROP)
        message["parts"] = parts
        out.append(message)
    return out


def _normalise_settings(settings: ModelSettings | None) -> dict[str, Any]:
    kept = {k: v for k, v in (settings or {}).items() if k not in _TRANSPORT_SETTINGS}
    if kept.get("extra_headers"):
        kept["extra_headers"] = _sha256(
            orjson.dumps(kept["extra_headers"], option=orjson.OPT_SORT_KEYS)
        )
    # repr for anything without a JSON form: such a key may never hit again, but never lies.
    return to_jsonable_python(kept, fallback=repr)  # type: ignore[no-any-return]


def _normalise_params(params: ModelRequestParameters) -> dict[str, Any]:
    data = _PARAMS_TA.dump_python(params, mode="json", fallback=repr, warnings=False)
    data = _prune(data, frozenset())
    for name, drop in _PARAM_LISTS.items():
        if isinstance(data.get(name), list):
            data[name] = [_prune(i, drop) if isinstance(i, dict) else i for i in data[name]]
    if isinstance(data.get("output_object"), dict):
        data["output_object"] = _prune(data["output_object"], frozenset())
    for name in _SET_FIELDS:  # sets dump in hash order, which changes between processes
        if isinstance(data.get(name), list):
            data[name] = sorted(data[name], key=lambda item: orjson.dumps(item))
    return data


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _endpoint(base_url: str | None) -> str | None:
    """The provider endpoint as it enters the key: scheme, host, port and path of ``base_url``.

    User info (``user:password@``), the query string (Azure's ``code=``, SAS ``sig=``) and the
    fragment are left out, so no credential reaches a key or a row. The scheme and host are
    lowercased, a default port and a trailing slash dropped, so spellings of one URL share
    answers. None (FunctionModel, TestModel, models without a URL) stays None.

    Example:
        >>> _endpoint("https://user:sk-1@API.example.com:443/v1/?key=sk-2")
        'https://api.example.com/v1'
    """
    if not base_url:
        return None
    url = urlsplit(str(base_url))
    scheme = url.scheme.lower()
    host = url.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = url.port
    except ValueError:  # not a number: keep whatever follows the host, minus user info
        port_text = url.netloc.rpartition("@")[2].rpartition(":")[2]
        return f"{scheme}://{host}:{port_text}{url.path.rstrip('/')}"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{url.path.rstrip('/')}"


def request_key(
    model: Model,
    messages: Sequence[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
    *,
    namespace: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``(prompt, key_parts)`` a :class:`CachedModel` passes to :meth:`Cache.aget_or_call`.

    ``prompt`` is the normalised messages as JSON dicts (the sheet's prompt column shows the
    last user prompt of them); ``key_parts`` are ``model``, ``system``, ``base_url`` (the
    provider endpoint, see :func:`_endpoint`; left out when the model has none), ``settings``
    (``model``'s own settings merged with ``model_settings``), ``params``, ``integration``
    and, if given, ``namespace``. Pure: the same request in another run gives the same pair.
    """
    parts: dict[str, Any] = {
        "model": model.model_name,
        "system": model.system,
        "settings": _normalise_settings(merge_model_settings(model.settings, model_settings)),
        "params": _normalise_params(model_request_parameters),
        "integration": KEY_FORMAT,
    }
    base_url = _endpoint(model.base_url)
    if base_url is not None:
        parts["base_url"] = base_url
    if namespace is not None:
        parts["namespace"] = namespace
    prompt = _normalise_messages(messages)
    try:
        orjson.dumps([prompt, parts])  # C speed; refuses what a key cannot hold
    except TypeError:
        prompt, parts = _keyable(prompt), _keyable(parts)
    return prompt, parts


_UTF16_TAG = "$utf16"


def _keyable(obj: Any) -> Any:
    """``obj`` with each string that is not valid Unicode (a lone surrogate: a truncated
    emoji decoded from JSON) replaced by ``{"$utf16": hex of its UTF-16}``: still one key per
    text, where UTF-8 JSON has no form for it.
    """
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return {_UTF16_TAG: obj.encode("utf-16-be", "surrogatepass").hex()}
        return obj
    if isinstance(obj, dict):
        return {_keyable_name(k): _keyable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_keyable(v) for v in obj]
    return obj


def _keyable_name(name: Any) -> str:
    text = str(name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{_UTF16_TAG}:{text.encode('utf-16-be', 'surrogatepass').hex()}"
    return text


# -- the stored text --------------------------------------------------------------------------

CODEC_NAME = "pydantic-ai-response"
_TRAILER = (
    "--- sheetcache: pydantic-ai response v1. Edit the answer above; keep this line and below ---"
)
_SEPARATOR = "\n\n" + _TRAILER + "\n"
_TEXT_SEP = "\n\n"


def _is_text_response(response: ModelResponse) -> bool:
    return not any(isinstance(part, ToolCallPart) for part in response.parts)


def _readable_items(response: ModelResponse) -> list[tuple[int, dict[str, Any]]]:
    """(part index, item) for the parts a reviewer sees in the JSON view of a response."""
    items: list[tuple[int, dict[str, Any]]] = []
    for i, part in enumerate(response.parts):
        if isinstance(part, TextPart):
            items.append((i, {"text": part.content}))
        elif isinstance(part, ToolCallPart):
            try:
                args: Any = part.args_as_dict(raise_if_invalid=True)
            except (ValueError, AssertionError):  # not a JSON object: shown as the model wrote it
                args = part.args
            items.append((i, {"tool_call": part.tool_name, "args": args}))
    return items


_TAGS: dict[str, Any] = {
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$decimal": Decimal,
    "$bytes": base64.b64decode,
}


def _tag(obj: Any) -> Any:
    """JSON for a python-mode dump, tagging what JSON has no type for.

    Untyped fields (``provider_details``, ``metadata``) would otherwise come back as strings
    where the response held a datetime (OpenAI's ``provider_details["timestamp"]``).
    """
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, dict):
        if all(type(k) is str for k in obj):
            return {k: _tag(v) for k, v in obj.items()}
        # JSON objects have text keys only; provider_details may hold others (int, None).
        return {"$dict": [[_tag(k), _tag(v)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_tag(v) for v in obj]
    if isinstance(obj, datetime):
        return {"$datetime": obj.isoformat()}
    if isinstance(obj, date):
        return {"$date": obj.isoformat()}
    if isinstance(obj, Decimal):
        return {"$decimal": str(obj)}
    if isinstance(obj, bytes):
        return {"$bytes": base64.b64encode(obj).decode("ascii")}
    return to_jsonable_python(obj, fallback=repr)


def _untag(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1:
            ((tag, value),) = obj.items()
            if tag in _TAGS and isinstance(value, str):
                return _TAGS[tag](value)
            if tag == "$dict" and isinstance(value, list):
                return {_hashable(_untag(k)): _untag(v) for k, v in value}
        return {k: _untag(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_untag(v) for v in obj]
    return obj


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _encode_response(response: ModelResponse) -> str:
    """:func:`_encode_text`, any failure reported as :class:`UnsupportedValueError`.

    Every such failure comes after the model was paid for: the cache front and
    :class:`CachedModel` then return the answer and skip storing it, with one warning.
    """
    try:
        return _encode_text(response)
    except UnicodeEncodeError as exc:
        raise UnsupportedValueError(
            f"cannot store a response holding text that is not valid Unicode ({exc.reason} "
            f"at {exc.object[max(exc.start - 20, 0) : exc.end]!r}): a lone surrogate, often a "
            "truncated emoji. The answer is kept on this exception's .value",
            response,
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to write must not lose the answer
        raise UnsupportedValueError(
            f"cannot store a response ({type(exc).__name__}: {exc}). The answer is kept on this "
            "exception's .value",
            response,
        ) from None


def _encode_text(response: ModelResponse) -> str:
    """Readable answer, a marker line, then one line of JSON that rebuilds the response exactly.

    A text answer is shown as its text, and the JSON leaves the text out (it points at its place
    in the answer instead), so a reviewer's edit is what a hit serves. A response with tool calls
    (tools, structured output) is shown as a JSON list of ``{"tool_call", "args"}`` and
    ``{"text"}`` items, which a reviewer can edit too.
    """
    response, deltas = _split_deltas(response)
    data = _tag(_RESPONSE_TA.dump_python(response, warnings=False))
    meta: dict[str, Any] = {}
    if deltas is not None:
        meta["deltas"] = deltas
    if _is_text_response(response):
        pieces: list[str] = []
        spans: list[list[int]] = []
        at = 0
        for i, part in enumerate(response.parts):
            if isinstance(part, TextPart):
                if pieces:
                    at += len(_TEXT_SEP)
                pieces.append(part.content)
                spans.append([i, at, at + len(part.content)])
                at += len(part.content)
                data["parts"][i]["content"] = None
        body = _TEXT_SEP.join(pieces)
        meta["text_spans"] = spans
    else:
        body = orjson.dumps(
            [item for _, item in _readable_items(response)], option=orjson.OPT_INDENT_2
        ).decode()
    meta["answer_sha256"] = _sha256(body)
    meta["response"] = data
    return body + _SEPARATOR + orjson.dumps(meta).decode()


def _decode_response(text: str) -> ModelResponse:
    """Inverse of :func:`_encode_response`; an edited answer replaces the stored one.

    Raises:
        ValueError: the marker line or the JSON is missing or broken, or an edited JSON answer
            no longer has the response's shape.
    """
    at = text.rfind("\n" + _TRAILER + "\n")
    if at < 0:
        raise ValueError("the pydantic-ai response marker line is missing")
    body = text[:at].removesuffix("\n")
    meta = orjson.loads(text[at + len(_TRAILER) + 2 :])
    data = _untag(meta["response"])
    edited = _sha256(body) != meta.get("answer_sha256")
    spans = meta.get("text_spans")
    if spans is not None:
        for i, start, end in spans:
            data["parts"][i]["content"] = "" if edited else body[start:end]
        response = _validate(data)
        if edited:
            response = _with_text(response, [i for i, _, _ in spans], body)
    else:
        response = _validate(data)
        if edited:
            response = _with_items(response, body)
    if edited:
        response.metadata = {**(response.metadata or {}), "sheetcache": {"edited": True}}
    elif isinstance(meta.get("deltas"), list):  # an edited answer no longer fits them
        response.metadata = {**(response.metadata or {}), "sheetcache": {"deltas": meta["deltas"]}}
    return response


_UNTYPED = ("provider_details", "metadata")  # dict[str, Any] fields a provider fills freely


def _validate(data: dict[str, Any]) -> ModelResponse:
    """The response from its untagged dump, keeping untyped dicts with non-text keys as stored.

    pydantic would refuse such a key where the type says ``dict[str, Any]``, though the
    response held it; those dicts skip validation and are put back as they were.
    """
    held: list[tuple[int | None, str, Any]] = []
    for index, obj in [(None, data), *enumerate(data.get("parts") or [])]:
        for name in _UNTYPED:
            value = obj.get(name) if isinstance(obj, dict) else None
            if isinstance(value, dict) and not all(type(k) is str for k in value):
                held.append((index, name, value))
                obj[name] = None
    response = _RESPONSE_TA.validate_python(data)
    for index, name, value in held:
        setattr(response if index is None else response.parts[index], name, value)
    return response


def _with_deltas(response: ModelResponse, deltas: list[list[Any]]) -> ModelResponse:
    """``response`` carrying its stream's delta boundaries, for the codec to store."""
    metadata = response.metadata or {}
    marker = {**metadata.get("sheetcache", {}), "deltas": deltas}
    return replace(response, metadata={**metadata, "sheetcache": marker})


def _split_deltas(response: ModelResponse) -> tuple[ModelResponse, Any]:
    """(the response without, the stream's delta boundaries) from ``metadata["sheetcache"]``."""
    metadata = response.metadata
    marker = (metadata or {}).get("sheetcache")
    if not isinstance(marker, dict) or "deltas" not in marker:
        return response, None
    marker = dict(marker)
    deltas = marker.pop("deltas")
    rest = {k: v for k, v in (metadata or {}).items() if k != "sheetcache"}
    if marker:
        rest["sheetcache"] = marker
    return replace(response, metadata=rest or None), deltas


def _with_text(response: ModelResponse, text_indexes: list[int], text: str) -> ModelResponse:
    """The response with its text parts replaced by one part holding ``text``."""
    parts = list(response.parts)
    first = text_indexes[0] if text_indexes else len(parts)
    for i in reversed(text_indexes):
        del parts[i]
    if text:
        parts.insert(first, TextPart(text))
    return replace(response, parts=parts)


def _with_items(response: ModelResponse, body: str) -> ModelResponse:
    edited = orjson.loads(body)
    items = _readable_items(response)
    if not isinstance(edited, list) or len(edited) != len(items):
        raise ValueError(f"the edited answer must stay a JSON list of {len(items)} items")
    parts = list(response.parts)
    for (i, old), new in zip(items, edited, strict=True):
        if not isinstance(new, dict) or new.keys() != old.keys():
            raise ValueError(f"edited item {new!r} must keep the keys {sorted(old)}")
        part = parts[i]
        if isinstance(part, TextPart):
            parts[i] = replace(part, content=str(new["text"]))
        elif isinstance(part, ToolCallPart):
            if new["tool_call"] != part.tool_name:
                raise ValueError(f"an edit cannot rename tool call {part.tool_name!r}")
            parts[i] = replace(part, args=new["args"])
    return replace(response, parts=parts)


register_codec(CODEC_NAME, ModelResponse, _encode_response, _decode_response)


# -- streams: record a miss's delta boundaries, replay a hit with them ----------------------


def _chunkable(part: Any) -> str | None:
    """The text a part streams in pieces (text, thinking, JSON args), or None if it comes whole."""
    if isinstance(part, (TextPart, ThinkingPart)):
        return part.content
    if isinstance(part, BaseToolCallPart) and isinstance(part.args, str):
        return part.args
    return None


class _Deltas:
    """Delta boundaries of a live stream: ``[[part index, [sizes...]], ...]`` in stream order.

    A run of events on one part is one item; a size is the characters the start (first size)
    or a delta added. Only the content is kept, never the timing. Anything this form cannot
    replay exactly (a part replaced mid-stream, dict args in pieces) gives up: the hit then
    replays each part whole.
    """

    def __init__(self) -> None:
        self.items: list[list[Any]] = []
        self.ok = True
        self._started: set[int] = set()

    def _add(self, index: int, size: int) -> None:
        if self.items and self.items[-1][0] == index:
            self.items[-1][1].append(size)
        else:
            self.items.append([index, [size]])

    def see(self, event: Any) -> None:
        if not self.ok:
            return
        if isinstance(event, PartStartEvent):
            if event.index in self._started or event.index != len(self._started):
                self.ok = False  # a part replaced or started out of order
                return
            self._started.add(event.index)
            text = _chunkable(event.part)
            if (
                text is None
                and isinstance(event.part, BaseToolCallPart)
                and event.part.args is None
            ):
                text = ""  # a tool call whose JSON args follow in deltas
            self._add(event.index, len(text) if text is not None else -1)
        elif isinstance(event, PartDeltaEvent):
            delta = event.delta
            piece: str | dict[str, Any] | None
            if isinstance(delta, (TextPartDelta, ThinkingPartDelta)):
                piece = delta.content_delta
            elif isinstance(delta, ToolCallPartDelta):
                piece = delta.args_delta
            else:  # pragma: no cover - every delta kind pydantic-ai has is handled above
                piece = None
            if piece is None or piece == "":
                return  # a signature, id or name only: the whole part carries it on replay
            if not isinstance(piece, str) or event.index not in self._started:
                self.ok = False
                return
            self._add(event.index, len(piece))

    def result(self) -> list[list[Any]] | None:
        return self.items if self.ok and self.items else None


def _replay_events(response: ModelResponse, deltas: Any) -> list[Any] | None:
    """Start and delta events that rebuild ``response`` in ``deltas``' boundaries, or None if
    they do not fit it (a reviewer's edit, a damaged trailer).
    """
    parts = response.parts
    try:
        plan = [(int(i), [int(n) for n in sizes]) for i, sizes in deltas]
    except (TypeError, ValueError):
        return None
    # Check everything first: a replay must never yield half a stream and then give up.
    seen: dict[int, int] = {}
    for i, sizes in plan:
        if not sizes or not 0 <= i < len(parts) or (i not in seen and i != len(seen)):
            return None
        seen[i] = seen.get(i, 0) + sum(sizes)
        text = _chunkable(parts[i])
        if text is None and (sizes != [-1] or seen[i] != -1):
            return None
        if text is not None and min(sizes) < 0:
            return None
    if len(seen) != len(parts):
        return None
    for i, total in seen.items():
        text = _chunkable(parts[i])
        if text is not None and total != len(text):
            return None
    events: list[Any] = []
    at: dict[int, int] = {}
    for i, sizes in plan:
        part, text = parts[i], _chunkable(parts[i])
        for size in sizes:
            if text is None:
                events.append(PartStartEvent(index=i, part=part))
                continue
            start = at.get(i)
            if start is None:
                at[i] = size
                events.append(PartStartEvent(index=i, part=_prefix(part, text[:size])))
                continue
            piece, at[i] = text[start : start + size], start + size
            if isinstance(part, TextPart):
                delta: Any = TextPartDelta(content_delta=piece)
            elif isinstance(part, ThinkingPart):
                delta = ThinkingPartDelta(content_delta=piece)
            else:
                delta = ToolCallPartDelta(args_delta=piece)
            events.append(PartDeltaEvent(index=i, delta=delta))
    return events


def _prefix(part: Any, text: str) -> Any:
    if isinstance(part, (TextPart, ThinkingPart)):
        return replace(part, content=text)
    return replace(part, args=text)


class _ReplayedStream(CompletedStreamedResponse):
    """A hit as a stream in the miss's delta boundaries; ``get()`` is the served response.

    Falls back to one event per part (pydantic-ai's own replay) when the boundaries do not fit.
    """

    def __init__(
        self, response: ModelResponse, params: ModelRequestParameters, events: list[Any] | None
    ) -> None:
        super().__init__(response, model_request_parameters=params, replay_events=True)
        self._planned = events

    async def _get_event_iterator(self) -> AsyncIterator[Any]:
        if self._planned is None:
            async for event in super()._get_event_iterator():
                yield event
            return
        for event in self._planned:
            # The parts manager backs the PartEndEvents and the final-result detection that
            # StreamedResponse.__aiter__ adds around these, as for a live stream.
            self._parts_manager.apply_event(event)
            yield event

    def get(self) -> ModelResponse:
        # Mid-stream, what has been replayed so far (consumers diff successive snapshots);
        # once read to the end, the served response exactly.
        if self._planned is None or self._finished:
            return super().get()
        return replace(self.response, parts=self._parts_manager.get_parts(), state="incomplete")


def _delegate(name: str) -> Any:
    def get(self: _RecordingStream) -> Any:
        return getattr(self._inner, name)

    def set_(self: _RecordingStream, value: Any) -> None:
        setattr(self._inner, name, value)

    return property(get, set_)


class _RecordingStream(StreamedResponse):
    """The live stream of a miss, passed through event by event, noting delta boundaries.

    Like pydantic-ai's continuation stream, it iterates the inner stream's ``__aiter__``
    (which already adds final-result and part-end events) and delegates the rest to it.
    """

    def __init__(self, inner: StreamedResponse) -> None:
        # No StreamedResponse.__init__: it would reset the inner stream's fields through the
        # delegating properties below.
        self._inner = inner
        self._event_iterator = None
        self.deltas = _Deltas()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._inner!r})"

    def __eq__(self, other: object) -> bool:
        return other is self

    model_request_parameters = _delegate("model_request_parameters")
    final_result_event = _delegate("final_result_event")
    provider_response_id = _delegate("provider_response_id")
    provider_details = _delegate("provider_details")
    finish_reason = _delegate("finish_reason")
    state = _delegate("state")
    metadata = _delegate("metadata")
    failed_attempts = _delegate("failed_attempts")

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._event_iterator is None:
            self._event_iterator = self._record()
        return self._event_iterator

    async def _record(self) -> AsyncIterator[Any]:
        async for event in self._inner:
            self.deltas.see(event)
            yield event

    async def _get_event_iterator(self) -> AsyncIterator[Any]:  # pragma: no cover - unused
        async for event in self._inner:
            yield event

    def _enforce_request_deadline(self, deadline: Any) -> None:
        self._inner._enforce_request_deadline(deadline)

    async def cancel(self) -> None:
        await self._inner.cancel()

    def get_stream_cancel_errors(self) -> tuple[type[BaseException], ...]:
        return self._inner.get_stream_cancel_errors()

    async def close_stream(self) -> None:
        await self._inner.close_stream()

    def get(self) -> ModelResponse:
        return self._inner.get()

    def time_to_first_chunk(self, request_start: float) -> float | None:
        return self._inner.time_to_first_chunk(request_start)

    @property
    def cancelled(self) -> bool:
        return self._inner.cancelled

    @property
    def usage(self) -> RequestUsage:
        return self._inner.usage

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def provider_name(self) -> str | None:
        return self._inner.provider_name

    @property
    def provider_url(self) -> str | None:
        return self._inner.provider_url

    @property
    def timestamp(self) -> datetime:
        return self._inner.timestamp


# -- runs: which entry answered last, for the capability to reject it if the run fails --------


@dataclass
class _RunRecord:
    """One agent run under a :class:`CacheCapability`, seen by every CachedModel in it."""

    run_id: str | None
    last: tuple[Cache, str] | None = None
    """The cache and key of the entry behind the run's latest model response, if stored."""


_RUN: ContextVar[_RunRecord | None] = ContextVar("sheetcache_pydantic_ai_run", default=None)


def _current_record() -> _RunRecord | None:
    record = _RUN.get()
    if record is None:
        return None
    ctx = get_current_run_context()
    if ctx is not None and record.run_id is not None and ctx.run_id != record.run_id:
        return None  # a nested agent's run (a tool calling another agent) is not this one
    return record


def _note_run(entry: tuple[Cache, str] | None) -> None:
    record = _current_record()
    if record is not None:
        record.last = entry


def _unnote_run(key: str) -> None:
    record = _current_record()
    if record is not None and record.last is not None and record.last[1] == key:
        record.last = None


def _reject_entry(cache: Cache, key: str, note: str) -> bool:
    """Mark a stored entry ``rejected`` (a miss from now on) with ``note``; False if absent.

    Written to the store itself (lookups read it before the outbox), and queued after any
    unsent copy of the answer so that flushing it later cannot undo the mark. Blocking I/O.
    """
    # The front has no public "mark this entry" call yet: this is the one place that uses
    # its store and L1 directly.
    store = cache._store
    entry = cache.backend.get_many([key]).get(key)
    queued = store.outbox.find(key) if store.outbox is not None else None
    entry = queued or entry  # the queued copy is the newer one
    if entry is None or entry.status == "rejected":
        return False
    note = f"{entry.note}\n{note}" if entry.note else note
    entry = replace(entry, status="rejected", note=note)
    store.write(entry, direct=True)  # falls back to the outbox if the store is down
    if queued is not None and store.outbox is not None:
        store.outbox.append([entry])
    cache._l1.forget_keys({key})
    return True


# -- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCacheStats:
    """What a :class:`CachedModel` (or a :class:`CacheCapability`) saved since it was made."""

    hits: int = 0
    """Model requests answered from the cache (including concurrent twins of a miss)."""
    misses: int = 0
    """Model requests sent to the wrapped model."""
    not_stored: int = 0
    """Misses whose response was not stored: refusals, truncations, empty responses, streams
    not read to the end, or responses the codec could not write."""
    tokens_saved: int = 0
    """Input plus output tokens of the stored responses served by hits."""
    dollars_saved: Decimal = Decimal(0)
    """Their price per genai-prices, at the time each was first answered. Hits on models it
    does not price add nothing, so this is a lower bound."""
    rejected: int = 0
    """Entries a :class:`CacheCapability` marked ``rejected`` because the run failed on them
    (output validation out of retries), so the next run asks the model again."""

    @property
    def hit_rate(self) -> float:
        """Hits / (hits + misses), 0.0 before any request."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class _Counters:
    """Thread-safe running totals behind :class:`ModelCacheStats`, shareable between models."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = ModelCacheStats()

    def add(self, **deltas: Any) -> None:
        with self._lock:
            self._stats = replace(
                self._stats, **{k: getattr(self._stats, k) + v for k, v in deltas.items()}
            )

    def snapshot(self) -> ModelCacheStats:
        return self._stats


class _NotStored(Exception):
    """Carries a response out of ``Cache.aget_or_call`` without it being stored."""

    def __init__(self, response: ModelResponse) -> None:
        super().__init__("response not cached")
        self.response = response


class _StreamMiss(Exception):
    """Raised instead of calling the model: a streamed miss streams outside the cache."""


_NOT_STORED_REASONS = frozenset({"length", "content_filter", "error"})


def _price(response: ModelResponse) -> Decimal | None:
    if response.usage.cost is not None:
        return response.usage.cost
    if not response.model_name:
        return None
    try:
        return response.cost().total_price
    except (LookupError, ValueError):  # a model or usage genai-prices cannot price
        return None


@dataclass(init=False)
class CachedModel(WrapperModel):
    """A pydantic-ai model that answers repeated requests from a :class:`~sheetcache.Cache`.

    Args:
        model: the model to cache, or a model name such as ``"openai:gpt-4o"``; it becomes
            :attr:`wrapped`.
        cache: where answers live.
        namespace: ``None`` to use the cache's namespace only; else a namespace of this
            model's own, added to the key as the key part ``namespace`` (entries stay in the
            cache's namespace, so ``sheetcache ls`` lists them with the others).
        cache_errors: also store refusals (``content_filter``), truncated (``length``),
            ``error`` and empty responses. Exceptions are never stored.
        samples: keep up to this many different answers per request and serve them in
            rotation once there are that many (see ``samples`` of :meth:`Cache.get_or_call`).
            A streamed miss is then read to its end before it is replayed to the caller, so
            that it fills the right sample.

    The cache's mode applies to every request, streamed or not, including a
    :meth:`Cache.override` around an agent run: ``replay`` raises
    :class:`~sheetcache.CacheMissError` before the model is called, ``refresh`` asks the
    model and stores over the old answer, ``off`` bypasses the cache.

    Example:
        >>> from pydantic_ai import Agent
        >>> from pydantic_ai.models.test import TestModel
        >>> from sheetcache import Cache
        >>> model = CachedModel(TestModel(), Cache("memory://"))
        >>> agent = Agent(model)
        >>> agent.run_sync("What is 2+2?").output == agent.run_sync("What is 2+2?").output
        True
        >>> model.stats.hits, model.stats.misses
        (1, 1)
    """

    cache: Cache
    """Where answers live."""
    namespace: str | None
    """This model's namespace within the cache, or None for the cache's own."""
    cache_errors: bool
    """Whether refusals, truncations, ``error`` and empty responses are stored too."""
    samples: int
    """Different answers kept per request (temperature > 0), served in rotation once there
    are this many; passed to :meth:`Cache.aget_or_call`. 1: one answer per request."""

    def __init__(
        self,
        model: Model | KnownModelName | str,
        cache: Cache,
        *,
        namespace: str | None = None,
        cache_errors: bool = False,
        samples: int = 1,
    ) -> None:
        if not isinstance(cache, Cache):
            raise ConfigError(f"cache must be a sheetcache.Cache, not {type(cache).__qualname__}")
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise ConfigError(f"namespace must be a non-empty str or None, not {namespace!r}")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ConfigError(f"samples must be an int >= 1, not {samples!r}")
        super().__init__(model)  # type: ignore[arg-type]
        self.cache = cache
        self.namespace = namespace
        self.cache_errors = cache_errors
        self.samples = samples
        self._counters = _Counters()

    @property
    def stats(self) -> ModelCacheStats:
        """Hits, misses, tokens and dollars saved since this model was made."""
        return self._counters.snapshot()

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Answer from the cache, or call the wrapped model and store its response."""
        key = self._key(messages, model_settings, model_request_parameters)
        if key is None:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        prompt, key_parts, entry_key = key
        answer: ModelResponse | None = None  # set once the model answered: it is paid for

        async def call(_prompt: Any) -> Answer[ModelResponse]:
            nonlocal answer
            answer = await self.wrapped.request(messages, model_settings, model_request_parameters)
            if not self._storable(answer) or not self._encodes(answer):
                raise _NotStored(answer)
            return Answer(answer, metadata=self._metadata(answer))

        try:
            response: ModelResponse = await self.cache.aget_or_call(
                prompt,
                call,  # type: ignore[arg-type]  # an Answer gives the caller its value
                samples=self.samples,
                **key_parts,
            )
        except _NotStored as exc:  # also reaches concurrent twins: they share the answer
            _note_run(None)
            if answer is not None:
                self._counters.add(misses=1, not_stored=1)
                return exc.response
            return self._served(exc.response)[0]
        except UnsupportedValueError as exc:  # the codec could not write it: never lose an answer
            log.warning("sheetcache: could not store a %s response (%s)", self.model_name, exc)
            _note_run(None)
            if answer is not None:
                self._counters.add(misses=1, not_stored=1)
                return answer
            return self._served(exc.value)[0]
        except Exception as exc:
            if answer is None:  # the model's own error, or a replay-mode miss: the caller's
                raise
            log.warning(
                "sheetcache: storing a %s response failed (%s: %s); returning it uncached",
                self.model_name, type(exc).__name__, exc,
            )  # fmt: skip
            _note_run(None)
            self._counters.add(misses=1, not_stored=1)
            return answer
        # Which sample answered is the cache's choice, unknown here: samples are never rejected.
        _note_run((self.cache, entry_key) if self.samples == 1 else None)
        if answer is not None:
            self._counters.add(misses=1)
            return response
        return self._served(response)[0]

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        """Replay a cached stream delta by delta, or stream live and store it once complete."""
        key = self._key(messages, model_settings, model_request_parameters)
        if key is not None and self.samples > 1:
            prompt, key_parts, _ = key
            yield await self._buffered_stream(
                prompt, key_parts, messages, model_settings, model_request_parameters, run_context
            )
            return
        if key is not None:
            prompt, key_parts, entry_key = key
            stored, shared = await self._stored(prompt, key_parts)
            if stored is not None:
                _note_run(None if shared else (self.cache, entry_key))
                served, deltas = self._served(stored)
                events = None if deltas is None else _replay_events(served, deltas)
                yield _ReplayedStream(served, model_request_parameters, events)
                return
            self._counters.add(misses=1)
            # Noted before the stream is read: the run may judge the answer before it ends.
            _note_run((self.cache, entry_key))
        stored_it = False
        try:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                if key is None:
                    yield stream
                    return
                recording = _RecordingStream(stream)
                yield recording
            # Reached only if the consumer left without an error; `get()` says whether the
            # stream was read to its end ('complete') or abandoned ('incomplete', ...).
            stored_it = self._store_streamed(key, stream.get(), recording.deltas.result())
        finally:
            if key is not None and not stored_it:
                self._counters.add(not_stored=1)
                _unnote_run(entry_key)

    async def _buffered_stream(
        self,
        prompt: list[dict[str, Any]],
        key_parts: dict[str, Any],
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None,
    ) -> StreamedResponse:
        """A streamed request with samples: read the stream to its end inside the cache's
        call, so the answer fills the sample the cache picks, then replay it in its deltas.
        """
        answer: ModelResponse | None = None

        async def call(_prompt: Any) -> Answer[ModelResponse]:
            nonlocal answer
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                recording = _RecordingStream(stream)
                async for _event in recording:
                    pass
            answer = stream.get()
            deltas = recording.deltas.result()
            if deltas is not None:
                answer = _with_deltas(answer, deltas)
            if not self._storable(answer) or not self._encodes(answer):
                raise _NotStored(answer)
            return Answer(answer, metadata=self._metadata(answer))

        try:
            response: ModelResponse = await self.cache.aget_or_call(
                prompt,
                call,  # type: ignore[arg-type]  # an Answer gives the caller its value
                samples=self.samples,
                **key_parts,
            )
        except _NotStored as exc:
            if answer is None:
                served, deltas = self._served(exc.response)
            else:
                self._counters.add(misses=1, not_stored=1)
                served, deltas = _split_deltas(exc.response)
        else:
            if answer is None:
                served, deltas = self._served(response)
            else:
                self._counters.add(misses=1)
                served, deltas = _split_deltas(response)
        events = None if deltas is None else _replay_events(served, deltas)
        return _ReplayedStream(served, model_request_parameters, events)

    # -- helpers --------------------------------------------------------------------------

    def _key(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], str] | None:
        """``(prompt, key_parts, entry key)``, or None to bypass the cache (a continuation, or
        a request that has no key).
        """
        if messages and isinstance(messages[-1], ModelResponse):
            # Continuing a suspended response (background job, batch, pause_turn): each poll
            # must reach the provider.
            return None
        try:
            prompt, key_parts = request_key(
                self.wrapped, messages, model_settings, model_request_parameters,
                namespace=self.namespace,
            )  # fmt: skip
            # The cache's own canonical form, checked here, where a failure can still bypass.
            return prompt, key_parts, self.cache.key(prompt, **key_parts)
        except Exception as exc:
            if self.cache._mode_now() == "replay":  # calling uncached would call the model
                raise CacheMissError(
                    f"replay mode: a {self.model_name} request has no cache key ({exc}), so it "
                    "cannot be answered from the cache, and replay never calls the model"
                ) from exc
            log.warning(
                "sheetcache: cannot key a %s request (%s); calling uncached", self.model_name, exc
            )
            return None

    async def _stored(
        self, prompt: list[dict[str, Any]], key_parts: dict[str, Any]
    ) -> tuple[ModelResponse | None, bool]:
        """(the stored or in-flight answer or None, whether it is a twin's that was not stored)."""

        async def lookup_only(_prompt: Any) -> ModelResponse:
            # A miss streams live, so the user sees tokens as they come; concurrent identical
            # streams therefore each call the model (no single-flight here).
            raise _StreamMiss

        try:
            return await self.cache.aget_or_call(prompt, lookup_only, **key_parts), False
        except _StreamMiss:
            return None, False
        except _NotStored as exc:  # a concurrent request's answer, shared but not stored
            return exc.response, True
        except UnsupportedValueError as exc:
            return exc.value, True

    def _store_streamed(
        self,
        key: tuple[list[dict[str, Any]], dict[str, Any], str],
        response: ModelResponse,
        deltas: list[list[Any]] | None,
    ) -> bool:
        if not self._storable(response) or not self._encodes(response):
            return False
        prompt, key_parts, _ = key
        metadata = self._metadata(response)
        if deltas is not None:
            response = _with_deltas(response, deltas)
        try:
            self.cache.set(prompt, response, metadata=metadata, **key_parts)
        except Exception as exc:  # noqa: BLE001 - the user already has the answer
            log.warning("sheetcache: could not store a %s response (%s)", self.model_name, exc)
            return False
        return True

    def _encodes(self, response: ModelResponse) -> bool:
        """Whether the codec can write ``response``; if not, says why, once."""
        try:
            encode_value(response)
        except UnsupportedValueError as exc:
            log.warning("sheetcache: not storing a %s response: %s", self.model_name, exc)
            return False
        return True

    def _metadata(self, response: ModelResponse) -> dict[str, Any]:
        """What the entry records about the call: its usage, for the savings stats."""
        usage = response.usage
        return {
            "usage": {
                "model": response.model_name or self.model_name,
                "provider": response.provider_name or self.system,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
            }
        }

    def _storable(self, response: ModelResponse) -> bool:
        if response.state != "complete":
            return False
        if self.cache_errors:
            return True
        return bool(response.parts) and response.finish_reason not in _NOT_STORED_REASONS

    def _served(self, stored: ModelResponse) -> tuple[ModelResponse, Any]:
        """A hit: the stored response as a fresh object that costs this run nothing, and the
        delta boundaries of the stream that first answered it (None if it was not streamed).
        """
        stored, deltas = _split_deltas(stored)
        saved = stored.usage
        tokens = saved.input_tokens + saved.output_tokens
        price = _price(stored)
        self._counters.add(hits=1, tokens_saved=tokens, dollars_saved=price or Decimal(0))
        response = copy.deepcopy(stored)
        marker = {**(response.metadata or {}).get("sheetcache", {}), "hit": True}
        marker["saved_usage"] = {
            "input_tokens": saved.input_tokens,
            "output_tokens": saved.output_tokens,
        }
        if price is not None:
            marker["saved_usd"] = str(price)
        marker["answered_at"] = stored.timestamp.isoformat()
        # Received now, in this run: the agent stamps its run id on it like on any response.
        served = replace(
            response,
            usage=RequestUsage(),
            timestamp=datetime.now(timezone.utc),
            run_id=None,
            conversation_id=None,
            metadata={**(response.metadata or {}), "sheetcache": marker},
        )
        return served, deltas


# -- the capability -------------------------------------------------------------------------


@dataclass
class CacheCapability(AbstractCapability[Any]):
    """Cache an agent's model requests: ``Agent(model, capabilities=[CacheCapability(cache)])``.

    Wraps whichever model serves each request (the agent's, a run's ``model=``, one a hook
    picked) in a :class:`CachedModel` sharing this capability's :attr:`stats`. List it first
    among capabilities that wrap models, so it sits outside them (batching, for one).
    """

    cache: Cache
    """Where answers live."""

    _: KW_ONLY

    namespace: str | None = None
    """A namespace within the cache, or None for the cache's own (see :class:`CachedModel`)."""

    cache_errors: bool = False
    """Also store refusals, truncations, ``error`` and empty responses."""

    samples: int = 1
    """Different answers kept per request, served in rotation (see :class:`CachedModel`)."""

    _counters: _Counters = field(default_factory=_Counters, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.cache, Cache):
            raise ConfigError(
                f"cache must be a sheetcache.Cache, not {type(self.cache).__qualname__}"
            )

    @property
    def stats(self) -> ModelCacheStats:
        """Hits, misses, tokens and dollars saved over every request this capability wrapped."""
        return self._counters.snapshot()

    @classmethod
    def get_serialization_name(cls) -> str | None:
        """None: a live Cache cannot be rebuilt from an agent spec."""
        return None  # a live Cache cannot come from an agent spec

    async def wrap_run(
        self, ctx: RunContext[Any], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        """Run the agent; if it fails on a model answer, mark that answer's entry rejected.

        pydantic-ai raises :class:`~pydantic_ai.UnexpectedModelBehavior` when the output fails
        validation with no retries left (or a tool's retries run out). Replaying the answer
        would fail every re-run the same way without asking the model, so its entry gets the
        status ``rejected`` with a note for reviewers, and the next run is a miss.
        """
        record = _RunRecord(ctx.run_id)
        token = _RUN.set(record)  # seen by every CachedModel request of this run
        try:
            return await handler()
        except UnexpectedModelBehavior as exc:
            if record.last is not None:
                await self._reject(*record.last, exc)
            raise
        finally:
            # A run finished in another context keeps the record there, where it dies with it.
            with contextlib.suppress(ValueError):
                _RUN.reset(token)

    async def _reject(self, cache: Cache, key: str, error: BaseException) -> None:
        note = (
            f"sheetcache: not replayed: an agent run failed on this answer "
            f"({type(error).__name__}: {error})"
        )
        try:
            if cache.backend.local:
                rejected = _reject_entry(cache, key, note)
            else:
                rejected = await asyncio.to_thread(_reject_entry, cache, key, note)
        except Exception as exc:  # noqa: BLE001 - the run's own error is what the caller sees
            log.warning("sheetcache: could not mark entry %s rejected (%s)", key, exc)
            return
        if rejected:
            self._counters.add(rejected=1)
            log.info("sheetcache: entry %s rejected: %s", key, note)

    def get_wrapper_model(self, model: Model) -> Model | None:
        """Wrap ``model`` in a CachedModel, unless it is cached already."""
        if isinstance(model, CachedModel):  # cached already, by this capability or by hand
            return None
        wrapper = CachedModel(
            model, self.cache, namespace=self.namespace, cache_errors=self.cache_errors,
            samples=self.samples,
        )  # fmt: skip
        wrapper._counters = self._counters
        return wrapper
