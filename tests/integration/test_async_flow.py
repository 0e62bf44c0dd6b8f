"""Webhook -> SQS -> processor -> DynamoDB, through the real handlers, the real queue (moto) and
the real assemblyai SDK talking to the AssemblyAI stand-in."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from conftest import Stack, load_event


def _drain(stack: Stack) -> dict[str, Any]:
    """Deliver what the intake queued to the processor, as the event source mapping would."""
    messages = stack.queue_messages(stack.queue_url)
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"]
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:UsageQueue",
                "awsRegion": "eu-west-1",
            }
            for m in messages
        ]
    }
    return stack.invoke_processor(event)


def test_webhook_to_ledger_and_aggregate(stack: Stack) -> None:
    stack.api.state.add(load_event("transcripts/completed.json"))
    webhook = load_event("apigw/webhook_completed.json")

    first = stack.invoke_intake(webhook)
    duplicate = stack.invoke_intake(webhook)  # AssemblyAI may deliver twice

    assert (first["statusCode"], duplicate["statusCode"]) == (200, 200)
    assert _drain(stack) == {"batchItemFailures": []}
    [row] = stack.items("ledger")
    assert (row["customer_id"], row["billable_seconds"], row["month"]) == (
        "acme-corp",
        754,
        "2026-11",
    )
    assert row["occurred_at"] == "2026-11-03T14:05:09.123000+00:00"  # API Gateway's receipt time
    [aggregate] = stack.items("aggregate")
    assert aggregate["SK"] == "MONTH#2026-11#async#default#universal-3-pro#plan%3Dpro"
    assert (aggregate["usage_count"], aggregate["billable_seconds"]) == (1, Decimal(754))
    assert aggregate["addon:speaker_labels"] == Decimal(754)
    assert stack.items("quarantine") == []
