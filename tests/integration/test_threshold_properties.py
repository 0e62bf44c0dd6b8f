"""Threshold events are decided exactly once, as a property over duplicates, retries and
concurrent processors.

DynamoDB makes each request atomic (a conditional put, a transaction) and promises nothing about
the order of requests from different processors. moto does not lock its backend, so the client
here serialises each request (a lock around every call, as DynamoDB's per-request atomicity) and
lets threads interleave freely *between* requests, which is where a check-then-act race in our
code would show. Each example: one customer, an allowance, usage records delivered 1-3 times
each, shuffled, spread over 1-4 threads, and a publisher that fails on some calls (the caller's
retry then delivers again, as SQS would).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REGION, Stack, examples
from usage_meter.adapters.limits_table import DynamoLimits
from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.recording import record_once
from usage_meter.logic.thresholds import ThresholdWatcher
from usage_meter.models.limits import AllowanceSet, Limit, ThresholdEvent
from usage_meter.models.usage import UsageRecord, UsageStatus


class SerialisedClient:
    """Every DynamoDB request runs alone (atomic, like DynamoDB); threads interleave between."""

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


class FlakyRecordingPublisher:
    """Records what was published; refuses the calls whose number is in ``fail_on``."""

    def __init__(self, fail_on: set[int]) -> None:
        self.published: list[ThresholdEvent] = []
        self._calls = 0
        self._fail_on = fail_on
        self._lock = threading.Lock()

    def publish(self, event: ThresholdEvent) -> None:
        with self._lock:
            self._calls += 1
            if self._calls in self._fail_on:
                raise TransientFailure("EventBridge throttled (simulated)")
            self.published.append(event)


class NullMetrics:
    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        return None


def _record(customer: str, index: int, seconds: int, product: str, month: str) -> UsageRecord:
    return UsageRecord(
        source_id=f"{customer}-{index}",
        product=product,  # type: ignore[arg-type]
        status=UsageStatus.BILLABLE,
        customer_id=customer,
        project="default",
        month=month,
        billable_seconds=Decimal(seconds),
        model="universal-3-pro" if product == "async" else "u3-rt-pro",
        occurred_at=datetime.now(UTC),
        origin="webhook" if product == "async" else "streaming",
    )


scenarios = st.fixed_dictionaries(
    {
        "usage": st.lists(
            st.tuples(st.integers(1, 900), st.sampled_from(["async", "streaming"])),
            min_size=1,
            max_size=8,
        ),
        "copies": st.lists(st.integers(1, 3), min_size=8, max_size=8),
        "amount": st.integers(60, 3000),
        "thresholds": st.lists(st.integers(1, 150), min_size=1, max_size=4, unique=True),
        "threads": st.integers(1, 4),
        "fail_on": st.sets(st.integers(1, 6), max_size=2),
        "seed": st.integers(0, 2**16),
    }
)


@pytest.mark.usefixtures("stack")
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios)
def test_each_threshold_is_published_exactly_once(stack: Stack, scenario: dict[str, Any]) -> None:
    month = f"{datetime.now(UTC):%Y-%m}"
    customer = f"prop-{uuid.uuid4().hex[:12]}"  # a fresh customer per example, same table
    client = SerialisedClient(boto3.client("dynamodb", region_name=REGION))
    limits = DynamoLimits(client, stack.table)  # type: ignore[arg-type]
    limit = Limit(
        unit="seconds", amount=Decimal(scenario["amount"]), thresholds=tuple(scenario["thresholds"])
    )
    assert limits.put_customer_change(
        customer,
        expected_version=0,
        own=AllowanceSet(limits=(limit,)),
        plan=None,
        plan_limits=None,
        plan_version=0,
        change={"reason": "property test"},
    )
    publisher = FlakyRecordingPublisher(scenario["fail_on"])
    watcher = ThresholdWatcher(
        limits, publisher, load_price_table("usage_meter/config/prices.json"), NullMetrics()
    )
    ledger = DynamoUsageLedger(client, stack.table, watcher.evaluate)  # type: ignore[arg-type]

    records = [
        _record(customer, i, seconds, product, month)
        for i, (seconds, product) in enumerate(scenario["usage"])
    ]
    deliveries = [r for r, n in zip(records, scenario["copies"], strict=False) for _ in range(n)]
    random.Random(scenario["seed"]).shuffle(deliveries)
    shares: list[list[UsageRecord]] = [[] for _ in range(scenario["threads"])]
    for i, record in enumerate(deliveries):
        shares[i % len(shares)].append(record)
    errors: list[BaseException] = []

    def processor(share: list[UsageRecord]) -> None:
        for record in share:
            for _ in range(10):  # a failed publish is retried, as SQS redelivers the message
                try:
                    record_once(ledger, record)  # as the processor records it
                    break
                except TransientFailure:
                    continue
            else:
                errors.append(AssertionError("a delivery never succeeded"))

    workers = [threading.Thread(target=processor, args=(s,)) for s in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    total = sum(Decimal(seconds) for seconds, _ in scenario["usage"])
    expected = {t for t in scenario["thresholds"] if total * 100 >= scenario["amount"] * t}
    counts = Counter(e.threshold_percent for e in publisher.published)
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values()), counts
    states = limits.threshold_states(customer, month)
    assert set(states.values()) <= {"published"}
    assert len(states) == len(expected)
    for event in publisher.published:
        # reached when a delivery made it so: never before the threshold, never above the total
        assert event.used * 100 >= event.allowance * event.threshold_percent
        assert event.used <= total
