"""The key format of sheetcache before version 2, kept only to find entries stored with it.

Frozen: this is the exact algorithm that wrote every key of format 1 (orjson's number
forms, so ``0`` and ``0.0`` differ; secrets included). Never change it, or old entries
stop being found. :func:`sheetcache._keys.legacy_key` is the public way in.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["v1_key"]

_PASS = orjson.OPT_PASSTHROUGH_DATACLASS
_SORT = orjson.OPT_SORT_KEYS | _PASS
_MAX_INT = 2**63 - 1


class _Unkeyable(Exception):
    """Format 1 refused this input (it raised TypeError then)."""


def _default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=lambda item: orjson.dumps(item, default=_default, option=_SORT))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, type):
        schema = getattr(obj, "model_json_schema", None)
        if callable(schema):
            return {"$schema": schema()}
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        return dump(mode="json")
    raise TypeError(f"{type(obj).__qualname__} is not JSON serializable")


def _check(obj: Any) -> None:
    """Format 1's validation walk, reduced to its verdict (the messages are gone)."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise _Unkeyable
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        if isinstance(obj, str):
            try:
                obj.encode("utf-8")
            except UnicodeEncodeError:
                raise _Unkeyable from None
    elif isinstance(obj, int):
        if not -_MAX_INT - 1 <= obj <= 2**64 - 1:
            raise _Unkeyable
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise _Unkeyable
            _check(v)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _check(v)
    elif isinstance(obj, enum.Enum):
        _check(obj.value)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            _check(getattr(obj, f.name))
    else:
        try:
            converted = _default(obj)
        except TypeError:
            raise _Unkeyable from None
        _check(converted)


def v1_key(prompt: Any, namespace: str, key_parts: Mapping[str, Any]) -> str | None:
    """The format-1 key (sha256 hex), or None where format 1 raised TypeError."""
    try:
        data = orjson.dumps([1, namespace, prompt, key_parts], default=_default, option=_SORT)
    except TypeError:
        return None
    if b"null" in data:  # format 1 walked for NaN (written as null) and refused it
        try:
            if not isinstance(namespace, str):
                return None
            _check(prompt)
            for value in key_parts.values():
                _check(value)
        except _Unkeyable:
            return None
    return hashlib.sha256(data).hexdigest()
