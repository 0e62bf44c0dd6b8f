"""The local SQS event source behaves like Lambda's: partial batch failures redeliver only the
failed messages, a failed invocation leaves every message of its batch, and after maxReceiveCount
receives the queue's redrive policy moves a message to the dead-letter queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import usage_message_body
from usage_meter_local.assemblyai_standin import transcript
from usage_meter_local.function_pool import Invocation
from usage_meter_local.scenario import PLACEHOLDER_WEBHOOK_URL
from usage_meter_local.sqs_poller import EventSourceConfig, SqsEventSource
from usage_meter_local.stack import LocalStack, StackConfig

pytestmark = pytest.mark.slow
MAX_RECEIVES = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        parameters={"MaxReceiveCount": str(MAX_RECEIVES)},
        retry_delay_cap=1,
        http=False,
        log_dir=Path(tmp_path_factory.mktemp("logs")),
    )
    with LocalStack(config) as running:
        yield running


def _submitted(stack: LocalStack, transcript_id: str, customer_id: str) -> None:
    stack.assemblyai.state.add(
        transcript(
            transcript_id, webhook_url=f"{PLACEHOLDER_WEBHOOK_URL}?customer_id={customer_id}"
        )
    )


def _enqueue(stack: LocalStack, *bodies: str) -> None:
    stack.clients.sqs.send_message_batch(
        QueueUrl=stack.resources.queue_urls["UsageQueue"],
        Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)],
    )


def _ledger_row(stack: LocalStack, transcript_id: str) -> dict[str, Any] | None:
    # By attributes, not keys: the key layout is the adapter's business (tests only scan).
    items = stack.clients.dynamodb.scan(
        TableName=stack.resources.tables["UsageTable"],
        FilterExpression="entity = :ledger AND source_id = :id",
        ExpressionAttributeValues={":ledger": {"S": "ledger"}, ":id": {"S": transcript_id}},
    )["Items"]
    assert len(items) <= 1
    return dict(items[0]) if items else None


def _requests_for(stack: LocalStack, transcript_id: str) -> int:
    return stack.assemblyai.state.requests.count(("GET", f"/v2/transcript/{transcript_id}"))


def _dead_letters(stack: LocalStack) -> list[dict[str, Any]]:
    messages = stack.clients.sqs.receive_message(
        QueueUrl=stack.resources.queue_urls["UsageDeadLetterQueue"],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        VisibilityTimeout=0,
    ).get("Messages", [])
    return [dict(m) for m in messages]


def test_a_partial_batch_failure_redelivers_only_the_failed_message(stack: LocalStack) -> None:
    # Given two deliveries in one batch, and AssemblyAI failing once for the second transcript
    _submitted(stack, "partial-ok", "acme-corp")
    _submitted(stack, "partial-flaky", "acme-corp")
    stack.assemblyai.state.fail("partial-flaky", 503, times=1)
    before = stack.event_sources[0].stats.failed_items

    # When both are queued
    _enqueue(
        stack,
        usage_message_body("partial-ok", "acme-corp"),
        usage_message_body("partial-flaky", "acme-corp"),
    )
    assert stack.wait_until_drained(30)

    # Then both are recorded; only the failed one came back, the other was deleted at once
    assert _ledger_row(stack, "partial-ok") is not None
    assert _ledger_row(stack, "partial-flaky") is not None
    assert _requests_for(stack, "partial-ok") == 1
    assert _requests_for(stack, "partial-flaky") == 2
    assert stack.event_sources[0].stats.failed_items == before + 1


def test_a_whole_batch_failure_leaves_every_message_for_redelivery(stack: LocalStack) -> None:
    # Given a queue with three messages and a function that fails its first invocation outright
    sqs = stack.clients.sqs
    url = sqs.create_queue(QueueName="whole-batch-failure")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    deliveries: list[list[tuple[str, str]]] = []

    def invoke(function: str, event: dict[str, Any]) -> Invocation:
        deliveries.append(
            [(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"]]
        )
        if len(deliveries) == 1:
            error = {"errorType": "RuntimeError", "errorMessage": "boom", "stackTrace": []}
            return Invocation(request_id="r1", ok=False, error=error)
        return Invocation(request_id="r2", ok=True, result={"batchItemFailures": []})

    config = EventSourceConfig(
        function="Fake",
        queue_url=url,
        queue_arn=arn,
        region=stack.config.region,
        batching_window_seconds=0.5,
        report_batch_item_failures=True,
        retry_delay_cap=1,
    )
    source = SqsEventSource(config, sqs, invoke).start()
    try:
        # When the event source runs until the queue is empty
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (len(deliveries) < 2 or stack.queue_depth(url)):
            time.sleep(0.2)
    finally:
        source.stop()

    # Then the failed batch came back whole (each message received a second time), then went
    assert [sorted(d) for d in deliveries] == [
        [("m0", "1"), ("m1", "1"), ("m2", "1")],
        [("m0", "2"), ("m1", "2"), ("m2", "2")],
    ]
    assert source.stats.failed_batches == 1
    assert source.stats.deleted == 3
    assert stack.queue_depth(url) == 0


def test_after_max_receives_the_message_is_dead_lettered_with_its_last_failure(
    stack: LocalStack,
) -> None:
    # Given AssemblyAI failing for one transcript every time
    _submitted(stack, "always-down", "initech-gmbh")
    stack.assemblyai.state.fail("always-down", 503, times=1000)
    body = usage_message_body("always-down", "initech-gmbh")

    started = time.monotonic()
    _enqueue(stack, body)
    assert stack.wait_until_drained(60)

    # Then it was tried maxReceiveCount times, never billed, and on the last receive it went to
    # the DLQ intact, saying why (issue 17: every DLQ message carries a reason and detail)
    assert _requests_for(stack, "always-down") == MAX_RECEIVES
    assert _ledger_row(stack, "always-down") is None
    dead = [m for m in _dead_letters(stack) if json.loads(m["Body"]) == json.loads(body)]
    assert len(dead) == 1
    attributes = dead[0].get("MessageAttributes", {})
    assert attributes["reason"]["StringValue"] == "retries_exhausted"
    assert attributes["detail"]["StringValue"] == (
        f"{MAX_RECEIVES} attempts; the last failed with: AssemblyAI server error (503)"
    )
    assert time.monotonic() - started < 30
