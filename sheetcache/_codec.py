r"""Answers to text and back, so a hit returns the same type the miss returned.

Each stored answer is a pair ``(value_type, text)``. The text is what a reviewer reads and
edits in a sheet, so it stays human-readable: a str is stored as itself, JSON data as JSON,
pydantic models and dataclasses as their JSON fields. ``value_type`` says how to read it back:

=============================  ====================================================
``str``                        the text itself
``bytes``                      base64
``json``                       JSON (dict, list, int, float, bool, None; tuples come back as
                               lists). Also a str holding a lone surrogate (half an emoji),
                               written as a JSON string with that surrogate escaped
                               (``"\\ud83d"``), since no store can write it raw
``pydantic:MODULE:QUALNAME``   ``Model.model_validate_json(text)``
``dataclass:MODULE:QUALNAME``  the dataclass rebuilt from its JSON fields
``NAME`` (registered)          an integration's own readable format, see :func:`register_codec`
=============================  ====================================================

Every text written is valid Unicode, so every store can hold it; lone surrogates anywhere
in an answer are escaped in JSON and come back exactly (except a high surrogate directly
followed by a low one: JSON reads that pair back as the one character it spells). What cannot be stored exactly
(NaN, a dict with non-str keys, a socket) raises :class:`UnsupportedValueError` at encode
time: the cache then returns the answer and skips storing it. Decoding never raises
anything but :class:`ValueDecodeError`, which the cache treats as a miss.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import math
import re
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import orjson

from sheetcache._errors import UnsupportedValueError

__all__ = ["ValueDecodeError", "decode_value", "encode_value", "is_immutable", "register_codec"]


class ValueDecodeError(ValueError):
    """Stored text that does not read back as its value type (a reviewer's typo, a class
    that moved, a truncated cell). The cache treats the entry as a miss.
    """


# Classes seen at encode time, so a class defined inside a function still decodes in this
# process (importing it by name would fail).
_classes: dict[str, type] = {}

_adapters: dict[type, Any] = {}

# Registered formats: exact type -> (name, encode), name -> decode.
_encoders: dict[type, tuple[str, Callable[[Any], str]]] = {}
_decoders: dict[str, Callable[[str], Any]] = {}

#: Entry-point group through which integrations announce their value types, so a process
#: that never imported one can still decode its entries (see pyproject.toml).
CODEC_ENTRY_POINTS = "sheetcache.codecs"
_looked_up: set[str] = set()


def register_codec(
    name: str, cls: type, encode: Callable[[Any], str], decode: Callable[[str], Any]
) -> None:
    """Store instances of exactly ``cls`` as ``encode(obj)`` under value type ``name``.

    For integrations whose answers deserve a text a reviewer can read and edit (a model
    response shown as its text, not as a JSON dump). ``decode`` must invert ``encode`` and
    raise ValueError on text it cannot read (the cache then treats the entry as a miss).
    To be decodable in a process that never imported the integration, also name the module
    that registers ``name`` under the ``sheetcache.codecs`` entry-point group.
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _unsupported(kind: type, reason: str, value: Any) -> UnsupportedValueError:
    return UnsupportedValueError(
        f"cannot cache an answer of type {kind.__qualname__} ({reason}): return str, bytes, "
        "JSON-compatible data, a pydantic model or a dataclass, or pass store=False. "
        "The answer is kept on this exception's .value",
        value,
    )


def _check_json(obj: Any) -> None:
    """Refuse what Python's json would write but not read back as the same value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"dict key {k!r} is not a str")
            _check_json(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_json(v)
    elif not (obj is None or isinstance(obj, (str, int, float))):
        raise TypeError(f"{type(obj).__qualname__} is not JSON serializable")


def _dumps_escaped(obj: Any) -> str:
    """JSON for what orjson refuses but JSON can hold exactly: lone surrogates (escaped),
    ints past 64 bits. Raises TypeError or ValueError for the rest.
    """
    _check_json(obj)
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # Raw surrogates in json's output only stand inside strings: escape them there.
    return _SURROGATE.sub(_escape_surrogate, text)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # orjson refuses lone surrogate escapes, which _dumps_escaped writes on purpose.
        return json.loads(text)


def encode_value(value: Any) -> tuple[str, str]:
    """Return ``(value_type, text)`` for an answer; the text is always valid Unicode.

    Raises:
        UnsupportedValueError: the answer cannot be stored exactly; ``.value`` holds it.
    """
    kind = type(value)
    if kind is str:
        if value.isascii():
            return "str", value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no store can write it raw
            return "json", _dumps_escaped(value)
        return "str", value
    if kind is bytes:
        return "bytes", base64.b64encode(value).decode("ascii")
    registered = _encoders.get(kind)
    if registered is not None:
        try:
            return registered[0], registered[1](value)
        except Exception as exc:  # noqa: BLE001 - an integration's encoder: never break the call
            raise _unsupported(kind, f"{type(exc).__name__}: {exc}", value) from None
    if hasattr(value, "model_dump_json") and not isinstance(value, type):
        try:
            return f"pydantic:{_class_name(kind)}", value.model_dump_json()
        except Exception:  # noqa: BLE001 - e.g. a lone surrogate in a field: try plain JSON
            try:
                return f"pydantic:{_class_name(kind)}", _dumps_escaped(
                    value.model_dump(mode="json")
                )
            except Exception as exc:  # noqa: BLE001
                raise _unsupported(kind, f"{type(exc).__name__}: {exc}", value) from None
    is_dataclass = dataclasses.is_dataclass(value) and not isinstance(value, type)
    try:
        text = orjson.dumps(value).decode()
    except TypeError as exc:
        try:  # lone surrogates, huge ints: JSON holds them, orjson won't write them
            data = dataclasses.asdict(value) if is_dataclass else value
            text = _dumps_escaped(data)
        except (TypeError, ValueError, RecursionError):
            raise _unsupported(kind, str(exc), value) from None
    if "null" in text and _has_non_finite(
        dataclasses.asdict(value) if is_dataclass else value
    ):  # orjson would silently store NaN as null
        raise UnsupportedValueError(
            "cannot cache an answer containing NaN or an infinity: JSON has no form for it. "
            "The answer is kept on this exception's .value",
            value,
        )
    if is_dataclass:
        return f"dataclass:{_class_name(kind)}", text
    return "json", text


def decode_value(value_type: str, text: str) -> Any:
    """Rebuild an answer from :func:`encode_value`'s output.

    Raises:
        ValueDecodeError: the text does not read back as ``value_type`` (for example a
            reviewer typed invalid JSON, or the class is gone); the cache treats that as a
            miss. Nothing else is raised, whatever the text.
    """
    try:
        return _decode(value_type, text)
    except ValueDecodeError:
        raise
    except Exception as exc:
        raise ValueDecodeError(
            f"stored text does not read back as {value_type!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _decode(value_type: str, text: str) -> Any:
    if value_type == "str":
        if type(text) is not str:
            raise ValueDecodeError(f"expected text, got {type(text).__name__}")
        return text
    if value_type == "json":
        return _loads(text)
    if value_type == "bytes":
        return base64.b64decode(text.encode("ascii"), validate=True)
    decode = _decoders.get(value_type) or _announced_decoder(value_type)
    if decode is not None:
        return decode(text)
    kind, _, name = value_type.partition(":")
    if kind not in ("pydantic", "dataclass"):
        raise ValueDecodeError(f"unknown value type {value_type!r}")
    try:
        cls = _find_class(name)
    except (ImportError, AttributeError) as exc:
        raise ValueDecodeError(f"cannot import {name} to rebuild a cached answer: {exc}") from None
    if kind == "pydantic":
        try:
            return cls.model_validate_json(text)  # type: ignore[attr-defined]
        except Exception:
            if "\\ud" not in text and "\\uD" not in text:
                raise
            return cls.model_validate(json.loads(text))  # type: ignore[attr-defined]
    data = _loads(text)
    adapter = _adapters.get(cls)
    if adapter is None:
        try:  # pydantic rebuilds nested dataclasses and typed fields; plain call otherwise
            from pydantic import TypeAdapter
        except ImportError:
            return cls(**data)
        adapter = _adapters[cls] = TypeAdapter(cls)
    return adapter.validate_python(data)


def _announced_decoder(value_type: str) -> Callable[[str], Any] | None:
    """Import the integration that announced ``value_type`` (once), then its decoder."""
    if value_type in _looked_up:
        return None
    _looked_up.add(value_type)
    for ep in entry_points(group=CODEC_ENTRY_POINTS):
        if ep.name == value_type:
            importlib.import_module(ep.value.partition(":")[0])
    return _decoders.get(value_type)
