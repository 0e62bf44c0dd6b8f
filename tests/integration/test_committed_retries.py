"""Retries that already committed: the first attempt's answer is lost, the SDK sends it again.

botocore retries a call whose answer it did not get (a timeout, a dropped connection, a 500 after
the commit). The retry must get the first attempt's outcome, not be read as a duplicate or a
conflict with its own write: ``TransactWriteItems`` carries a ``ClientRequestToken`` (DynamoDB
applies one token once in 10 minutes and answers an identical retry with success - AWS DynamoDB
API reference, ``TransactWriteItems``), and a conditional put carries a ``write_id`` that the
failed condition hands back (``ReturnValuesOnConditionCheckFailure=ALL_OLD``).

The lost answer is simulated inside botocore's own retry loop: the first ``needs-retry`` check of
the operation asks for a retry although the call succeeded, exactly as a lost answer would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3

from conftest import REGION, Stack
from usage_meter.adapters.session_store import DynamoSessionStore
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.recording import record_once
from usage_meter.logic.streaming_sessions import store_begin
from usage_meter.models.streaming import SessionBegin
from usage_meter.models.usage import (
    QuarantineItem,
    QuarantineReason,
    RecordResult,
    UsageRecord,
    UsageStatus,
)

AT = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _client_losing_first_answer(stack: Stack, operation: str) -> tuple[Any, list[int]]:
    """A ledger whose client retries the first successful ``operation`` as if its answer were
    lost."""
    client = boto3.client("dynamodb", region_name=REGION)
    calls: list[int] = []

    def lose_first_answer(response: Any = None, **_: Any) -> int | None:
        calls.append(1)
        if len(calls) == 1 and response is not None and response[0].status_code == 200:
            return 0  # retry now, with the same request (and the same token)
        return None

    client.meta.events.register_first(f"needs-retry.dynamodb.{operation}", lose_first_answer)
    return client, calls


def _ledger_losing_first_answer(
    stack: Stack, operation: str
) -> tuple[DynamoUsageLedger, list[int]]:
    client, calls = _client_losing_first_answer(stack, operation)
    return DynamoUsageLedger(client, stack.table), calls


def _record(source: str = "t-retried", seconds: int = 120, at: datetime = AT) -> UsageRecord:
    return UsageRecord(
        source_id=source,
        product="async",
        status=UsageStatus.BILLABLE,
        customer_id="acme-corp",
        project="default",
        month=at.strftime("%Y-%m"),
        billable_seconds=Decimal(seconds),
        model="universal-3-pro",
        occurred_at=at,
    )


def test_recording_retried_after_its_commit_is_recorded_once(stack: Stack) -> None:
    ledger, calls = _ledger_losing_first_answer(stack, "TransactWriteItems")

    outcome = ledger.record(_record())

    assert len(calls) == 2  # the call was sent twice
    assert outcome.result is RecordResult.RECORDED  # not DUPLICATE of its own write
    [aggregate] = stack.items("aggregate")
    assert (aggregate["usage_count"], aggregate["billable_seconds"]) == (1, Decimal(120))
    # A real second delivery (a new call, a new token) is still a duplicate.
    assert record_once(ledger, _record()).result is RecordResult.DUPLICATE


def test_replacement_retried_after_its_commit_reports_success(stack: Stack) -> None:
    plain = DynamoUsageLedger(boto3.client("dynamodb", region_name=REGION), stack.table)
    first = _record(at=datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC))
    assert plain.record(first).result is RecordResult.RECORDED
    ledger, calls = _ledger_losing_first_answer(stack, "TransactWriteItems")

    earlier = _record(at=datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC))
    assert ledger.replace_record(first, earlier)  # not "the row changed meanwhile"

    assert len(calls) == 2
    counts = {
        a["month"]: (a["usage_count"], a["billable_seconds"]) for a in stack.items("aggregate")
    }
    assert counts["2026-11"] == (1, Decimal(120))  # moved once, not twice
    assert counts.get("2026-12", (0, 0)) == (0, 0)


def test_quarantine_retried_after_its_commit_is_counted_as_new(stack: Stack) -> None:
    ledger, calls = _ledger_losing_first_answer(stack, "PutItem")
    item = QuarantineItem(
        source_id="t-held",
        reason=QuarantineReason.CONFLICT,
        detail="different facts",
        message={"transcript_id": "t-held"},
        quarantined_at=AT,
    )

    assert ledger.quarantine(item)  # new: its metric and alarm fire
    assert len(calls) == 2
    assert not ledger.quarantine(item)  # a real second attempt: already held
    assert len(stack.items("quarantine")) == 1


def test_session_begin_retried_after_its_commit_is_recorded(stack: Stack) -> None:
    client, calls = _client_losing_first_answer(stack, "PutItem")
    ledger = DynamoSessionStore(client, stack.table)
    begin = SessionBegin(
        session_id="sess-retried",
        customer_id="acme-corp",
        model="universal-streaming-english",
        began_at=AT,
    )

    assert ledger.put_begin(begin) == (RecordResult.RECORDED, None)
    assert len(calls) == 2
    result, existing = store_begin(ledger, begin)
    assert result is RecordResult.DUPLICATE and existing == begin


def test_the_ledger_reports_facts_and_closes_a_session_only_when_told(stack: Stack) -> None:
    """Issue 10: the adapter decides nothing. A second write of a source is EXISTS with the row
    there (``logic.recording`` decides duplicate or conflict); a streaming row closes its session
    only when the caller asks (it used to be decided by the product inside the adapter)."""
    client = boto3.client("dynamodb", region_name=REGION)
    ledger = DynamoUsageLedger(client, stack.table)
    streaming = _record("sess-plain").model_copy(update={"product": "streaming"})
    assert ledger.record(streaming).result is RecordResult.RECORDED
    stubs = client.get_item(
        TableName=stack.table, Key={"PK": {"S": "SESSION#sess-plain"}, "SK": {"S": "BEGIN"}}
    )
    assert "Item" not in stubs

    again = ledger.record(streaming.model_copy(update={"billable_seconds": Decimal(1)}))
    assert (again.result, again.existing) == (RecordResult.EXISTS, streaming)

    closing = _record("sess-closing").model_copy(update={"product": "streaming"})
    assert ledger.record(closing, closes_session=True).result is RecordResult.RECORDED
    session = client.get_item(
        TableName=stack.table, Key={"PK": {"S": "SESSION#sess-closing"}, "SK": {"S": "BEGIN"}}
    )["Item"]
    assert session["closed_by"] == {"S": closing.origin}
