"""Pricing an aggregate: exact decimals, rounded once per row, never a guessed price.

exact          = billable_seconds x model price per hour / 3600
               + sum over add-ons (add-on seconds x that add-on's price on this model / 3600)
               + input_tokens x price per million input tokens x region factor / 1,000,000
               + output_tokens x price per million output tokens x region factor / 1,000,000
cost           = exact rounded half-up to the cent (0.01), once, at the row
cost_unrounded = exact kept to a millionth (0.000001, half-up): x / 3600 rarely ends, so this is
                 as exact as a file can carry; the sum of a month's rows stays within a cent of
                 the true total for up to 10,000 rows per customer

Why per row: each row is an invoice line; rounding the lines makes the invoice add up (the sum of
the lines is the total, to the cent). The exact ``cost_unrounded`` is kept beside it, so a total
rounded once can always be recomputed. An add-on's price can depend on the model, and a model's
price can include an add-on (see ``models/billing.ProductPrices.add_on_rate``). A model or add-on
with no price leaves the row's cost empty and says why in ``unpriced``. ``billable_hours`` is
billable_seconds / 3600 rounded half-up to 6 decimals (informational; cost uses the seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from usage_meter.models.billing import (
    ExportRow,
    PriceVersion,
    ProductPrices,
    TokenPrice,
    UsageAggregate,
)
from usage_meter.models.usage import UNKNOWN_MODEL, UNKNOWN_MODEL_REASON, canonical_decimal

SECONDS_PER_HOUR = Decimal(3600)
CENT = Decimal("0.01")
HOURS_PLACES = Decimal("0.000001")
UNROUNDED_PLACES = Decimal("0.000001")
TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)


def _product_table(
    aggregate: UsageAggregate, prices: PriceVersion | None
) -> tuple[ProductPrices, list[str]]:
    """The product's prices and what already makes the row unpriced."""
    if prices is None:
        return ProductPrices(models={}), [f"no price table version in force in {aggregate.month}"]
    table = prices.prices(aggregate.product)
    if table is None:
        return ProductPrices(models={}), [
            f"price version {prices.version} has no prices for product {aggregate.product}"
        ]
    return table, []


def _token_rates(
    aggregate: UsageAggregate, table: ProductPrices, missing: list[str]
) -> tuple[Decimal | None, Decimal | None]:
    """Per-million input and output token prices after the region's factor, or (None, None)
    with the reasons appended to ``missing``."""
    price: TokenPrice | None = table.token_price(aggregate.model)
    factor = table.region_factor(aggregate.region)
    if price is None:
        why = f": {table.unpriced_reason}" if table.unpriced_reason else ""
        missing.append(f"no token price for model {aggregate.model}{why}")
    if factor is None:
        missing.append(f"no price for region {aggregate.region or '(none)'}")
    if price is None or factor is None:
        return None, None
    return (
        canonical_decimal(price.per_million_input_tokens * factor),
        canonical_decimal(price.per_million_output_tokens * factor),
    )


@dataclass(frozen=True)
class _Priced:
    """What pricing a row found: its rates, the exact cost (None when unpriced) and why not."""

    rate: Decimal | None
    input_rate: Decimal | None
    output_rate: Decimal | None
    add_on_prices: list[str]
    missing: list[str]
    exact: Decimal | None


def _price(aggregate: UsageAggregate, prices: PriceVersion | None) -> _Priced:
    table, missing = _product_table(aggregate, prices)
    per_token = aggregate.product == "llm_gateway"
    input_rate = output_rate = rate = None
    if per_token:
        if not missing:
            input_rate, output_rate = _token_rates(aggregate, table, missing)
    else:
        model_price = table.model_price(aggregate.model)
        rate = model_price.per_hour if model_price else None
        if rate is None and not missing:
            why = f": {table.unpriced_reason}" if table.unpriced_reason else ""
            missing.append(
                UNKNOWN_MODEL_REASON
                if aggregate.model == UNKNOWN_MODEL
                else f"no price for model {aggregate.model}{why}"
            )
    add_on_cost = Decimal(0)
    add_on_prices: list[str] = []
    for feature, seconds in sorted(aggregate.addon_seconds.items()):
        feature_rate = table.add_on_rate(feature, aggregate.model)
        if feature_rate.per_hour is None:
            if prices:
                missing.append(feature_rate.reason)
        else:
            add_on_prices.append(f"{feature}={feature_rate.per_hour:f}")
            add_on_cost += seconds * feature_rate.per_hour / SECONDS_PER_HOUR
    exact = None
    if not missing and rate is not None:
        exact = aggregate.billable_seconds * rate / SECONDS_PER_HOUR + add_on_cost
    elif not missing and input_rate is not None and output_rate is not None:
        exact = (
            aggregate.input_tokens * input_rate + aggregate.output_tokens * output_rate
        ) / TOKENS_PER_PRICE_UNIT
    return _Priced(rate, input_rate, output_rate, add_on_prices, missing, exact)


def exact_cost(
    aggregate: UsageAggregate, prices: PriceVersion | None
) -> tuple[Decimal | None, str]:
    """(the exact cost before any rounding, or None; why it is unpriced, or ""). Linear in the
    aggregate's seconds, add-on seconds and tokens: the exact costs of parts add up to the exact
    cost of their sum (what ``cost_unrounded`` shows to a millionth)."""
    priced = _price(aggregate, prices)
    return priced.exact, "; ".join(priced.missing)


def price_aggregate(aggregate: UsageAggregate, prices: PriceVersion | None) -> ExportRow:
    """``prices`` None: no price table version is in force for the month (all rows unpriced).
    LLM Gateway rows are priced per token (``_token_rates``), every other product per hour."""
    priced = _price(aggregate, prices)
    rate, input_rate, output_rate = priced.rate, priced.input_rate, priced.output_rate
    missing, add_on_prices, exact = priced.missing, priced.add_on_prices, priced.exact
    cost = None if exact is None else exact.quantize(CENT, rounding=ROUND_HALF_UP)
    return ExportRow(
        month=aggregate.month,
        customer_id=aggregate.customer_id,
        product=aggregate.product,
        project=aggregate.project,
        model=aggregate.model,
        region=aggregate.region,
        dimensions=urlencode(sorted(aggregate.dimensions.items())),
        estimated=aggregate.estimated,
        usage_count=aggregate.usage_count,
        billable_seconds=canonical_decimal(aggregate.billable_seconds),
        billable_hours=(aggregate.billable_seconds / SECONDS_PER_HOUR).quantize(
            HOURS_PLACES, rounding=ROUND_HALF_UP
        ),
        input_tokens=aggregate.input_tokens,
        output_tokens=aggregate.output_tokens,
        price_per_hour=rate,
        price_per_million_input_tokens=input_rate,
        price_per_million_output_tokens=output_rate,
        add_on_seconds=";".join(
            f"{name}={canonical_decimal(seconds):f}"
            for name, seconds in sorted(aggregate.addon_seconds.items())
        ),
        add_on_prices=";".join(add_on_prices) if not missing else "",
        cost=cost,
        cost_unrounded=(
            canonical_decimal(exact.quantize(UNROUNDED_PLACES, rounding=ROUND_HALF_UP))
            if exact is not None
            else None
        ),
        currency=prices.currency if prices else "",
        price_version=prices.version if prices else "",
        unpriced="; ".join(missing),
    )
