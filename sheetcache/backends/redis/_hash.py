"""An entry as a Redis hash and back: the fields, all text, as docs/redis.md lists them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from sheetcache.backends.base import Entry

__all__ = ["entry_from_hash", "float_text", "hash_fields"]


def _num(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)


def float_text(x: float) -> str:
    """A float as text that reads back to the same float."""
    return repr(float(x))


def entry_from_hash(key: str, h: Mapping[bytes, bytes]) -> Entry | None:
    value = h.get(b"value")
    if value is None:  # not ours (or a half-written foreign hash): a miss, never a crash
        return None
    prompt = h.get(b"prompt")
    key_parts = h.get(b"key_parts")
    metadata = h.get(b"metadata")
    return Entry(
        key,
        value.decode(),
        h.get(b"value_type", b"str").decode(),
        h.get(b"namespace", b"default").decode(),
        None if prompt is None else orjson.loads(prompt),
        {} if key_parts is None else orjson.loads(key_parts),
        float(h.get(b"created_at", b"0")),
        _num(h.get(b"expires_at")),
        int(h.get(b"hits", b"0")),
        _num(h.get(b"last_hit_at")),
        _num(h.get(b"duration")),
        h.get(b"status", b"").decode(),
        h.get(b"note", b"").decode(),
        _metadata(metadata),
    )  # fmt: skip


def _metadata(raw: bytes | None) -> dict[str, Any]:
    # Facts about the call, not the answer: a hand-edited field that is not a JSON object
    # must not make the entry unreadable.
    if raw is None:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def hash_fields(e: Entry) -> list[str]:
    """The entry's hash fields, all as text: ``[field, value, ...]``."""
    metadata = e.metadata or {}
    usage = metadata.get("usage")
    fields = [
        "value", e.value, "value_type", e.value_type, "namespace", e.namespace,
        "key_parts", orjson.dumps(e.key_parts or {}).decode(), "created_at", float_text(e.created_at),
        "hits", str(int(e.hits)), "status", e.status, "note", e.note,
        # What a hit needs besides the value, in one field: lookup() reads two, not six.
        # Usage rides along (a hundred bytes) so the front can count what a hit saved.
        "serve", orjson.dumps([e.value_type, e.expires_at, e.status, e.duration,
                               usage if isinstance(usage, dict) else None]).decode(),
    ]  # fmt: skip
    if metadata:
        fields += ["metadata", orjson.dumps(metadata).decode()]
    if e.prompt is not None:
        fields += ["prompt", orjson.dumps(e.prompt).decode()]
    if e.expires_at is not None:
        fields += ["expires_at", float_text(e.expires_at)]
    if e.last_hit_at is not None:
        fields += ["last_hit_at", float_text(e.last_hit_at)]
    if e.duration is not None:
        fields += ["duration", float_text(e.duration)]
    return fields
