"""What people see of an entry: the CLI's ``ls``/``show`` and the Sheets prompt column."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["age", "model_of", "prompt_text", "response_text"]

# Integrations' readable formats end the part a person reads at a line starting so
# (the machine-readable rest follows it; see sheetcache.pydantic_ai).
_TRAILER = "--- sheetcache:"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: keep the text parts
        texts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in content]
        if all(isinstance(t, str) for t in texts) and any(texts):
            return "\n".join(t for t in texts if t)
    return orjson.dumps(content).decode()


def prompt_text(prompt: Any) -> str:
    """The part of a prompt a reviewer wants to read: the last user message.

    Understands a plain str, OpenAI-style chat messages (``{"role": "user", "content": ...}``),
    pydantic-ai messages (``parts`` with ``part_kind == "user-prompt"``), and a
    ``{"display": ...}`` hint; anything else is shown as compact JSON.
    """
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict) and isinstance(prompt.get("display"), str):
        return str(prompt["display"])
    if isinstance(prompt, list):
        for message in reversed(prompt):
            if not isinstance(message, dict):
                continue
            if message.get("role") == "user" and "content" in message:
                return _text(message["content"])
            for part in reversed(message.get("parts") or []):
                if isinstance(part, dict) and part.get("part_kind") == "user-prompt":
                    return _text(part.get("content"))
    return orjson.dumps(prompt).decode()


def model_of(key_parts: dict[str, Any]) -> str:
    """The model name among the key parts, or ""."""
    model = key_parts.get("model")
    return model if isinstance(model, str) else ""


def response_text(value_type: str, value: str) -> str:
    """The part of a stored answer a person reads: the text, not a codec's trailer.

    ``bytes`` answers are shown as their size; an integration's format (a line starting
    ``--- sheetcache:`` and machine-readable JSON after it) is cut at that line.
    """
    if value_type == "bytes":
        return f"<{len(value) * 3 // 4:,} bytes>"
    at = value.find("\n" + _TRAILER)
    if at >= 0 and value_type not in {"str", "json"}:
        return value[:at].rstrip("\n")
    return value


def age(ts: float | None, now: float) -> str:
    """How long ago ``ts`` was, in the largest whole unit: "45s", "12m", "3h", "5d", "2y"."""
    if ts is None:
        return "-"
    seconds = max(0.0, now - ts)
    for size, unit in ((31_536_000, "y"), (604_800, "w"), (86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
