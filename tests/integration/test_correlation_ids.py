"""Correlation ids (handlers/correlation.py): API Gateway's request id of a webhook delivery
travels with the usage message (SQS message attribute ``correlation_id``) into the processor's
log lines and its Processed event, and with the Received event into the forwarder's log lines.
Through the deployed shape (moto, template.yaml, forwarding on)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.integration.test_notification_events import (  # noqa: F401 - fixtures
    COMPLETED_ID,
    fwd,
    observed,
    receiver,
    webhook,
)

from conftest import Stack

REQUEST_ID = "B7xKqg2JDoEEMVg="  # requestContext.requestId of the recorded delivery


def lambda_records(stack: Stack, queue: str) -> dict[str, Any]:
    """The queue's messages as Lambda's SQS event source delivers them, attributes included."""
    records = []
    for m in stack.queue_messages(stack.resources.queue_urls[queue]):
        attributes = {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in (m.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": attributes,
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
            }
        )
    return {"Records": records}


Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """The JSON lines the functions log from now on, as Powertools formats them (a handler of
    our own with the service logger's formatter: pytest's stdout capture depends on when the
    handler was made). Each call returns the lines since the previous call."""
    from aws_lambda_powertools import Logger

    service = Logger()  # POWERTOOLS_SERVICE_NAME: the logger every handler module shares
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(service.registered_formatter)
    service.addHandler(handler)

    def read() -> list[dict[str, Any]]:
        text = stream.getvalue()
        stream.seek(0)
        stream.truncate()
        return [json.loads(x) for x in text.splitlines() if x.startswith("{")]

    yield read
    service.removeHandler(handler)


def test_the_intake_request_id_reaches_the_processor_and_forwarder_log_lines(
    fwd: Stack,  # noqa: F811
    log_lines: Lines,
) -> None:
    # Given a delivery whose transcript AssemblyAI does not know (the processor quarantines it,
    # which it logs record by record)
    event = webhook(
        "customer_id=acme-corp&plan=pro", {"transcript_id": COMPLETED_ID, "status": "completed"}
    )
    assert event["requestContext"]["requestId"] == REQUEST_ID
    assert fwd.invoke_intake(event)["statusCode"] == 200
    intake_lines = log_lines()

    # Then the intake's own line carries it, and so does the queued message
    assert [
        line["correlation_id"] for line in intake_lines if line["message"] == "webhook accepted"
    ] == [REQUEST_ID]
    batch = lambda_records(fwd, "UsageQueue")
    [record] = batch["Records"]
    assert record["messageAttributes"]["correlation_id"]["stringValue"] == REQUEST_ID

    # When the processor handles the message
    assert fwd.invoke_processor(batch) == {"batchItemFailures": []}
    lines = log_lines()

    # Then its record's line carries the intake request's id, the batch line lists it
    [handled] = [line for line in lines if line["message"] == "usage message handled"]
    assert (handled["outcome"], handled["correlation_id"]) == ("quarantined", REQUEST_ID)
    [summary] = [line for line in lines if line["message"] == "usage batch handled"]
    assert summary["correlation_ids"] == [REQUEST_ID]

    # And both events on the bus carry it (the documented schema allows it)
    events = observed(fwd)
    assert [d["correlation_id"] for d in events["AssemblyAI Notification Received"]] == [REQUEST_ID]
    assert [d["correlation_id"] for d in events["AssemblyAI Notification Processed"]] == [
        REQUEST_ID
    ]

    # When the forwarder delivers the notification to the application
    log_lines()
    forwarded = fwd.invoke("NotificationForwarderFunction", lambda_records(fwd, "ForwardQueue"))
    assert forwarded == {"batchItemFailures": []}

    # Then its line carries the same id
    [line] = [x for x in log_lines() if x["message"] == "notification forwarded"]
    assert line["correlation_id"] == REQUEST_ID


def test_an_api_request_logs_its_request_id(stack: Stack, log_lines: Lines) -> None:
    # Given a usage API request with API Gateway's request id
    event = {
        "routeKey": "GET /customers/{customer_id}/usage",
        "pathParameters": {"customer_id": "acme"},
        "queryStringParameters": {"month": "0000-01"},
        "requestContext": {"requestId": "req-usage-1"},
    }
    # When it is refused (a month before year 1 is a 400, never a 5xx)
    answer = stack.invoke("UsageQueryFunction", event)
    assert answer["statusCode"] == 400
    # Then the line saying so carries the request's id
    [line] = [x for x in log_lines() if x["message"] == "request rejected"]
    assert (line["correlation_id"], line["code"]) == ("req-usage-1", "invalid_month")
