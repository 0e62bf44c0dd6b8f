"""Threshold events: exactly one per customer, month, limit and threshold.

After every change to a customer's usage (a recorded transcript or session, a duplicate delivery
of one, a replaced estimate, reconciliation, an orphan billed) and after every allowance change,
``ThresholdWatcher.evaluate`` reads the customer's month (consistent) and, for each threshold
reached and not yet published, **claims** its marker with a conditional put. The conditional put
is the decision: of any number of duplicate deliveries, retries and concurrent processors that
see the same threshold reached, exactly one creates the marker and publishes the event.

Publishing happens after the claim, so delivery is at-least-once only in one window: a publisher
that dies after EventBridge accepted the event but before the marker says ``published``. The
marker then stays ``pending`` and is re-claimed (after ``CLAIM_SECONDS``, longer than any Lambda
can run) by the next evaluation of that customer's month; the event keeps its ``event_id`` so a
consumer can drop the copy. A publish that fails releases the claim at once and raises
TransientFailure, so the caller's retry (SQS, the app's report retry) publishes it.

Evaluation runs on duplicates too: that is how a retry after a crash between the usage write and
the evaluation still publishes. An allowance change applies from the change on: the month's
usage so far is evaluated against the new allowance at once, and thresholds already published
this month stay published (a raised allowance does not re-arm them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from usage_meter.logic.entitlement import EntitlementReader, used_under
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.ports import UsageMetrics
from usage_meter.models.billing import PriceTable
from usage_meter.models.limits import ThresholdEvent

PUBLISHED = "published"
CLAIM_SECONDS = 900  # Lambda's longest timeout: a live claimant is never overtaken


class ThresholdStore(EntitlementReader, Protocol):
    def threshold_states(self, customer_id: str, month: str) -> dict[str, str]:
        """``<product>:<unit>#<percent>`` -> ``pending`` | ``published``."""
        ...

    def claim_threshold(
        self, event: ThresholdEvent, stale_before: datetime
    ) -> ThresholdEvent | None: ...

    def mark_published(self, event: ThresholdEvent) -> None: ...

    def release_claim(self, event: ThresholdEvent) -> None: ...


class ThresholdPublisher(Protocol):
    def publish(self, event: ThresholdEvent) -> None:
        """Put the event on the bus (and the optional topic). Raises TransientFailure."""
        ...


@dataclass(frozen=True)
class ThresholdWatcher:
    store: ThresholdStore
    publisher: ThresholdPublisher
    prices: PriceTable
    metrics: UsageMetrics

    def evaluate(self, customer_id: str, month: str) -> list[ThresholdEvent]:
        """Publish every threshold of ``month`` reached and not yet published; returns what this
        call published. Raises TransientFailure (the caller retries; nothing is lost)."""
        allowance, aggregates = self.store.entitlement_state(customer_id, month)
        if allowance is None:
            return []
        limits, source, version = allowance.effective()
        if not limits.limits:
            return []
        prices = self.prices.for_month(month)
        states: dict[str, str] | None = None
        published: list[ThresholdEvent] = []
        now = datetime.now(UTC)
        for limit in limits.limits:
            used, _ = used_under(limit, aggregates, prices)
            reached = [t for t in limit.thresholds if used * 100 >= limit.amount * t]
            if not reached:
                continue
            if states is None:
                states = self.store.threshold_states(customer_id, month)
            for percent in reached:
                if states.get(f"{limit.key}#{percent}") == PUBLISHED:
                    continue
                event = ThresholdEvent(
                    event_id=f"{customer_id}/{month}/{limit.key}/{percent}",
                    customer_id=customer_id,
                    month=month,
                    product=limit.product,
                    unit=limit.unit,
                    threshold_percent=percent,
                    used=used,
                    allowance=limit.amount,
                    enforcement=limit.enforcement,
                    allowance_source=source,
                    allowance_version=version,
                    currency=(prices.currency if prices else None)
                    if limit.unit == "cost"
                    else None,
                    reached_at=now,
                )
                claimed = self.store.claim_threshold(event, now - timedelta(seconds=CLAIM_SECONDS))
                if claimed is None:
                    continue
                try:
                    self.publisher.publish(claimed)
                except TransientFailure:
                    self.store.release_claim(claimed)
                    raise
                self.store.mark_published(claimed)
                self.metrics.count("ThresholdReached")
                published.append(claimed)
        return published
