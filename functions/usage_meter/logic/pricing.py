"""Pricing an aggregate: exact decimals, rounded once per row, never a guessed price.

cost = billable_seconds x model price per hour / 3600
     + sum over add-ons (add-on seconds x add-on price per hour / 3600)
computed exactly, then rounded half-up to the cent (0.01) once, at the row. A model or add-on with
no price leaves the row's cost empty and says why in ``unpriced``. ``billable_hours`` is
billable_seconds / 3600 rounded half-up to 6 decimals (informational; cost uses the seconds).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from usage_meter.models.billing import ExportRow, PriceVersion, ProductPrices, UsageAggregate
from usage_meter.models.usage import UNKNOWN_MODEL, UNKNOWN_MODEL_REASON

SECONDS_PER_HOUR = Decimal(3600)
CENT = Decimal("0.01")
HOURS_PLACES = Decimal("0.000001")


def price_aggregate(aggregate: UsageAggregate, prices: PriceVersion | None) -> ExportRow:
    """``prices`` None: no price table version is in force for the month (all rows unpriced)."""
    table = prices.prices(aggregate.product) if prices else ProductPrices(models={})
    missing = [] if prices else [f"no price table version in force in {aggregate.month}"]
    rate = table.models.get(aggregate.model)
    if rate is None and prices:
        missing.append(
            UNKNOWN_MODEL_REASON
            if aggregate.model == UNKNOWN_MODEL
            else f"no price for model {aggregate.model}"
        )
    add_on_cost = Decimal(0)
    for feature, seconds in sorted(aggregate.addon_seconds.items()):
        feature_rate = table.add_ons.get(feature)
        if feature_rate is None:
            missing.append(f"no price for add-on {feature}")
        else:
            add_on_cost += seconds * feature_rate / SECONDS_PER_HOUR
    cost = None
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
        usage_count=aggregate.usage_count,
        billable_seconds=aggregate.billable_seconds,
        billable_hours=(aggregate.billable_seconds / SECONDS_PER_HOUR).quantize(
            HOURS_PLACES, rounding=ROUND_HALF_UP
        ),
        price_per_hour=rate,
        add_on_seconds=";".join(
            f"{name}={_plain(seconds)}" for name, seconds in sorted(aggregate.addon_seconds.items())
        ),
        cost=cost,
        currency=prices.currency if prices else "",
        price_version=prices.version if prices else "",
        unpriced="; ".join(missing),
    )


def _plain(value: Decimal) -> str:
    """A decimal without exponent notation (Decimal('1E+3') -> '1000')."""
    return f"{value:f}"
