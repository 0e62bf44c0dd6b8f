"""Forwarding: every authenticated AssemblyAI notification becomes one event on the meter's bus
and, with ForwardUrl set, one signed delivery to the application; metering never depends on it.

Facts from AssemblyAI's docs (shared/reference/assemblyai-api-facts.md): the webhook body is
``{"transcript_id", "status": "completed" | "error"}``; ``redacted_audio_ready`` carries no
transcript id; a receiver's 5xx is retried (about 10 times, 10 s apart), a 4xx is not; custom
query parameters on ``webhook_url`` are preserved. Signatures: Standard Webhooks v1
(https://www.standardwebhooks.com/).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from moto import mock_aws

from conftest import (
    API_KEYS,
    PREVIOUS_WEBHOOK_SECRET,
    REGION,
    WEBHOOK_SECRET,
    Stack,
    _reset_caches,
    load_event,
)
from embedded_aws import EmbeddedAws
from usage_meter_client import InvalidSignature, verify_forwarded_notification
from usage_meter_local.app_receiver import AppReceiver
from usage_meter_local.assemblyai_standin import AssemblyAIStandIn
from usage_meter_local.template import load_template, provision

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs/schemas/notification-events.schema.json").read_text()
)
SIGNING = "whsec_dGVzdC1vbmx5LWZvcndhcmQta2V5LTAx"  # base64("test-only-forward-key-01")
PREVIOUS_SIGNING = "whsec_dGVzdC1vbmx5LWZvcndhcmQta2V5LTAw"
APP_HEADER = {"header_name": "X-App-Webhook-Secret", "header_value": "test-only-app-value"}
COMPLETED_ID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01"
ERROR_ID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a02"


@pytest.fixture
def receiver() -> Iterator[AppReceiver]:
    app = AppReceiver().start()
    app.state.signing_secret = SIGNING
    yield app
    app.stop()


@pytest.fixture
def fwd(
    assemblyai: AssemblyAIStandIn,
    receiver: AppReceiver,
    monkeypatch: pytest.MonkeyPatch,
    embedded_aws: EmbeddedAws,
) -> Iterator[Stack]:
    """The stack with forwarding on (ForwardUrl = the local application) and an observer queue
    that a rule fills with every event on the bus: provisioned with other parameters than the
    session's embedded AWS, so in a mock of its own (the session's is suspended meanwhile)."""
    embedded_aws.suspend()
    template = load_template()
    parameters = {
        "AssemblyAIProjects": json.dumps(
            {name: {"api_key_secret_id": f"usage-meter/assemblyai/{name}"} for name in API_KEYS}
        ),
        "ForwardUrl": receiver.url + "?source=meter",
        "ForwardMaxAttempts": "3",
    }
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        resources = provision(
            template,
            boto3.client("dynamodb", region_name=REGION),
            sqs,
            boto3.client("s3", region_name=REGION),
            parameters=parameters,
            events=events,
        )
        secrets = boto3.client("secretsmanager", region_name=REGION)
        for name, value in {
            "usage-meter/webhook-auth": {
                "current": WEBHOOK_SECRET,
                "previous": PREVIOUS_WEBHOOK_SECRET,
            },
            "usage-meter/forward-signing": {"current": SIGNING, "previous": PREVIOUS_SIGNING},
            "usage-meter/forward-auth": APP_HEADER,
            **{f"usage-meter/assemblyai/{p}": {"api_key": k} for p, k in API_KEYS.items()},
        }.items():
            secrets.create_secret(Name=name, SecretString=json.dumps(value))
        observer = sqs.create_queue(QueueName="observer")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])
        bus = resources.event_buses["UsageEventBus"]
        events.put_rule(Name="all", EventBusName=bus, EventPattern='{"source": ["usage-meter"]}')
        events.put_targets(
            Rule="all",
            EventBusName=bus,
            Targets=[{"Id": "o", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        resources.queue_urls["Observer"] = observer
        yield Stack(resources, template, assemblyai, monkeypatch, parameters)
    _reset_caches()


# -- helpers -----------------------------------------------------------------------------------


def sqs_records(stack: Stack, queue: str, receive_count: int | None = None) -> dict[str, Any]:
    messages = stack.queue_messages(stack.resources.queue_urls[queue])
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": str(
                        receive_count or m["Attributes"]["ApproximateReceiveCount"]
                    )
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{queue}",
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def drain(stack: Stack, queue: str) -> list[dict[str, Any]]:
    """Receive and delete every message of a queue (bodies parsed)."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = stack.resources.queue_urls[queue]
    out = []
    for m in stack.queue_messages(url):
        out.append(json.loads(m["Body"]))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def webhook(
    query: str, body: dict[str, Any] | str, epoch_ms: int = 1793714709123
) -> dict[str, Any]:
    event = copy.deepcopy(load_event("apigw/webhook_completed.json"))
    event["rawQueryString"] = query
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["requestContext"]["timeEpoch"] = epoch_ms
    return event


def observed(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    events = drain(stack, "Observer")
    for event in events:
        jsonschema.validate(event, SCHEMA)  # the documented schema, for every event published
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["detail-type"], []).append(event["detail"])
    return by_type


# -- events --------------------------------------------------------------------------------------


def test_every_accepted_notification_is_one_event_and_a_duplicate_is_never_recorded_twice(
    fwd: Stack,
) -> None:
    fwd.api.state.add(load_event("transcripts/completed.json"))
    fwd.api.state.add(load_event("transcripts/error.json"))
    completed = {"transcript_id": COMPLETED_ID, "status": "completed"}
    redacted = {"status": "redacted_audio_ready", "redacted_audio_url": "https://cdn.invalid/a"}
    answers = [
        fwd.invoke_intake(webhook("customer_id=acme-corp&plan=pro", completed)),
        fwd.invoke_intake(webhook("customer_id=acme-corp&plan=pro", completed, 1793714719123)),
        fwd.invoke_intake(
            webhook("customer_id=globex", {"transcript_id": ERROR_ID, "status": "error"})
        ),
        fwd.invoke_intake(webhook("customer_id=acme-corp", redacted)),
    ]
    bad_auth = webhook("customer_id=acme-corp", completed)
    bad_auth["headers"]["x-usage-meter-webhook-secret"] = "wrong"
    rejected = fwd.invoke_intake(bad_auth)

    assert [a["statusCode"] for a in answers] == [200, 200, 200, 200]
    assert rejected["statusCode"] == 401
    received = observed(fwd)["AssemblyAI Notification Received"]
    assert [(d["transcript_id"], d["status"]) for d in received] == [
        (COMPLETED_ID, "completed"),
        (COMPLETED_ID, "completed"),
        (ERROR_ID, "error"),
        (None, "redacted_audio_ready"),
    ]
    assert received[0]["notification_id"] == received[1]["notification_id"]  # same notification
    assert received[3]["body"] == json.dumps(redacted)  # AssemblyAI's bytes, unchanged

    assert fwd.invoke_processor(sqs_records(fwd, "UsageQueue")) == {"batchItemFailures": []}
    processed = observed(fwd)["AssemblyAI Notification Processed"]
    outcomes = sorted((d["transcript_id"], d["outcome"], d["received_at"]) for d in processed)
    assert outcomes == [
        (COMPLETED_ID, "duplicate", "2026-11-03T14:05:19.123Z"),
        (COMPLETED_ID, "recorded", "2026-11-03T14:05:09.123Z"),
        (ERROR_ID, "recorded", "2026-11-03T14:05:09.123Z"),
    ]
    recorded = next(
        d for d in processed if d["outcome"] == "recorded" and d["status"] == "completed"
    )
    assert (recorded["billable_seconds"], recorded["model"], recorded["usage_month"]) == (
        "754",
        "universal-3-pro",
        "2026-11",
    )
    assert recorded["notification_id"] == received[0]["notification_id"]
    assert len(fwd.items("ledger")) == 2


def test_a_retried_announcement_says_recorded_again_never_duplicate(fwd: Stack) -> None:
    """The ledger write succeeded but the Processed event was not taken: the retry finds its own
    row and announces ``recorded`` (and an AssemblyAI copy still says ``duplicate``)."""
    fwd.api.state.add(load_event("transcripts/completed.json"))
    fwd.invoke_intake(
        webhook(
            "customer_id=acme-corp&plan=pro", {"transcript_id": COMPLETED_ID, "status": "completed"}
        )
    )
    observed(fwd)
    fwd.invoke_processor(sqs_records(fwd, "UsageQueue"))  # recorded + announced
    observed(fwd)

    assert fwd.invoke_processor(sqs_records(fwd, "UsageQueue", receive_count=2)) == {
        "batchItemFailures": []
    }
    [again] = observed(fwd)["AssemblyAI Notification Processed"]
    assert again["outcome"] == "recorded"
    assert len(fwd.items("ledger")) == 1


def test_intake_answers_503_when_the_event_cannot_be_published_but_the_usage_is_queued(
    fwd: Stack,
) -> None:
    fwd.overrides["EVENT_BUS_NAME"] = "no-such-bus"
    answer = fwd.invoke_intake(
        webhook("customer_id=acme-corp", {"transcript_id": COMPLETED_ID, "status": "completed"})
    )

    assert answer["statusCode"] == 503  # AssemblyAI retries: the notification is not lost
    [queued] = fwd.queue_messages(fwd.resources.queue_urls["UsageQueue"])  # metering went first
    assert json.loads(queued["Body"])["transcript_id"] == COMPLETED_ID


# -- what is billing and what is the application's ------------------------------------------------


def test_only_allow_listed_parameters_are_billed_the_rest_only_reaches_the_app(
    fwd: Stack, receiver: AppReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    fwd.api.state.add(
        {
            **load_event("transcripts/completed.json"),
            "webhook_url": "https://abc123.execute-api.eu-west-1.amazonaws.com/webhooks/assemblyai"
            "?customer_id=acme-corp&plan=pro&token=app-owned-value&Order-Id=A%2F42",
        }
    )
    query = "customer_id=acme-corp&plan=pro&token=app-owned-value&Order-Id=A%2F42"
    answer = fwd.invoke_intake(
        webhook(query, {"transcript_id": COMPLETED_ID, "status": "completed"})
    )
    fwd.invoke_processor(sqs_records(fwd, "UsageQueue"))
    fwd.invoke("NotificationForwarderFunction", sqs_records(fwd, "ForwardQueue"))

    assert answer["statusCode"] == 200  # "Order-Id" breaks the dimension rules: not ours to judge
    [row] = fwd.items("ledger")
    assert row["dimensions"] == {"plan": "pro"}
    [aggregate] = fwd.items("aggregate")
    assert aggregate["SK"].endswith("#plan%3Dpro")
    [delivery] = receiver.state.accepted()
    assert delivery.query == "source=meter&" + query  # the app's own parameters, untouched
    books = json.dumps(fwd.items("ledger") + fwd.items("aggregate"), default=str)
    logs = capsys.readouterr()
    for secret_like in ("app-owned-value", "A%2F42", "A/42"):
        assert secret_like not in books
        assert secret_like not in logs.out + logs.err


# -- forwarding ----------------------------------------------------------------------------------


def test_the_app_receives_what_assemblyai_sent_signed_and_verifiable(
    fwd: Stack, receiver: AppReceiver
) -> None:
    body = '{"transcript_id": "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01",  "status": "completed"}'
    fwd.invoke_intake(webhook("customer_id=acme-corp&plan=pro&order=7", body))

    answer = fwd.invoke("NotificationForwarderFunction", sqs_records(fwd, "ForwardQueue"))

    assert answer == {"batchItemFailures": []}
    [delivery] = receiver.state.deliveries
    assert delivery.body == body.encode()  # byte for byte, odd spacing included
    assert delivery.query == "source=meter&customer_id=acme-corp&plan=pro&order=7"
    assert delivery.verified and delivery.answered == 200
    assert delivery.headers["x-app-webhook-secret"] == "test-only-app-value"
    assert len(delivery.headers["webhook-signature"].split()) == 2  # current + previous secret
    msg_id = verify_forwarded_notification(SIGNING, delivery.headers, delivery.body)
    assert msg_id == delivery.headers["webhook-id"]
    assert verify_forwarded_notification(PREVIOUS_SIGNING, delivery.headers, delivery.body)
    with pytest.raises(InvalidSignature):
        verify_forwarded_notification(
            SIGNING, delivery.headers, delivery.body.replace(b"completed", b"error")
        )
    with pytest.raises(InvalidSignature):
        verify_forwarded_notification(
            "whsec_" + "d3JvbmctdGVzdC1rZXktMDAwMDA=", delivery.headers, delivery.body
        )


def test_a_failing_app_is_retried_then_dead_lettered_with_the_reason_books_unchanged(
    fwd: Stack, receiver: AppReceiver
) -> None:
    fwd.api.state.add(load_event("transcripts/completed.json"))
    fwd.invoke_intake(
        webhook(
            "customer_id=acme-corp&plan=pro", {"transcript_id": COMPLETED_ID, "status": "completed"}
        )
    )
    fwd.invoke_processor(sqs_records(fwd, "UsageQueue"))
    books = fwd.items("ledger") + fwd.items("aggregate")
    receiver.state.fail_with = 503

    attempt = sqs_records(fwd, "ForwardQueue", 1)
    first = fwd.invoke("NotificationForwarderFunction", attempt)
    attempt["Records"][0]["attributes"]["ApproximateReceiveCount"] = "3"  # SQS, later
    last = fwd.invoke("NotificationForwarderFunction", attempt)

    assert len(first["batchItemFailures"]) == 1  # retried through SQS
    assert last == {"batchItemFailures": []}  # the last attempt went to the DLQ itself
    [dead] = fwd.queue_messages(fwd.resources.queue_urls["ForwardDeadLetterQueue"])
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes == {"reason": "endpoint_unavailable", "detail": "HTTP 503 on attempt 3"}
    assert json.loads(dead["Body"])["detail"]["transcript_id"] == COMPLETED_ID  # redrivable
    assert fwd.items("ledger") + fwd.items("aggregate") == books


def test_an_app_refusing_with_4xx_is_dead_lettered_at_once(
    fwd: Stack, receiver: AppReceiver
) -> None:
    fwd.invoke_intake(
        webhook("customer_id=acme-corp", {"transcript_id": COMPLETED_ID, "status": "completed"})
    )
    receiver.state.fail_with = 404

    answer = fwd.invoke("NotificationForwarderFunction", sqs_records(fwd, "ForwardQueue", 1))

    assert answer == {"batchItemFailures": []}
    [dead] = fwd.queue_messages(fwd.resources.queue_urls["ForwardDeadLetterQueue"])
    assert dead["MessageAttributes"]["reason"]["StringValue"] == "endpoint_rejected"
    assert dead["MessageAttributes"]["detail"]["StringValue"] == "HTTP 404; not retried"
