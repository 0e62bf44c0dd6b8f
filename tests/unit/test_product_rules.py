"""LLM Gateway, Voice Agent API and Sync API: prices per unit and region, report schemas, and the
app helper's reading of responses. Facts and sources: docs/products.md."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from usage_meter.adapters.price_table import load_price_table
from usage_meter.logic.pricing import price_aggregate
from usage_meter.models.billing import ProductPrices, TokenPrice, UsageAggregate
from usage_meter.models.products import LlmGatewayUsage, SyncUsage
from usage_meter_client.products import llm_gateway_document, llm_gateway_region

SHIPPED = load_price_table("usage_meter/config/prices.json")
NOVEMBER = SHIPPED.for_month("2026-11")
OCTOBER = SHIPPED.for_month("2026-10")
assert NOVEMBER is not None and OCTOBER is not None
WITH_TOKEN_PRICES = NOVEMBER.model_copy(
    update={
        "llm_gateway": ProductPrices(
            models={
                "claude-sonnet-4-6": TokenPrice(
                    per_million_input_tokens=Decimal("3.00"),
                    per_million_output_tokens=Decimal("15.00"),
                )
            },
            regions={"global": Decimal(1), "us": Decimal("1.10"), "eu": Decimal("1.10")},
        )
    }
)


def tokens(region: str, tokens_in: int, tokens_out: int) -> UsageAggregate:
    return UsageAggregate(
        customer_id="acme",
        month="2026-11",
        product="llm_gateway",
        project="default",
        model="claude-sonnet-4-6",
        usage_count=1,
        billable_seconds=Decimal(0),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        region=region,
    )


def seconds(product: str, model: str, amount: str, month: str = "2026-11") -> UsageAggregate:
    return UsageAggregate(
        customer_id="acme",
        month=month,
        product=product,  # type: ignore[arg-type]
        project="default",
        model=model,
        usage_count=1,
        billable_seconds=Decimal(amount),
    )


def test_token_cost_is_exact_with_the_in_region_multiplier() -> None:
    """(1,234 x 3.30 + 567 x 16.50) / 1,000,000 = 0.0134277: 0.01, exact kept to 0.000001
    (in-region US/EU pricing 10% higher: pricing page transcribed 2026-10-07)."""
    row = price_aggregate(tokens("eu", 1234, 567), WITH_TOKEN_PRICES)
    assert (row.price_per_million_input_tokens, row.price_per_million_output_tokens) == (
        Decimal("3.3"),
        Decimal("16.5"),
    )
    assert (row.cost, row.cost_unrounded, row.unpriced) == (
        Decimal("0.01"),
        Decimal("0.013428"),
        "",
    )
    global_row = price_aggregate(tokens("global", 1_000_000, 0), WITH_TOKEN_PRICES)
    assert global_row.cost == Decimal("3.00")


def test_a_region_the_table_does_not_price_is_unpriced() -> None:
    row = price_aggregate(tokens("ap", 10, 10), WITH_TOKEN_PRICES)
    assert row.cost is None and row.unpriced == "no price for region ap"


def test_shipped_llm_gateway_rows_are_unpriced_with_the_reason() -> None:
    row = price_aggregate(tokens("us", 10, 10), NOVEMBER)
    assert row.cost is None
    assert row.unpriced.startswith("no token price for model claude-sonnet-4-6: ")
    assert "Rates table" in row.unpriced


@pytest.mark.parametrize(
    ("product", "model", "amount", "cost"),
    [
        ("voice_agent", "voice-agent", "600", "0.75"),  # $4.50/hr
        ("sync", "universal-3-5-pro", "3600", "0.30"),  # $0.30/hr
    ],
)
def test_seconds_products_are_priced_per_hour(
    product: str, model: str, amount: str, cost: str
) -> None:
    assert price_aggregate(seconds(product, model, amount), NOVEMBER).cost == Decimal(cost)


def test_a_version_without_the_product_leaves_it_unpriced() -> None:
    """Version 2026-11-01 (in force before November 2026) predates these products."""
    row = price_aggregate(seconds("voice_agent", "voice-agent", "60", "2026-10"), OCTOBER)
    assert row.unpriced == "price version 2026-11-01 has no prices for product voice_agent"


def _llm(**changes: Any) -> dict[str, Any]:
    return {
        "response_id": "r1",
        "customer_id": "acme",
        "model": "claude-sonnet-4-6",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "completed_at": "2026-11-01T00:00:00Z",
        **changes,
    }


@pytest.mark.parametrize(
    "change",
    [{"prompt_tokens": True}, {"prompt_tokens": 1.5}, {"completion_tokens": 10_000_001}],
)
def test_token_counts_are_whole_numbers(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LlmGatewayUsage.model_validate(_llm(**change))


def test_sync_seconds_are_the_exact_milliseconds() -> None:
    usage = SyncUsage(
        session_id="s1",
        customer_id="acme",
        model="universal-3-5-pro",
        audio_duration_ms=15_251,
        transcribed_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    assert usage.to_record().billable_seconds == Decimal("15.251")


@pytest.mark.parametrize(
    ("base_url", "region"),
    [
        ("https://llm-gateway.eu.assemblyai.com/v1", "eu"),
        ("https://llm-gateway.assemblyai.com/v1", "us"),
        (None, "us"),
    ],
)
def test_the_region_follows_the_endpoint(base_url: str | None, region: str) -> None:
    assert llm_gateway_region(base_url) == region


def test_an_openai_style_object_is_read_by_attribute() -> None:
    """The OpenAI SDK's ChatCompletion: ``id``, ``model``, ``created``, ``usage.prompt_tokens``."""
    usage = SimpleNamespace(prompt_tokens=7, completion_tokens=3)
    response = SimpleNamespace(id="chatcmpl-1", model="gpt-4.1", created=1795000000, usage=usage)
    document = llm_gateway_document(response, customer_id="acme")
    assert (document["response_id"], document["model"], document["prompt_tokens"]) == (
        "chatcmpl-1",
        "gpt-4.1",
        7,
    )
    assert document["completed_at"].startswith("2026-11-18")
