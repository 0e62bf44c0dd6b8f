"""Every failure says why, and no log or stored message leaks a secret.

- Each failed processing attempt logs its reason; the last attempt (the queue's maxReceiveCount)
  dead-letters the message itself with the reason ``retries_exhausted`` and the last failure, so
  no DLQ message arrives without a reason.
- AssemblyAI's error messages quote the audio URL, whose query string can be a presigned
  signature: it is stored without query strings, fragments or user information.
- botocore logs response bodies at DEBUG (a GetSecretValue answer holds the secret): its loggers
  stay at WARNING whatever the root level is.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from conftest import API_KEYS, Stack, sqs_event, usage_message_body, webhook_url
from usage_meter_local.assemblyai_standin import transcript

TID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a88"
SIGNED = "X-Amz-Signature=5f1c0a9e&X-Amz-Credential=EXAMPLEKEY%2F20261129"


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """The functions' Powertools logger (which does not propagate), copied into a buffer."""
    from usage_meter.handlers import usage_processor

    service_logger = logging.getLogger(usage_processor.logger.service)
    buffer = io.StringIO()
    copy = logging.StreamHandler(buffer)
    copy.setFormatter(usage_processor.logger.registered_formatter)
    service_logger.addHandler(copy)
    try:
        yield buffer
    finally:
        service_logger.removeHandler(copy)


def test_each_failed_attempt_logs_its_reason(stack: Stack, service_log: io.StringIO) -> None:
    stack.api.state.add(transcript(TID, webhook_url=webhook_url("acme-corp")))
    stack.api.state.fail(TID, 503)

    result = stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")], 2))

    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["msg-0"]
    [line] = [json.loads(x) for x in service_log.getvalue().splitlines() if "attempt failed" in x]
    assert line["reason"] == "AssemblyAI server error (503)"
    assert line["receive_count"] == 2


def test_last_attempt_dead_letters_with_the_reason(stack: Stack) -> None:
    stack.api.state.add(transcript(TID, webhook_url=webhook_url("acme-corp")))
    stack.api.state.fail(TID, 503)
    body = usage_message_body(TID, "acme-corp")

    result = stack.invoke_processor(sqs_event([body], 8))  # the template's MaxReceiveCount

    assert result == {"batchItemFailures": []}  # done with: not left to SQS's silent redrive
    [dead] = stack.queue_messages(stack.dlq_url)
    assert dead["Body"] == body
    attributes = dead["MessageAttributes"]
    assert attributes["reason"]["StringValue"] == "retries_exhausted"
    detail = attributes["detail"]["StringValue"]
    assert detail == "8 attempts; the last failed with: AssemblyAI server error (503)"


def test_error_message_is_stored_without_url_queries(stack: Stack) -> None:
    error = (
        "Download error, unable to download "
        f"https://user:pw@bucket.s3.amazonaws.com/calls/a.mp3?{SIGNED}#t=1. Please check it."
    )
    stack.api.state.add(
        transcript(TID, webhook_url=webhook_url("acme-corp"), status="error", error=error)
    )

    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")], 1))

    [row] = stack.items("ledger")
    assert row["error_message"] == (
        "Download error, unable to download "
        "https://bucket.s3.amazonaws.com/calls/a.mp3?… Please check it."
    )
    assert "Signature" not in json.dumps(stack.items("ledger"), default=str)


def test_library_loggers_never_print_secrets(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    from usage_meter.adapters import aws_clients
    from usage_meter.handlers import usage_processor

    # Given the root logger at DEBUG (as AWS_LAMBDA_LOG_LEVEL=DEBUG sets it), botocore's loggers
    # as a fresh process has them, and no client or secret cached yet
    caplog.set_level(logging.DEBUG)
    for name in aws_clients.LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    aws_clients.reset()
    usage_processor._dependencies.cache_clear()
    stack.api.state.add(transcript(TID, webhook_url=webhook_url("acme-corp")))

    # When the processor reads the project's API key from Secrets Manager and records usage
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")], 1))

    # Then no log record holds the key
    assert len(stack.items("ledger")) == 1
    assert API_KEYS["default"] not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("botocore") and r.levelno < 30]
