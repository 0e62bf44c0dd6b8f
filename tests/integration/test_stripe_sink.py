"""The Stripe sink against a local Stripe stand-in, driven by the official ``stripe`` SDK: each
billable ledger row is sent once, with its source id as the meter event identifier, whatever the
duplicates and retries; what cannot be sent goes to the Stripe DLQ with a reason.

Stripe facts (API reference, "Create a billing meter event"): POST /v1/billing/meter_events with
event_name, payload[stripe_customer_id], payload[value], identifier (unique for at least 24 h),
timestamp (within the past 35 days)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws

from conftest import PROJECTS, REGION, Stack, _reset_caches, sqs_event
from embedded_aws import EmbeddedAws
from usage_meter import ops_cli
from usage_meter.adapters.usage_keys import ledger_item
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.errors import TransientFailure
from usage_meter.models.usage import UsageRecord, UsageStatus
from usage_meter_local.assemblyai_standin import AssemblyAIStandIn
from usage_meter_local.stripe_standin import StripeStandIn
from usage_meter_local.template import load_template, provision, resources_of

METER = "assemblyai_audio_seconds"
NOW = datetime.now(UTC).replace(microsecond=0)
_serializer = TypeSerializer()


@pytest.fixture
def stack(
    assemblyai: AssemblyAIStandIn, monkeypatch: pytest.MonkeyPatch, embedded_aws: EmbeddedAws
) -> Iterator[Stack]:
    """The stack with the Stripe sink on (StripeMeterEventName set): its queues exist only under
    HasStripe, so it is provisioned with other parameters than the session's embedded AWS, in a
    mock of its own (the session's is suspended meanwhile)."""
    embedded_aws.suspend()
    template = load_template()
    parameters = {"AssemblyAIProjects": json.dumps(PROJECTS), "StripeMeterEventName": METER}
    with mock_aws():
        resources = provision(
            template,
            boto3.client("dynamodb", region_name=REGION),
            boto3.client("sqs", region_name=REGION),
            boto3.client("s3", region_name=REGION),
            parameters=parameters,
            events=boto3.client("events", region_name=REGION),
        )
        yield Stack(resources, template, assemblyai, monkeypatch, parameters)
    _reset_caches()


@pytest.fixture
def stripe_api(stack: Stack) -> Iterator[StripeStandIn]:
    with StripeStandIn() as api:
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="usage-meter/stripe", SecretString=json.dumps({"api_key": api.state.api_key})
        )
        stack.overrides["STRIPE_API_BASE_OVERRIDE"] = api.url
        yield api


def usage(
    source_id: str,
    customer: str,
    seconds: str,
    *,
    at: datetime = NOW - timedelta(hours=1),
    status: UsageStatus = UsageStatus.BILLABLE,
    estimated: bool = False,
) -> UsageRecord:
    return UsageRecord(
        source_id=source_id,
        product="async",
        status=status,
        customer_id=customer,
        project="default",
        month=at.strftime("%Y-%m"),
        billable_seconds=Decimal(seconds),
        model="universal-3-pro",
        occurred_at=at,
        estimated=estimated,
    )


def stream_body(record: UsageRecord, event_name: str = "INSERT") -> str:
    """The SQS body the EventBridge pipe forwards: the DynamoDB stream record of the ledger row."""
    image = {
        k: _serializer.serialize(v) for k, v in ledger_item(record, NOW).items() if v is not None
    }
    return json.dumps(
        {
            "eventID": f"evt-{record.source_id}",
            "eventName": event_name,
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": {"Keys": {"PK": image["PK"], "SK": image["SK"]}, "NewImage": image},
        }
    )


def sink(stack: Stack, bodies: list[str], receive_count: int = 1) -> list[str]:
    """Invoke the sink as the SQS event source would; the ids of the messages to retry."""
    result = stack.invoke("StripeSinkFunction", sqs_event(bodies, receive_count))
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def map_customer(stack: Stack, customer: str, stripe_customer: str) -> None:
    where = ["--table", stack.table, "--queue-url", stack.queue_url, "--dlq-url", stack.dlq_url]
    mapping = ["--customer", customer, "--stripe-customer", stripe_customer]
    assert ops_cli.main([*where, "stripe", "map", *mapping, "--reason", "signed up"]) == 0


def dead_letters(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    url = stack.resources.queue_urls["StripeDeadLetterQueue"]
    return [
        (m["MessageAttributes"]["reason"]["StringValue"], json.loads(m["Body"]))
        for m in stack.queue_messages(url)
    ]


def test_each_billable_row_is_sent_once_under_duplicates_and_retries(
    stack: Stack, stripe_api: StripeStandIn
) -> None:
    # Given three billable rows of two mapped customers, and a failed transcript
    map_customer(stack, "acme", "cus_acme")
    map_customer(stack, "globex", "cus_globex")
    a, b, c = usage("t-a", "acme", "60"), usage("t-b", "acme", "30.5"), usage("t-c", "globex", "10")
    failed = usage("t-f", "acme", "0", status=UsageStatus.FAILED)

    # When the pipe delivers duplicates and Stripe answers 500 once, then 429 once
    stripe_api.state.fail_next = [500, 429]
    batch = [stream_body(r) for r in (a, a, b, c, failed)]
    retry = sink(stack, batch)
    assert retry == ["msg-0", "msg-1"]  # the two Stripe failures, retried through SQS
    again = sink(stack, [batch[0], batch[1]], receive_count=2)
    redelivered = sink(stack, batch, receive_count=3)  # the whole batch once more

    # Then Stripe counted each source once, under its source id, with the exact seconds
    assert (again, redelivered) == ([], [])
    assert sorted(e["identifier"] for e in stripe_api.state.events) == ["t-a", "t-b", "t-c"]
    assert stripe_api.state.totals() == {"cus_acme": Decimal("90.5"), "cus_globex": Decimal(10)}
    event = next(e for e in stripe_api.state.events if e["identifier"] == "t-a")
    assert (event["event_name"], event["timestamp"]) == (METER, int(a.occurred_at.timestamp()))
    assert dead_letters(stack) == []


def test_a_crash_after_stripe_accepted_is_never_counted_twice(
    stack: Stack, stripe_api: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Stripe accepts the event but the sink dies before marking it sent
    from usage_meter.adapters.stripe_meter import DynamoSinkStore

    map_customer(stack, "acme", "cus_acme")
    original = DynamoSinkStore.mark_sent
    calls = {"n": 0}

    def crash_once(self: DynamoSinkStore, identifier: str, value: str, name: str) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientFailure("DynamoDB write failed: simulated")
        original(self, identifier, value, name)

    monkeypatch.setattr(DynamoSinkStore, "mark_sent", crash_once)
    body = stream_body(usage("t-a", "acme", "60"))
    assert sink(stack, [body]) == ["msg-0"]

    # When SQS redelivers it, Stripe refuses the repeated identifier
    assert sink(stack, [body], receive_count=2) == []

    # Then it was counted once, and the refusal waits in the DLQ for a person (not dropped)
    assert [e["identifier"] for e in stripe_api.state.events] == ["t-a"]
    assert [reason for reason, _ in dead_letters(stack)] == ["stripe_rejected"]


def test_an_unmapped_customer_waits_in_the_dlq_until_mapped(
    stack: Stack, stripe_api: StripeStandIn
) -> None:
    body = stream_body(usage("t-a", "initech", "42"))
    assert sink(stack, [body]) == []
    [(reason, parked)] = dead_letters(stack)
    assert reason == "stripe_customer_unmapped" and stripe_api.state.events == []

    map_customer(stack, "initech", "cus_initech")
    assert sink(stack, [json.dumps(parked)]) == []  # redriven
    assert stripe_api.state.totals() == {"cus_initech": Decimal(42)}


@pytest.mark.parametrize(
    ("record", "unit", "reason"),
    [
        (usage("t-old", "acme", "5", at=NOW - timedelta(days=36)), "seconds", "stripe_too_old"),
        (usage("t-odd", "acme", "1.2345"), "milliseconds", "stripe_value_inexact"),
    ],
)
def test_what_stripe_cannot_take_exactly_is_refused_not_rounded(
    stack: Stack, stripe_api: StripeStandIn, record: UsageRecord, unit: str, reason: str
) -> None:
    map_customer(stack, "acme", "cus_acme")
    stack.parameters["StripeValueUnit"] = unit
    assert sink(stack, [stream_body(record)]) == []
    assert [r for r, _ in dead_letters(stack)] == [reason]
    assert stripe_api.state.events == []


def test_milliseconds_are_exact(stack: Stack, stripe_api: StripeStandIn) -> None:
    map_customer(stack, "acme", "cus_acme")
    stack.parameters["StripeValueUnit"] = "milliseconds"
    assert sink(stack, [stream_body(usage("t-a", "acme", "30.5"))]) == []
    assert [e["payload"]["value"] for e in stripe_api.state.events] == ["30500"]


def test_a_row_changed_after_it_was_sent_is_flagged_not_resent(
    stack: Stack, stripe_api: StripeStandIn
) -> None:
    # Given an orphan estimate already sent, then replaced by the real termination (MODIFY)
    map_customer(stack, "acme", "cus_acme")
    estimate = usage("s-1", "acme", "10800", estimated=True)
    assert sink(stack, [stream_body(estimate)]) == []
    real = usage("s-1", "acme", "5400")
    same = sink(stack, [stream_body(estimate, "MODIFY")])
    changed = sink(stack, [stream_body(real, "MODIFY")])

    # Then Stripe keeps one event, and the change waits in the DLQ for an adjustment in Stripe
    assert (same, changed) == ([], [])
    assert stripe_api.state.totals() == {"cus_acme": Decimal(10800)}
    assert [r for r, _ in dead_letters(stack)] == ["stripe_changed_after_sent"]


def test_real_ledger_rows_round_trip_through_the_stream_image(
    stack: Stack, stripe_api: StripeStandIn
) -> None:
    # The stream image is the ledger item the adapter writes: read one back from the table
    map_customer(stack, "acme", "cus_acme")
    ledger = DynamoUsageLedger(boto3.client("dynamodb", region_name=REGION), stack.table)
    ledger.record(usage("t-real", "acme", "12.5"))
    [row] = stack.items("ledger")
    image = {k: _serializer.serialize(v) for k, v in row.items()}
    body = json.dumps({"eventName": "INSERT", "dynamodb": {"NewImage": image}})
    assert sink(stack, [body]) == []
    assert stripe_api.state.totals() == {"cus_acme": Decimal("12.5")}


def test_the_pipe_forwards_only_billable_ledger_rows_and_everything_is_optional() -> None:
    template = load_template()
    [pipe] = resources_of(template, "AWS::Pipes::Pipe").values()
    pattern = json.loads(pipe["SourceParameters"]["FilterCriteria"]["Filters"][0]["Pattern"])
    assert pattern["dynamodb"]["NewImage"] == {
        "entity": {"S": ["ledger"]},
        "status": {"S": ["billable"]},
    }
    stripe_resources = [
        name
        for name, resource in template["Resources"].items()
        if name.startswith("Stripe") or resource["Type"] == "AWS::Pipes::Pipe"
    ]
    assert len(stripe_resources) >= 7
    assert all(template["Resources"][n].get("Condition") == "HasStripe" for n in stripe_resources)
