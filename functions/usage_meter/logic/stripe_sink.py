"""Stripe Billing meter events: each billable ledger row sent once, with its source id as the
event identifier.

Facts from Stripe's API reference ("Create a billing meter event", POST /v1/billing/meter_events):
``event_name`` (the meter's, at most 100 characters), ``payload`` with the meter's customer key
(default ``stripe_customer_id``) and value key (default ``value``, a string), ``identifier`` ("We
will enforce uniqueness within a rolling period of at least 24 hours", at most 100 characters) and
``timestamp`` (Unix seconds, "within the past 35 calendar days or up to 5 minutes in the future").

Once, forever: Stripe's identifier only dedupes for about a day, so a sent row is also marked in
the usage table (``SinkStore.mark_sent``) after Stripe accepts it, and a row already marked is
never sent again (a duplicate or redriven message, days later). The window between Stripe's answer
and the mark (a crash) is covered by Stripe's identifier dedupe: the retry reaches Stripe within
minutes with the same identifier. Stripe's answer to such a duplicate is not documented, so it is
not guessed at: any refusal is a permanent failure, dead-lettered with Stripe's message for a
person to check (never counted twice, never dropped).

Refused, to the DLQ with a reason (``SinkRefused``): a customer with no Stripe customer mapped
(the company maps them: ``usage-meter-ops stripe map``); a row older than 35 days; a value that
cannot be sent exactly in the configured unit; a row whose billed figure changed after it was
sent (an orphan estimate replaced by the real termination: correct it in Stripe by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from usage_meter.models.rules import STRIPE_VALUE_UNITS
from usage_meter.models.usage import UsageRecord, UsageStatus

MAX_AGE = timedelta(days=35)
MAX_IDENTIFIER = 100


class SinkRefused(Exception):
    """Retrying cannot help: dead-letter the message with ``reason`` for a person."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Delivery(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    NOT_BILLABLE = "not_billable"


@dataclass(frozen=True)
class MeterEvent:
    event_name: str
    identifier: str
    stripe_customer_id: str
    value: str
    timestamp: int


class StripeMeter(Protocol):
    def send(self, event: MeterEvent) -> None:
        """Create the meter event. Raises TransientFailure (retry) or SinkRefused."""
        ...


class SinkStore(Protocol):
    def stripe_customer(self, customer_id: str) -> str | None: ...

    def sent_value(self, identifier: str) -> str | None:
        """The value sent under ``identifier``, or None if it was never sent."""
        ...

    def mark_sent(self, identifier: str, value: str, event_name: str) -> None: ...


def meter_value(seconds: Decimal, unit: str) -> str:
    """Billable seconds in the meter's unit, exactly (never rounded): SinkRefused otherwise."""
    value = seconds * STRIPE_VALUE_UNITS[unit]
    if unit == "milliseconds" and value != value.to_integral_value():
        raise SinkRefused("stripe_value_inexact", f"{seconds:f} s is not a whole number of ms")
    return f"{value.normalize():f}" if value else "0"


def deliver(
    record: UsageRecord,
    *,
    event_name: str,
    unit: str,
    meter: StripeMeter,
    store: SinkStore,
    now: datetime,
) -> Delivery:
    """Send one ledger row's usage to Stripe at most once. Raises SinkRefused or
    TransientFailure (from the meter or the store)."""
    if record.status is not UsageStatus.BILLABLE:
        return Delivery.NOT_BILLABLE
    identifier = record.source_id
    if len(identifier) > MAX_IDENTIFIER:
        raise SinkRefused("stripe_identifier_too_long", f"source id over {MAX_IDENTIFIER} chars")
    value = meter_value(record.billable_seconds, unit)
    already = store.sent_value(identifier)
    if already is not None:
        if Decimal(already) != Decimal(value):
            raise SinkRefused(
                "stripe_changed_after_sent",
                f"{identifier} was sent as {already} and is now {value}: adjust it in Stripe",
            )
        return Delivery.ALREADY_SENT
    if now - record.occurred_at > MAX_AGE:
        raise SinkRefused("stripe_too_old", f"{identifier} occurred over 35 days ago")
    stripe_customer = store.stripe_customer(record.customer_id)
    if not stripe_customer:
        raise SinkRefused(
            "stripe_customer_unmapped",
            f"customer {record.customer_id} has no Stripe customer; map it, then redrive",
        )
    meter.send(
        MeterEvent(
            event_name=event_name,
            identifier=identifier,
            stripe_customer_id=stripe_customer,
            value=value,
            timestamp=int(min(record.occurred_at, now).timestamp()),
        )
    )
    store.mark_sent(identifier, value, event_name)
    return Delivery.SENT
