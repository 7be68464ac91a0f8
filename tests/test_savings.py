"""Savings per hit: tokens always, dollars from genai-prices when it knows the model."""

from __future__ import annotations

import logging

import genai_prices
import pytest

from sheetcache._savings import entry_savings, price_usd


def _usage(**usage: object) -> dict[str, object]:
    return {"usage": usage}


def test_known_model_costs_what_genai_prices_says() -> None:
    tokens, usd = entry_savings(
        _usage(model="gpt-4o", provider="openai", input_tokens=1200, output_tokens=345)
    )
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1200, output_tokens=345), "gpt-4o", provider_id="openai"
    ).total_price
    assert tokens == 1545
    assert usd == pytest.approx(float(expected))
    assert usd > 0


def test_provider_is_optional() -> None:
    tokens, usd = entry_savings(_usage(model="claude-sonnet-4-5", input_tokens=10, output_tokens=5))
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=10, output_tokens=5), "claude-sonnet-4-5"
    ).total_price
    assert (tokens, usd) == (15, pytest.approx(float(expected)))


def test_unknown_model_counts_tokens_no_dollars_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sheetcache"):
        first = entry_savings(_usage(model="my-own-finetune-x9", input_tokens=7, output_tokens=3))
        again = entry_savings(_usage(model="my-own-finetune-x9", input_tokens=8, output_tokens=3))
    assert first == (10, None) and again == (11, None)
    warnings = [r for r in caplog.records if "my-own-finetune-x9" in r.getMessage()]
    assert len(warnings) == 1  # once per model, not once per hit
    assert "no dollars" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "metadata",
    [None, {}, {"usage": "lots"}, _usage(input_tokens="12", output_tokens=True), _usage()],
)
def test_missing_or_malformed_usage_saves_nothing(metadata: dict[str, object] | None) -> None:
    assert entry_savings(metadata) == (0, None)


def test_tokens_without_model_have_no_price() -> None:
    assert entry_savings(_usage(input_tokens=3, output_tokens=4)) == (7, None)


def test_repeat_lookups_are_cached() -> None:
    price_usd.cache_clear()
    for _ in range(3):
        entry_savings(_usage(model="gpt-4o", provider="openai", input_tokens=1, output_tokens=1))
    info = price_usd.cache_info()
    assert (info.misses, info.hits) == (1, 2)
