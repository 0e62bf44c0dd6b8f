"""Pricing an aggregate: exact decimals, rounded once per row, never a guessed price.

exact          = billable_seconds x model price per hour / 3600
               + sum over add-ons (add-on seconds x that add-on's price on this model / 3600)
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

from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from usage_meter.models.billing import ExportRow, PriceVersion, ProductPrices, UsageAggregate
from usage_meter.models.usage import UNKNOWN_MODEL, UNKNOWN_MODEL_REASON, canonical_decimal

SECONDS_PER_HOUR = Decimal(3600)
CENT = Decimal("0.01")
HOURS_PLACES = Decimal("0.000001")
UNROUNDED_PLACES = Decimal("0.000001")


def price_aggregate(aggregate: UsageAggregate, prices: PriceVersion | None) -> ExportRow:
    """``prices`` None: no price table version is in force for the month (all rows unpriced)."""
    table = prices.prices(aggregate.product) if prices else ProductPrices(models={})
    missing = [] if prices else [f"no price table version in force in {aggregate.month}"]
    model_price = table.model_price(aggregate.model)
    rate = model_price.per_hour if model_price else None
    if rate is None and prices:
        missing.append(
            UNKNOWN_MODEL_REASON
            if aggregate.model == UNKNOWN_MODEL
            else f"no price for model {aggregate.model}"
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
    cost = exact = None
    if rate is not None and not missing:
        exact = aggregate.billable_seconds * rate / SECONDS_PER_HOUR + add_on_cost
        cost = exact.quantize(CENT, rounding=ROUND_HALF_UP)
    return ExportRow(
        month=aggregate.month,
        customer_id=aggregate.customer_id,
        product=aggregate.product,
        project=aggregate.project,
        model=aggregate.model,
        dimensions=urlencode(sorted(aggregate.dimensions.items())),
        estimated=aggregate.estimated,
        usage_count=aggregate.usage_count,
        billable_seconds=canonical_decimal(aggregate.billable_seconds),
        billable_hours=(aggregate.billable_seconds / SECONDS_PER_HOUR).quantize(
            HOURS_PLACES, rounding=ROUND_HALF_UP
        ),
        price_per_hour=rate,
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
