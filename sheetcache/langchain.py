"""LangChain's LLM cache on a sheetcache store: ``set_llm_cache(LangChainCache(Cache(url)))``.

:class:`LangChainCache` is a ``langchain_core.caches.BaseCache`` (sync and async), so every
chat model and LLM in LangChain uses it, globally or per model (``ChatModel(cache=...)``).

The key is built from LangChain's ``prompt`` and ``llm_string``:

- the prompt (the serialised message list, for chat models) becomes a list of plain
  messages, ``{"role": "human", "content": ...}`` with every other field kept, so the
  Sheet's prompt column reads like a conversation;
- the ``llm_string`` (the serialised model plus the call's parameters) is parsed into the
  key parts ``model``, ``llm`` (the model's settings) and ``params``. Both are compared as
  data, so the order of keys inside them can never cause a miss, and reviewers see the
  model and its settings in their columns. An ``llm_string`` that does not parse is kept
  whole as the ``llm_string`` key part.

The answer (the list of ``Generation``/``ChatGeneration``) is stored as its text, a marker
line, and LangChain's own serialisation of the list (message content, tool calls, usage
metadata), so a hit returns generations equal to the stored ones; a reviewer's edit of the
text is served as the generation's text (and its message's content), and a rejected entry
is a miss, as in the core. Usage metadata is recorded for :attr:`CacheStats.saved_usd
<sheetcache.CacheStats.saved_usd>`.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import Any

import orjson

from sheetcache._cache import Cache
from sheetcache._codec import register_codec
from sheetcache._errors import MissingDependencyError
from sheetcache._keys import is_secret_name
from sheetcache._logging import install_hint

try:
    from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
    from langchain_core.load import dumpd, load
    from langchain_core.outputs import ChatGeneration, Generation
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        f"sheetcache.langchain needs langchain-core: {install_hint('langchain')}"
    ) from None

__all__ = ["CODEC_NAME", "KEY_FORMAT", "LangChainCache", "key_parts_of", "prompt_of"]

CODEC_NAME = "langchain-generations"
KEY_FORMAT = "langchain-v1"

# LangChain packages -> genai-prices provider ids (elsewhere genai-prices guesses by model).
_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "groq": "groq",
    "mistralai": "mistral",
    "google_genai": "google",
    "deepseek": "deepseek",
    "xai": "x-ai",
}
_MODEL_FIELDS = ("model", "model_name", "model_id", "deployment_name")


# -- the key ---------------------------------------------------------------------------------


# Parsing is pure and a program repeats its prompts and model strings, so both parses are
# memoised (the parsed objects are shared: nothing downstream mutates them).
@functools.lru_cache(maxsize=1024)
def prompt_of(prompt: str) -> Any:
    """The prompt as a reviewer reads it: plain messages for a chat model's serialised list,
    else the prompt text itself.
    """
    if not prompt.startswith("[{"):
        return prompt
    try:
        items = json.loads(prompt)
    except ValueError:
        return prompt
    messages = []
    for item in items:
        kwargs = item.get("kwargs") if isinstance(item, dict) else None
        if not isinstance(kwargs, dict) or item.get("type") != "constructor":
            return prompt  # not LangChain's serialised messages: keep it exactly
        message = {"role": kwargs.get("type"), **{k: v for k, v in kwargs.items() if k != "type"}}
        name = (item.get("id") or [""])[-1]
        if not str(name).endswith("Message") or name == "ChatMessage":
            message["class"] = name  # unusual classes stay apart in the key
        messages.append(message)
    return messages


@functools.lru_cache(maxsize=256)
def key_parts_of(llm_string: str) -> dict[str, Any]:
    """The key parts of an ``llm_string``: ``model``, ``llm`` and ``params`` where it parses."""
    llm: Any = None
    params_text = llm_string
    at = llm_string.find("---")
    while at >= 0:  # the JSON of the model may hold "---" itself: find the split that parses
        try:
            llm = json.loads(llm_string[:at])
            params_text = llm_string[at + 3 :]
            break
        except ValueError:
            at = llm_string.find("---", at + 1)
    try:
        params = dict(ast.literal_eval(params_text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return {"llm_string": llm_string, "integration": KEY_FORMAT}
    # A call-time argument named like a secret (api_key=...) is never keyed nor stored.
    params = {k: v for k, v in params.items() if not (isinstance(k, str) and is_secret_name(k))}
    settings = llm.get("kwargs", {}) if isinstance(llm, dict) else {}
    model = next(
        (v for f in _MODEL_FIELDS for v in (settings.get(f), params.get(f)) if isinstance(v, str)),
        None,
    )
    parts: dict[str, Any] = {"model": model, "params": params, "integration": KEY_FORMAT}
    if llm is not None:
        parts["llm"] = llm
    return parts


def _provider(key_parts: dict[str, Any]) -> str | None:
    path = (key_parts.get("llm") or {}).get("id") or []
    for piece in path:
        if isinstance(piece, str) and piece.removeprefix("langchain_") in _PROVIDERS:
            return _PROVIDERS[piece.removeprefix("langchain_")]
    kind = (key_parts.get("params") or {}).get("_type")
    if isinstance(kind, str):
        for name, provider in _PROVIDERS.items():
            if name in kind:
                return provider
    return None


# -- the stored text -------------------------------------------------------------------------

_TRAILER = (
    "--- sheetcache: LangChain generations v1. Edit the answer above; keep this line and below ---"
)
_SEPARATOR = "\n\n" + _TRAILER + "\n"
_NEXT = "\n\n=== next generation ===\n\n"


class Generations(list):  # type: ignore[type-arg]
    """A list of generations as the cache stores it (its codec's exact type)."""


def _text_of(generation: Generation) -> str:
    message = getattr(generation, "message", None)
    calls = getattr(message, "tool_calls", None) or []
    if generation.text or not calls:
        return generation.text
    return orjson.dumps(
        [{"tool_call": c["name"], "args": c["args"]} for c in calls], option=orjson.OPT_INDENT_2
    ).decode()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(generations: Generations) -> str:
    body = _NEXT.join(_text_of(g) for g in generations)
    meta = {"text_sha256": _sha256(body), "generations": [dumpd(g) for g in generations]}
    return body + _SEPARATOR + orjson.dumps(meta).decode()


def _load(data: Any) -> Any:
    with warnings.catch_warnings():  # load() is marked beta; core classes only, on purpose
        warnings.simplefilter("ignore")
        return load(data, allowed_objects="core")


def _decode_unchecked(text: str) -> Generations:
    at = text.rfind("\n" + _TRAILER + "\n")
    if at < 0:
        raise ValueError("the LangChain generations marker line is missing")
    body = text[:at].removesuffix("\n")
    meta = orjson.loads(text[at + len(_TRAILER) + 2 :])
    generations = [_load(g) for g in meta["generations"]]
    if not all(isinstance(g, Generation) for g in generations):
        raise ValueError("the stored generations are not LangChain Generation objects")
    if _sha256(body) != meta.get("text_sha256"):
        texts = body.split(_NEXT)
        if len(texts) != len(generations):
            raise ValueError(f"the edited answer must keep {len(generations)} generation(s)")
        generations = [_edited(g, t) for g, t in zip(generations, texts, strict=True)]
    return Generations(generations)


def _edited(generation: Generation, text: str) -> Generation:
    """``generation`` with a reviewer's ``text`` (or tool call arguments) in place."""
    if _text_of(generation) == text:
        return generation
    if not isinstance(generation, ChatGeneration):
        return generation.model_copy(update={"text": text})
    message = generation.message
    calls = getattr(message, "tool_calls", None) or []
    if generation.text or not calls:
        new_message = message.model_copy(update={"content": text})
    else:
        edited = orjson.loads(text)
        if not isinstance(edited, list) or len(edited) != len(calls):
            raise ValueError(
                f"the edited answer must stay a JSON list of {len(calls)} tool call(s)"
            )
        new_calls = [{**c, "args": e["args"]} for c, e in zip(calls, edited, strict=True)]
        new_message = message.model_copy(update={"tool_calls": new_calls})
    return ChatGeneration(message=new_message, generation_info=generation.generation_info)


def _decode(text: str) -> Generations:
    """Inverse of :func:`_encode`; a reviewer's edit replaces the text.

    Raises:
        ValueError: the text was damaged beyond reading (the entry is then a miss).
    """
    try:
        return _decode_unchecked(text)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"the stored LangChain generations do not read back: {exc!r}") from None


register_codec(CODEC_NAME, Generations, _encode, _decode)


# -- the cache -------------------------------------------------------------------------------


def _usage(generations: Sequence[Generation], key_parts: dict[str, Any]) -> dict[str, Any] | None:
    input_tokens = output_tokens = 0
    model = key_parts.get("model")
    found = False
    for generation in generations:
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if usage:
            found = True
            input_tokens += int(usage.get("input_tokens") or 0)
            output_tokens += int(usage.get("output_tokens") or 0)
        metadata = getattr(message, "response_metadata", None) or {}
        model = metadata.get("model_name") or metadata.get("model") or model
    if not found:
        return None
    return {
        "model": model,
        "provider": _provider(key_parts),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }


class LangChainCache(BaseCache):
    """LangChain's LLM cache, backed by a sheetcache :class:`~sheetcache.Cache`.

    Args:
        cache: the store, namespace, ttl and mode to use (``replay`` in CI: a miss raises
            :class:`~sheetcache.CacheMissError` instead of calling the model).

    Example:
        >>> from langchain_core.globals import set_llm_cache
        >>> from sheetcache import Cache
        >>> set_llm_cache(LangChainCache(Cache("memory://")))
        >>> set_llm_cache(None)
    """

    def __init__(self, cache: Cache) -> None:
        if not isinstance(cache, Cache):
            raise TypeError(f"LangChainCache needs a sheetcache.Cache, not {cache!r}")
        self.cache = cache

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The stored generations for ``prompt`` and ``llm_string``, or None."""
        value = self.cache.get(prompt_of(prompt), **key_parts_of(llm_string))
        return list(value) if isinstance(value, list) else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store ``return_val`` (a list of generations) for ``prompt`` and ``llm_string``."""
        key_parts = key_parts_of(llm_string)
        usage = _usage(return_val, key_parts)
        self.cache.set(
            prompt_of(prompt),
            Generations(return_val),
            metadata={"usage": usage} if usage else None,
            **key_parts,
        )

    def clear(self, **kwargs: Any) -> None:
        """Delete the LangChain entries of the cache's namespace (other entries stay)."""
        self.cache.flush()
        for entry in list(self.cache.entries(self.cache.namespace)):
            if entry.key_parts.get("integration") == KEY_FORMAT:
                self.cache.delete(entry.prompt, **entry.key_parts)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Async :meth:`lookup`; a store that waits on the network is read in a thread."""
        if self.cache.backend.lookup_is_local:
            return self.lookup(prompt, llm_string)
        return await asyncio.to_thread(self.lookup, prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async :meth:`update`: the write is local (store or outbox), so it runs inline."""
        self.update(prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`."""
        await asyncio.to_thread(self.clear, **kwargs)
