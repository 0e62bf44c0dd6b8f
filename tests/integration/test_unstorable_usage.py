"""Accepted means storable, or quarantined with the reason; one bad item never blocks a run.

DynamoDB limits a sort key to 1,024 bytes and a partition key to 2,048 (AWS DynamoDB Developer
Guide, "Quotas": attribute values used as keys). Percent-encoding multiplies non-ASCII bytes, so a
dimension value of 126 Japanese characters (378 UTF-8 bytes) became a key component far over the
limit: 8 attempts, then the DLQ with no reason. Key parts are now bounded in bytes (a fixed-length
digest in the key, the readable value in the item's attributes), so the issue's case is billed.

Whatever DynamoDB still refuses (a ValidationException can never succeed on a retry) is
quarantined as ``unstorable`` with DynamoDB's reason, never retried into the DLQ, and
reconciliation and the orphan sweep go on with the next item. Those tests switch the key bounds
off to make DynamoDB refuse an item as it did before.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from test_reconciliation import Quiet, add, run
from test_streaming import NOW, begin, status_of, sweep, terminate

from conftest import Stack, sqs_event, usage_message_body, webhook_url
from usage_meter.adapters import usage_keys
from usage_meter_local.assemblyai_standin import transcript

TID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a66"
TEAM = "営業部" * 42  # the case: a Japanese team name, 126 characters


@pytest.fixture
def unbounded_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Key parts as long as their encoding: DynamoDB refuses TEAM's keys (ValidationException)."""
    monkeypatch.setattr(usage_keys, "BREAKDOWN_KEY_MAX_BYTES", 10**6)
    yield


def test_case_1_long_non_ascii_dimension_is_billed(stack: Stack) -> None:
    # Given the webhook: ?customer_id=acme&team=<"営業部" x 42, URL-encoded>
    assert quote(TEAM).count("%") == 378  # 126 characters, 378 UTF-8 bytes
    stack.api.state.add(
        transcript(TID, webhook_url=webhook_url("acme", team=TEAM), audio_duration=120)
    )
    body = usage_message_body(TID, "acme", dimensions={"team": TEAM})

    # When the processor handles it
    result = stack.invoke_processor(sqs_event([body], 1))

    # Then 120 s are billed to acme, once, with the readable team in the aggregate's attributes
    assert result == {"batchItemFailures": []}
    [row] = stack.items("ledger")
    assert (row["customer_id"], row["billable_seconds"]) == ("acme", Decimal(120))
    [aggregate] = stack.items("aggregate")
    assert aggregate["dimensions"] == {"team": TEAM}
    assert len(aggregate["SK"].encode()) <= 1024 and len(aggregate["LMSK"].encode()) <= 1024
    assert usage_keys.DIGEST_PREFIX in aggregate["SK"]
    assert stack.items("quarantine") == [] and stack.queue_messages(stack.dlq_url) == []


def test_short_key_parts_stay_readable() -> None:
    assert usage_keys.customer_key("acme corp") == "acme%20corp"
    long_id = "ü" * 128  # 128 characters, 1,536 bytes once percent-encoded
    assert usage_keys.customer_key(long_id).startswith(usage_keys.DIGEST_PREFIX)
    assert len(usage_keys.customer_key(long_id)) == len(usage_keys.DIGEST_PREFIX) + 40
    assert usage_keys.customer_key(long_id) == usage_keys.customer_key(long_id)


def test_what_dynamodb_still_refuses_is_quarantined_with_the_reason(
    stack: Stack, unbounded_keys: None
) -> None:
    stack.api.state.add(
        transcript(TID, webhook_url=webhook_url("acme", team=TEAM), audio_duration=120)
    )
    body = usage_message_body(TID, "acme", dimensions={"team": TEAM})

    result = stack.invoke_processor(sqs_event([body], 1))

    assert result == {"batchItemFailures": []}  # done with, once: no retry loop
    [held] = stack.items("quarantine")
    assert held["reason"] == "unstorable"
    assert "1024 bytes" in held["detail"]
    assert stack.items("ledger") == [] and stack.items("aggregate") == []
    assert stack.queue_messages(stack.dlq_url) == []


def test_one_unstorable_transcript_does_not_stop_reconciliation(
    stack: Stack, unbounded_keys: None
) -> None:
    add(stack, "t-bad", customer="acme", hours_ago=3, url=webhook_url("acme", team=TEAM))
    add(stack, "t-good", customer="acme", hours_ago=2, audio_duration=60)

    report = run(stack, metrics=Quiet())

    assert report.complete
    assert {r["source_id"] for r in stack.items("ledger")} == {"t-good"}
    assert [(q["source_id"], q["reason"]) for q in stack.items("quarantine")] == [
        ("t-bad", "unstorable")
    ]
    run(stack, metrics=Quiet())  # the next run does not stumble on it either
    assert len(stack.items("quarantine")) == 1


def test_one_unstorable_session_does_not_stop_the_orphan_sweep(
    stack: Stack, unbounded_keys: None
) -> None:
    began = (NOW - timedelta(hours=4)).isoformat()
    assert (
        status_of(begin(stack, session_id="sess-bad", began_at=began, dimensions={"team": TEAM}))[0]
        == 200
    )
    assert status_of(begin(stack, session_id="sess-good", began_at=began))[0] == 200

    summary = sweep(stack)

    assert (summary["found"], summary["billed"], summary["unstorable"]) == (2, 1, 1)
    assert {r["source_id"] for r in stack.items("ledger")} == {"sess-good"}
    [held] = stack.items("quarantine")
    assert (held["source_id"], held["reason"]) == ("sess-bad", "unstorable")
    assert sweep(stack)["found"] == 0  # settled: it does not block the next sweep


def test_unstorable_termination_is_held_not_a_5xx(stack: Stack, unbounded_keys: None) -> None:
    response = terminate(stack, session_id="sess-term", dimensions={"team": TEAM})
    assert status_of(response) == (200, "quarantined")
    [held] = stack.items("quarantine")
    assert held["reason"] == "unstorable"
