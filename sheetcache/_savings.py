"""What a hit saved: the original call's tokens and, where the price is known, dollars.

An entry's usage lives in ``entry.metadata["usage"]``, written by the integration that made
the call (or by the user through ``set(..., metadata=...)``)::

    {"model": "gpt-4o", "provider": "openai", "input_tokens": 12, "output_tokens": 34}

``provider`` is optional (genai-prices then picks the provider that sells ``model``).
Prices come from the ``genai-prices`` package (pydantic's price data), imported on the first
priced hit so ``import sheetcache`` stays light. A model genai-prices does not know counts
its tokens but no dollars, and a warning names it once per process.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

from sheetcache._logging import install_hint

__all__ = ["entry_savings", "price_usd"]

log = logging.getLogger("sheetcache")

_warned: set[tuple[str | None, str]] = set()
_NO_PRICES = object()


def _tokens(usage: Mapping[str, Any], name: str) -> int:
    n = usage.get(name)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0


def entry_savings(metadata: Mapping[str, Any] | None) -> tuple[int, float | None]:
    """Tokens and dollars one hit on an entry with ``metadata`` saves.

    Args:
        metadata: the entry's metadata; its ``usage`` item is read (see the module docs).

    Returns:
        ``(tokens, usd)``: input plus output tokens, and their price in US dollars, or None
        when the entry has no model, genai-prices is not installed, or it does not know the
        model (then a warning says so, once per model).

    Example:
        >>> entry_savings({"usage": {"model": "gpt-4o", "input_tokens": 0, "output_tokens": 0}})
        (0, 0.0)
    """
    usage = (metadata or {}).get("usage")
    if not isinstance(usage, Mapping):
        return 0, None
    input_tokens, output_tokens = _tokens(usage, "input_tokens"), _tokens(usage, "output_tokens")
    tokens = input_tokens + output_tokens
    model, provider = usage.get("model"), usage.get("provider")
    if not isinstance(model, str) or not model:
        return tokens, None
    if not isinstance(provider, str) or not provider:
        provider = None
    return tokens, price_usd(model, provider, input_tokens, output_tokens)


@functools.lru_cache(maxsize=4096)
def price_usd(
    model: str, provider: str | None, input_tokens: int, output_tokens: int
) -> float | None:
    """The price in US dollars of one call, per genai-prices; None if the model is unknown.

    Cached per (model, provider, tokens): hits on one entry repeat the same question, so only
    the first one pays for genai-prices' lookup.
    """
    prices = _genai_prices()
    if prices is _NO_PRICES:
        return None
    usage = prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    try:
        calculation = prices.calc_price(usage, model, provider_id=provider)
    except LookupError as exc:
        if (provider, model) not in _warned:
            _warned.add((provider, model))
            log.warning(
                "sheetcache: no price for model %r (provider %r) in genai-prices (%s); its hits "
                "count saved tokens but no dollars",
                model, provider, exc,
            )  # fmt: skip
        return None
    return float(calculation.total_price)


@functools.cache
def _genai_prices() -> Any:
    try:
        import genai_prices
    except ImportError:
        log.warning(
            "sheetcache: genai-prices is not installed, so saved dollars are not counted "
            "(saved tokens are); %s",
            install_hint("prices"),
        )
        return _NO_PRICES
    return genai_prices
