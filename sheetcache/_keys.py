"""Cache keys: one pure function from (namespace, prompt, key parts) to a sha256 hex digest.

The key is ``sha256(canonical)`` where ``canonical`` is the UTF-8 JSON text of the list
``[KEY_FORMAT_VERSION, namespace, prompt, key_parts]`` written with:

- object keys sorted at every depth, so dict order and kwargs order never change a key;
- no insignificant white space, and Unicode written as UTF-8 (never ``\\uXXXX`` escapes);
- numbers in their shortest round-tripping JSON form (orjson's), so ``0`` and ``0.0`` are
  *different* keys: pass a setting the same way every time;
- tuples as lists, enums as their value, dataclasses and pydantic models as their fields,
  pydantic model *classes* (output schemas) as their JSON schema, sets as sorted lists.

Anything else (sockets, lambdas, NaN and infinities, non-string dict keys, lone surrogates)
raises :class:`TypeError` naming the part, before the caller's function runs.

Bump :data:`KEY_FORMAT_VERSION` whenever the canonical form changes: old entries then stop
matching (a miss) instead of ever answering a different question (a wrong hit).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["KEY_FORMAT_VERSION", "canonical_bytes", "has_non_finite", "lookup_bytes", "make_key"]

#: Part of every key; bump it when the canonical form changes.
KEY_FORMAT_VERSION = 1

# Dataclasses pass through to _default so their fields get sorted like dict keys.
_PASS = orjson.OPT_PASSTHROUGH_DATACLASS
_SORT = orjson.OPT_SORT_KEYS | _PASS
_MAX_INT = 2**63 - 1


def _default(obj: Any) -> Any:
    """Turn the few non-JSON types a key may hold into JSON; orjson calls it only for those."""
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=lambda item: orjson.dumps(item, default=_default, option=_SORT))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, type):
        schema = getattr(obj, "model_json_schema", None)
        if callable(schema):  # a pydantic model class: its schema is what shapes the answer
            return {"$schema": schema()}
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):  # a pydantic model instance
        return dump(mode="json")
    raise TypeError(f"{type(obj).__qualname__} is not JSON serializable")


def _check(obj: Any, where: str) -> None:
    """Walk ``obj`` for what orjson accepts silently or refuses vaguely, and say where it is."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise TypeError(f"{where} is {obj!r}: NaN and infinities have no JSON form")
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        if isinstance(obj, str):
            try:
                obj.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise TypeError(f"{where} is not valid Unicode text ({exc.reason})") from None
    elif isinstance(obj, int):
        if not -_MAX_INT - 1 <= obj <= 2**64 - 1:
            raise TypeError(f"{where} is an integer too large for a key; pass it as a string")
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-string dict key {k!r}; use str keys")
            _check(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, v in enumerate(obj):
            _check(v, f"{where}[{i}]")
    elif isinstance(obj, enum.Enum):
        _check(obj.value, where)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            _check(getattr(obj, f.name), f"{where}.{f.name}")
    else:
        try:
            converted = _default(obj)
        except TypeError:
            raise TypeError(
                f"{where} of type {type(obj).__qualname__} cannot be part of a cache key: pass "
                "JSON-compatible data (str, int, float, bool, None, lists, dicts with str "
                "keys), a dataclass or a pydantic model"
            ) from None
        _check(converted, where)


def has_non_finite(obj: Any) -> bool:
    """True if a NaN or an infinity may hide in ``obj`` (exact for dicts, lists, scalars).

    The cheap check for an L1 hit whose bytes hold ``null`` (orjson writes NaN as null);
    other types were already vetted by the canonical form when the entry was stored.
    """
    if type(obj) is float:
        return not math.isfinite(obj)
    if type(obj) is dict:
        return any(has_non_finite(v) for v in obj.values())
    if type(obj) is list or type(obj) is tuple:
        return any(has_non_finite(v) for v in obj)
    # A model, dataclass or subclass is a "maybe": canonical_bytes then decides.
    return not (isinstance(obj, (str, int, bool)) or obj is None)


def canonical_bytes(prompt: Any, namespace: str, key_parts: Mapping[str, Any]) -> bytes:
    """Return the canonical JSON bytes that :func:`make_key` hashes.

    Raises:
        TypeError: a part has no canonical JSON form; the message names it.
    """
    try:
        data = orjson.dumps(
            [KEY_FORMAT_VERSION, namespace, prompt, key_parts], default=_default, option=_SORT
        )
    except TypeError:
        data = b""  # find the culprit below and name it
    # orjson writes NaN and infinities as null, so any "null" earns a careful look.
    if not data or b"null" in data:
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str, not {type(namespace).__qualname__}")
        _check(prompt, "prompt")
        for name, value in key_parts.items():
            _check(value, f"key part {name!r}")
        if not data:  # _check found nothing, yet orjson refused: report orjson's reason
            orjson.dumps([prompt, key_parts], default=_default, option=_SORT)
    return data


def lookup_bytes(prompt: Any, namespace: str, key_parts: Mapping[str, Any]) -> bytes:
    """Exact JSON of the key's content in the caller's order: the in-process L1's key.

    Skipping the sort makes a hit cheaper. Equal bytes still mean equal content, hence equal
    canonical keys, so L1 never answers a different question; the same content in another
    dict order is an L1 miss that the canonical key then finds in the backend.

    NaN and infinities come out as ``null`` here, unchecked (scanning for them costs more
    than the dump): the caller must run :func:`canonical_bytes` before trusting a match
    whose bytes contain ``null``.

    Raises:
        TypeError: as :func:`canonical_bytes`.
    """
    try:
        return orjson.dumps([namespace, prompt, key_parts], default=_default, option=_PASS)
    except TypeError:
        canonical_bytes(prompt, namespace, key_parts)  # raises, naming the part
        raise


def make_key(prompt: Any, namespace: str = "default", **key_parts: Any) -> str:
    """Return the cache key (64 lowercase hex characters) of a prompt and its key parts.

    Example:
        >>> make_key("What is 2+2?", model="gpt-4o", temperature=0)[:12]
        '867c1c793067'
    """
    return hashlib.sha256(canonical_bytes(prompt, namespace, key_parts)).hexdigest()
