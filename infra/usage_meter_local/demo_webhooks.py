"""The demo's first act: AssemblyAI's webhooks over real HTTP (scenario.DELIVERIES), the queue
drained by the processor, and a check of what was recorded, quarantined and dead-lettered."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

from usage_meter_local import scenario
from usage_meter_local.report import Recorded, read_recorded, table
from usage_meter_local.stack import LocalStack

DRAIN_TIMEOUT_SECONDS = 45.0


@dataclass(frozen=True)
class Answer:
    status: int
    document: dict[str, Any]

    @property
    def outcome(self) -> str:
        return str(self.document.get("status") or self.document.get("error") or "")


def post_webhook(
    url: str, delivery: scenario.Delivery, header_name: str, secret_values: dict[str, str]
) -> Answer:
    """POST one delivery like AssemblyAI does: JSON body, the custom auth header."""
    headers = {"content-type": "application/json", "user-agent": "usage-meter-local-demo"}
    headers[header_name] = secret_values[delivery.auth]
    request = urllib.request.Request(  # noqa: S310 - our own local HTTP front
        f"{url}?{delivery.query}", data=delivery.body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        document = json.loads(raw)
    except ValueError:
        document = {"raw": raw.decode("utf-8", "replace")}
    return Answer(status, document if isinstance(document, dict) else {"raw": document})


def run_webhooks(stack: LocalStack, out: TextIO) -> list[str]:
    """Send the scenario's deliveries, wait for the queue to drain; return unmet expectations."""
    current, previous = stack.webhook_secrets
    secret_values = {"current": current, "previous": previous, "wrong": "not-the-secret"}
    for delivery in scenario.DELIVERIES:
        if delivery.fault and delivery.transcript_id:
            status, retry_after = delivery.fault
            stack.assemblyai.state.fail(delivery.transcript_id, status, retry_after=retry_after)

    started = time.monotonic()
    answers = [
        post_webhook(stack.webhook_url, d, stack.auth_header_name, secret_values)
        for d in scenario.DELIVERIES
    ]
    drained = stack.wait_until_drained(DRAIN_TIMEOUT_SECONDS)
    elapsed = time.monotonic() - started
    out.write(
        table(
            f"Webhook deliveries: POST {stack.webhook_url}",
            ["#", "delivery", "HTTP", "answer"],
            [
                [i, d.label, a.status, a.outcome]
                for i, (d, a) in enumerate(zip(scenario.DELIVERIES, answers, strict=True), 1)
            ],
        )
    )
    source = stack.event_sources[0].stats if stack.event_sources else None
    if source:
        out.write(
            f"  queue -> processor: {source.batches} batches, {source.messages} messages "
            f"delivered, {source.failed_items + source.failed_batches} retried, "
            f"{'drained' if drained else 'NOT drained'} {elapsed:.1f} s after the first webhook\n"
        )
    out.write("\n")
    return check(answers, read_recorded(stack), drained, stack)


def check(answers: list[Answer], recorded: Recorded, drained: bool, stack: LocalStack) -> list[str]:
    """What the demo expected but did not see (empty when everything matched)."""
    failures = [
        f"{d.label}: expected HTTP {d.expect_status} {d.expect}, got {a.status} {a.outcome}"
        for d, a in zip(scenario.DELIVERIES, answers, strict=True)
        if (a.status, a.outcome) != (d.expect_status, d.expect)
    ]
    if not drained:
        failures.append(f"the usage queue did not drain within {DRAIN_TIMEOUT_SECONDS:.0f} s")
    failures += unmet_expectations(recorded, scenario.EXPECTED_LEDGER, scenario.EXPECTED_QUARANTINE)
    dead = sorted((d.transcript_id, d.reason) for d in recorded.dead_letters)
    if dead != sorted(scenario.EXPECTED_DEAD_LETTERS):
        failures.append(
            f"dead letters: expected {sorted(scenario.EXPECTED_DEAD_LETTERS)}, got {dead}"
        )
    retried = sum(s.stats.failed_items + s.stats.failed_batches for s in stack.event_sources)
    faults = sum(1 for d in scenario.DELIVERIES if d.fault)
    if retried < faults:
        failures.append(f"expected at least {faults} retried message(s), saw {retried}")
    return failures


def unmet_expectations(
    recorded: Recorded,
    ledger: Sequence[scenario.LedgerFacts],
    quarantine: Sequence[tuple[str, str]],
) -> list[str]:
    """The ledger rows, the per-customer totals of the aggregates (over all months: the demo may
    run across midnight at a month's end) and the quarantine, against what was expected."""
    failures: list[str] = []

    def expect(what: str, actual: Any, expected: Any) -> None:
        if actual != expected:
            failures.append(f"{what}: expected {expected}, got {actual}")

    expect(
        "ledger rows", sorted(scenario.LedgerFacts.of(r) for r in recorded.ledger), sorted(ledger)
    )
    totals: dict[str, tuple[int, Decimal]] = {}
    for e in ledger:
        if e.status == "billable":
            count, seconds = totals.get(e.customer_id, (0, Decimal(0)))
            totals[e.customer_id] = (count + 1, seconds + e.billable_seconds)
    usage: dict[str, tuple[int, Decimal]] = {}
    for u in recorded.usage:
        count, seconds = usage.get(u.customer_id, (0, Decimal(0)))
        usage[u.customer_id] = (count + u.count, seconds + u.billable_seconds)
    expect("usage per customer (aggregates)", usage, totals)
    expect(
        "quarantine",
        sorted((str(q["source_id"]), str(q["reason"])) for q in recorded.quarantine),
        sorted(quarantine),
    )
    return failures
