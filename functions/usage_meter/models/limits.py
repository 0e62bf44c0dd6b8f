"""Plans and limits: allowances, the entitlement answer and threshold events.

Terms as metering products use them (OpenMeter entitlements, Lago usage thresholds, Stripe
billing alerts):

- **allowance**: how much a customer may use in a calendar month (UTC), per product (``async``,
  ``streaming``) or over ``all`` products, in billable **seconds** or in **cost** (the currency of
  the month's price table version, priced exactly like the export). A customer has its own
  allowance set, or inherits its **plan**'s default set; its own set replaces the plan's whole set.
- **enforcement**: ``hard`` (the entitlement check answers "no" once used >= allowance) or
  ``soft`` (threshold events only; the check keeps answering "yes").
- **threshold**: a share of an allowance in percent (e.g. 50/80/100); reaching it publishes one
  event per customer, month, limit and threshold, ever.
- **entitlement**: the answer to "may this customer start more work on this product now?" with
  what is used and what remains under every limit that applies.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from usage_meter.models.identifiers import PLAN_PATTERN
from usage_meter.models.usage import CustomerId, Product

LimitUnit = Literal["seconds", "cost"]
LimitScope = Literal["all", "async", "streaming", "sync", "voice_agent", "llm_gateway"]
Enforcement = Literal["hard", "soft"]
PlanName = Annotated[str, StringConstraints(pattern=PLAN_PATTERN)]
DEFAULT_THRESHOLDS = (50, 80, 100)
MAX_LIMITS = 8
MAX_THRESHOLDS = 10


class Limit(BaseModel):
    """One allowance: ``amount`` seconds (or currency units) per month of ``product``.

    ``thresholds`` are percentages of ``amount`` (1-1000, e.g. 120 alerts on 20% overage).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    product: LimitScope = "all"
    unit: LimitUnit
    amount: Decimal = Field(gt=0, max_digits=20, decimal_places=6)
    enforcement: Enforcement = "hard"
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) > MAX_THRESHOLDS or any(not 1 <= t <= 1000 for t in value):
            raise ValueError(f"at most {MAX_THRESHOLDS} thresholds, each 1-1000 percent")
        return tuple(sorted(set(value)))

    @property
    def key(self) -> str:
        """``<product>:<unit>``: a set holds at most one limit per key."""
        return f"{self.product}:{self.unit}"

    def applies_to(self, product: str) -> bool:
        return self.product in ("all", product)


class AllowanceSet(BaseModel):
    """The limits of a customer or a plan (empty: no limits, everything allowed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limits: tuple[Limit, ...] = Field(default=(), max_length=MAX_LIMITS)

    @field_validator("limits")
    @classmethod
    def _one_per_key(cls, value: tuple[Limit, ...]) -> tuple[Limit, ...]:
        keys = [limit.key for limit in value]
        if len(keys) != len(set(keys)):
            raise ValueError("at most one limit per product and unit")
        return tuple(sorted(value, key=lambda limit: limit.key))


AllowanceSource = Literal["customer", "plan", "none"]


class CustomerAllowance(BaseModel):
    """What a customer's allowance item holds: its own set and/or its plan's set (a copy kept in
    step by every plan change), each with the version it came from."""

    model_config = ConfigDict(frozen=True)

    customer_id: CustomerId
    plan: PlanName | None = None
    own: AllowanceSet | None = None
    own_version: int = 0
    plan_limits: AllowanceSet | None = None
    plan_version: int = 0

    def effective(self) -> tuple[AllowanceSet, AllowanceSource, int]:
        """The set in force: the customer's own, else the plan's, else none."""
        if self.own is not None:
            return self.own, "customer", self.own_version
        if self.plan_limits is not None:
            return self.plan_limits, "plan", self.plan_version
        return AllowanceSet(), "none", 0


class LimitStatus(BaseModel):
    """One limit of an entitlement answer (amounts as exact decimals)."""

    model_config = ConfigDict(frozen=True)

    product: LimitScope
    unit: LimitUnit
    enforcement: Enforcement
    allowance: Decimal
    used: Decimal
    remaining: Decimal
    percent_used: Decimal
    exhausted: bool
    currency: str | None = None
    unpriced: str = ""  # why some usage could not be priced (cost limits count priced usage)


class Entitlement(BaseModel):
    """The answer to ``GET /customers/{customer_id}/entitlement?product=...``."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    product: Product
    month: str
    allowed: bool
    reason: str
    plan: str | None
    allowance_source: AllowanceSource
    allowance_version: int
    limits: tuple[LimitStatus, ...]
    as_of: datetime


class ThresholdEvent(BaseModel):
    """Published once when a customer's month reaches ``threshold_percent`` of one limit.

    ``event_id`` is stable (customer/month/limit/threshold): a consumer that sees it twice (an
    at-least-once delivery after a crash between publishing and marking) can drop the copy.
    """

    model_config = ConfigDict(frozen=True)

    event_id: str
    customer_id: str
    month: str
    product: LimitScope
    unit: LimitUnit
    threshold_percent: int
    used: Decimal
    allowance: Decimal
    enforcement: Enforcement
    allowance_source: AllowanceSource
    allowance_version: int
    currency: str | None = None
    reached_at: AwareDatetime
