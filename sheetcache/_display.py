"""What people see of an entry: the CLI's ``ls``/``show`` and the Sheets prompt column."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["model_of", "prompt_text"]


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
