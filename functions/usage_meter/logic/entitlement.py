"""The entitlement check: may this customer start more work on a product now, and how much is left.

Usage is read from the customer-month summary, which the ledger transaction keeps equal to the
aggregates the usage API and the export read, grouped by price class (``adapters/usage_summary``):
used seconds equal the usage API's exactly, and a cost is the exact cost of the same usage priced
by the same price table (``pricing.exact_cost``; the usage API's ``totals.cost_unrounded``).

What counts (and the staleness this implies, see README "Plans and limits"):
- async transcripts count once the processor has recorded them (after AssemblyAI's webhook and
  one GET, normally seconds after completion); jobs still queued or processing at AssemblyAI do
  not count yet;
- a streaming session counts when its termination is reported (or when the orphan sweep bills it
  at AssemblyAI's 3-hour limit): a session in progress does not count, so one started while
  allowed may run past the allowance by up to its own length;
- the read is strongly consistent: anything recorded before the check is in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol, get_args

from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.logic.pricing import UNROUNDED_PLACES, exact_cost
from usage_meter.models.billing import PriceTable, PriceVersion, UsageAggregate
from usage_meter.models.identifiers import CUSTOMER_ID_RULE, is_customer_id
from usage_meter.models.limits import CustomerAllowance, Entitlement, Limit, LimitStatus
from usage_meter.models.months import usage_month
from usage_meter.models.usage import Product, canonical_decimal

PRODUCTS = get_args(Product)
PERCENT_PLACES = Decimal("0.01")


class EntitlementReader(Protocol):
    def entitlement_state(
        self, customer_id: str, month: str, *, consistent: bool = True
    ) -> tuple[CustomerAllowance | None, list[UsageAggregate]]:
        """The customer's allowance item and its aggregates for ``month`` (one request)."""
        ...


def used_under(
    limit: Limit, aggregates: Sequence[UsageAggregate], prices: PriceVersion | None
) -> tuple[Decimal, str]:
    """(used, unpriced reason) of ``limit``: billable seconds of the products it covers, or the
    month's **exact** cost of those products (``pricing.exact_cost`` summed, then shown to a
    millionth like the export's ``cost_unrounded``). The exact cost does not depend on how usage
    is split into rows; the usage API's ``totals.cost`` (rows rounded to the cent, then summed)
    can differ from it by at most half a cent per row. Usage without a price is left out of a
    cost (never guessed) and named in the reason."""
    covered = [a for a in aggregates if limit.applies_to(a.product)]
    if limit.unit == "seconds":
        return sum((a.billable_seconds for a in covered), Decimal(0)), ""
    costs = [exact_cost(a, prices) for a in covered]
    unpriced = sorted({why for cost, why in costs if cost is None})
    used = sum((cost for cost, _ in costs if cost is not None), Decimal(0))
    return canonical_decimal(used.quantize(UNROUNDED_PLACES, ROUND_HALF_UP)), "; ".join(unpriced)


def limit_status(
    limit: Limit, aggregates: Sequence[UsageAggregate], prices: PriceVersion | None
) -> LimitStatus:
    used, unpriced = used_under(limit, aggregates, prices)
    return LimitStatus(
        product=limit.product,
        unit=limit.unit,
        enforcement=limit.enforcement,
        allowance=limit.amount,
        used=used,
        remaining=max(limit.amount - used, Decimal(0)),
        percent_used=(used * 100 / limit.amount).quantize(PERCENT_PLACES, rounding=ROUND_HALF_UP),
        exhausted=used >= limit.amount,
        currency=(prices.currency if prices else None) if limit.unit == "cost" else None,
        unpriced=unpriced,
    )


def check_entitlement(
    customer_id: str,
    product: str,
    reader: EntitlementReader,
    prices: PriceTable,
    now: datetime | None = None,
) -> Entitlement:
    """One DynamoDB request (``reader.entitlement_state``), then arithmetic. Allowed unless a
    **hard** limit covering ``product`` is used up (used >= allowance). Raises RequestRejected
    (INVALID) for a bad customer id or product."""
    if not is_customer_id(customer_id):
        raise RequestRejected(Rejection.INVALID, "invalid_customer_id", CUSTOMER_ID_RULE)
    if product not in PRODUCTS:
        raise RequestRejected(
            Rejection.INVALID, "invalid_product", f"product must be one of {', '.join(PRODUCTS)}"
        )
    now = now or datetime.now(UTC)
    month = usage_month(now)
    allowance, aggregates = reader.entitlement_state(customer_id, month)
    limits, source, version = allowance.effective() if allowance else (None, "none", 0)
    applying = [limit for limit in (limits.limits if limits else ()) if limit.applies_to(product)]
    price_version = prices.for_month(month) if any(x.unit == "cost" for x in applying) else None
    statuses = tuple(limit_status(limit, aggregates, price_version) for limit in applying)
    blocking = [s for s in statuses if s.exhausted and s.enforcement == "hard"]
    if blocking:
        first = blocking[0]
        reason = (
            f"hard limit reached: {first.product} {first.unit} "
            f"{first.used:f} of {first.allowance:f}"
        )
    elif statuses:
        reason = "within allowance"
    else:
        reason = "no limit applies"
    return Entitlement(
        customer_id=customer_id,
        product=product,
        month=month,
        allowed=not blocking,
        reason=reason,
        plan=allowance.plan if allowance else None,
        allowance_source=source,
        allowance_version=version,
        limits=statuses,
        as_of=now,
    )
