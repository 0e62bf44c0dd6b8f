"""Intake -> queue -> processor -> DynamoDB, against moto and the AssemblyAI stand-in (real SDK)."""

from __future__ import annotations

import json
from decimal import Decimal

from conftest import Stack, load_event


def test_smoke(stack: Stack) -> None:
    t = load_event("transcripts/completed.json")
    stack.api.state.add(t)
    response = stack.invoke_intake(load_event("apigw/webhook_completed.json"))
    assert response["statusCode"] == 200, response
    messages = stack.queue_messages(stack.queue_url)
    assert len(messages) == 1
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn",
                "awsRegion": "eu-west-1",
                "md5OfBody": "x",
            }
            for m in messages
        ]
    }
    result = stack.invoke_processor(event)
    assert result == {"batchItemFailures": []}
    ledger = stack.items("ledger")
    assert len(ledger) == 1
    assert ledger[0]["billable_seconds"] == Decimal(754)
    print(json.dumps(stack.items("aggregate"), default=str))
