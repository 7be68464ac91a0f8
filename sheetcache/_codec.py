"""Answers to text and back, so a hit returns the same type the miss returned.

Each stored answer is a pair ``(value_type, text)``. The text is what a reviewer reads and
edits in a sheet, so it stays human-readable: a str is stored as itself, JSON data as JSON,
pydantic models and dataclasses as their JSON fields. ``value_type`` says how to read it back:

=============================  ====================================================
``str``                        the text itself
``bytes``                      base64
``json``                       JSON (dict, list, int, float, bool, None; tuples come back as lists)
``pydantic:MODULE:QUALNAME``   ``Model.model_validate_json(text)``
``dataclass:MODULE:QUALNAME``  the dataclass rebuilt from its JSON fields
``NAME`` (registered)          an integration's own readable format, see :func:`register_codec`
=============================  ====================================================
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import math
from collections.abc import Callable
from typing import Any

import orjson

from sheetcache._errors import UnsupportedValueError

__all__ = ["decode_value", "encode_value", "is_immutable", "register_codec"]

# Classes seen at encode time, so a class defined inside a function still decodes in this
# process (importing it by name would fail).
_classes: dict[str, type] = {}

_adapters: dict[type, Any] = {}

# Integrations' codecs, imported on first decode: value type -> module that registers it.
_CODEC_MODULES = {
    "pydantic-ai-response": "sheetcache.pydantic_ai",
    "http-response": "sheetcache._http",
    "langchain-generations": "sheetcache.langchain",
}

# Registered formats: exact type -> (name, encode), name -> decode.
_encoders: dict[type, tuple[str, Callable[[Any], str]]] = {}
_decoders: dict[str, Callable[[str], Any]] = {}


def register_codec(
    name: str, cls: type, encode: Callable[[Any], str], decode: Callable[[str], Any]
) -> None:
    """Store instances of exactly ``cls`` as ``encode(obj)`` under value type ``name``.

    For integrations whose answers deserve a text a reviewer can read and edit (a model
    response shown as its text, not as a JSON dump). ``decode`` must invert ``encode`` and
    raise ValueError on text it cannot read (the cache then treats the entry as a miss).
    """
    if ":" in name or name in {"str", "bytes", "json"}:
        raise ValueError(f"codec name {name!r} is reserved or contains ':'")
    _encoders[cls] = (name, encode)
    _decoders[name] = decode


_IMMUTABLE = frozenset({str, bytes, int, float, bool, type(None)})


def is_immutable(value: Any) -> bool:
    """True if a hit may hand out this very object without a caller being able to change it."""
    return type(value) in _IMMUTABLE


def _class_name(cls: type) -> str:
    name = f"{cls.__module__}:{cls.__qualname__}"
    _classes[name] = cls
    return name


def _find_class(name: str) -> type:
    cls = _classes.get(name)
    if cls is None:
        module, _, qualname = name.partition(":")
        obj: Any = importlib.import_module(module)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
        cls = _classes[name] = obj
    return cls


def _has_non_finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_non_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_non_finite(v) for v in obj)
    return False


def encode_value(value: Any) -> tuple[str, str]:
    """Return ``(value_type, text)`` for an answer.

    Raises:
        UnsupportedValueError: the answer's type cannot be stored; ``.value`` holds it.
    """
    kind = type(value)
    if kind is str:
        return "str", value
    if kind is bytes:
        return "bytes", base64.b64encode(value).decode("ascii")
    registered = _encoders.get(kind)
    if registered is not None:
        return registered[0], registered[1](value)
    if hasattr(value, "model_dump_json") and not isinstance(value, type):
        return f"pydantic:{_class_name(kind)}", value.model_dump_json()
    try:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return f"dataclass:{_class_name(kind)}", orjson.dumps(value).decode()
        text = orjson.dumps(value).decode()
    except TypeError as exc:
        raise UnsupportedValueError(
            f"cannot cache an answer of type {kind.__qualname__} ({exc}): return str, bytes, "
            "JSON-compatible data, a pydantic model or a dataclass, or pass store=False. "
            "The answer is kept on this exception's .value",
            value,
        ) from None
    if "null" in text and _has_non_finite(value):  # orjson would silently store NaN as null
        raise UnsupportedValueError(
            "cannot cache an answer containing NaN or an infinity: JSON has no form for it. "
            "The answer is kept on this exception's .value",
            value,
        )
    return "json", text


def decode_value(value_type: str, text: str) -> Any:
    """Rebuild an answer from :func:`encode_value`'s output.

    Raises:
        ValueError: the text does not parse as ``value_type`` (for example a reviewer typed
            invalid JSON); the cache treats that as a miss.
    """
    if value_type == "str":
        return text
    if value_type == "json":
        return orjson.loads(text)
    if value_type == "bytes":
        return base64.b64decode(text.encode("ascii"), validate=True)
    decode = _decoders.get(value_type)
    if decode is None and value_type in _CODEC_MODULES:
        # A process that never imported the integration can still serve its entries.
        importlib.import_module(_CODEC_MODULES[value_type])
        decode = _decoders.get(value_type)
    if decode is not None:
        return decode(text)
    kind, _, name = value_type.partition(":")
    try:
        cls = _find_class(name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {name} to rebuild a cached answer: {exc}") from None
    if kind == "pydantic":
        return cls.model_validate_json(text)  # type: ignore[attr-defined]
    if kind == "dataclass":
        data = orjson.loads(text)
        adapter = _adapters.get(cls)
        if adapter is None:
            try:  # pydantic rebuilds nested dataclasses and typed fields; plain call otherwise
                from pydantic import TypeAdapter
            except ImportError:
                return cls(**data)
            adapter = _adapters[cls] = TypeAdapter(cls)
        return adapter.validate_python(data)
    raise ValueError(f"unknown value type {value_type!r}")
