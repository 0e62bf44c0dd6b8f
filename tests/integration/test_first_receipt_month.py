"""A webhook's usage belongs to the UTC month of its first receipt, even when SQS hands the
processor a later copy first (standard queues do not keep order)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import Stack, sqs_event, usage_message_body, webhook_url
from usage_meter_local.assemblyai_standin import transcript

NOV_LAST = "2026-11-30T23:59:58.500Z"
DEC_FIRST = "2026-12-01T00:00:05.000Z"


def _deliver(stack: Stack, received_at: str) -> None:
    body = usage_message_body("t-midnight", "acme-corp", received_at=received_at)
    assert stack.invoke_processor(sqs_event([body])) == {"batchItemFailures": []}


def _state(stack: Stack) -> tuple[list[tuple[str, str]], dict[str, tuple[int, Decimal]]]:
    ledger = [(r["month"], r["occurred_at"]) for r in stack.items("ledger")]
    aggregates = {
        a["month"]: (int(a["usage_count"]), Decimal(a["billable_seconds"]))
        for a in stack.items("aggregate")
    }
    return ledger, aggregates


@pytest.mark.parametrize("order", [(NOV_LAST, DEC_FIRST), (DEC_FIRST, NOV_LAST)], ids=str)
def test_the_month_is_that_of_the_first_receipt_in_any_processing_order(
    stack: Stack, order: tuple[str, str]
) -> None:
    # Given one transcript whose webhook was received just before and just after midnight
    stack.api.state.add(
        transcript("t-midnight", webhook_url=webhook_url("acme-corp"), audio_duration=90)
    )

    # When the processor sees the two copies in either order (and one of them again)
    for received_at in (*order, order[0]):
        _deliver(stack, received_at)

    # Then it is billed once, in November (the first receipt), and December has no row at all
    # (not even a 0-count one: issue 9, case 5)
    ledger, aggregates = _state(stack)
    assert ledger == [("2026-11", "2026-11-30T23:59:58.500000+00:00")]
    assert aggregates == {"2026-11": (1, Decimal(90))}
