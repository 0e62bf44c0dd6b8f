"""The local stack end to end, as a developer runs it: ``serve`` in a subprocess, webhooks over
real HTTP, the records read back from moto's server through boto3; ``demo`` exits by itself."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from local_stack_process import (
    ServedStack,
    children_of,
    process_exists,
    run_local_stack,
    served_stack,
)

from usage_meter_local import scenario
from usage_meter_local.demo_webhooks import post_webhook
from usage_meter_local.template import http_routes, load_template, sqs_subscriptions

pytestmark = pytest.mark.slow
__all__ = ["served_stack"]  # the fixture

SECRETS = {
    "current": scenario.LOCAL_WEBHOOK_SECRET,
    "previous": scenario.LOCAL_PREVIOUS_WEBHOOK_SECRET,
    "wrong": "not-the-secret",
}
HEADER = "X-Usage-Meter-Webhook-Secret"
TEMPLATE = load_template()
TRIGGERED = set(http_routes(TEMPLATE).values()) | set(sqs_subscriptions(TEMPLATE))
QUEUE_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def _wait_until_drained(stack: ServedStack, queue_url: str, timeout: float = 30) -> None:
    sqs: Any = stack.client("sqs")
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=QUEUE_ATTRIBUTES)
        quiet = quiet + 1 if not any(int(v) for v in attributes["Attributes"].values()) else 0
        if quiet >= 3:
            return
        time.sleep(0.3)
    pytest.fail("the usage queue did not drain")


def _items(stack: ServedStack) -> dict[str, list[dict[str, Any]]]:
    dynamodb: Any = stack.client("dynamodb")
    deserialize = TypeDeserializer().deserialize
    items = []
    for page in dynamodb.get_paginator("scan").paginate(TableName="UsageTable"):
        items.extend({k: deserialize(v) for k, v in i.items()} for i in page["Items"])
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for item in sorted(items, key=lambda i: (i["PK"], i["SK"])):
        # the shared AssemblyAI request budget (PACER#assemblyai) carries no entity
        by_entity.setdefault(item.get("entity", "other"), []).append(item)
    return by_entity


def _pick(item: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: item.get(n) for n in names}


def test_the_demo_scenario_over_http_records_exactly_the_expected_rows(
    served_stack: ServedStack,
) -> None:
    # Given the stack serving on free ports, its processes known
    workers = children_of(served_stack.process.pid)
    month = datetime.now(UTC).strftime("%Y-%m")

    # When the demo's webhooks arrive over real HTTP
    answers = [
        post_webhook(f"{served_stack.api_url}/webhooks/assemblyai", d, HEADER, SECRETS)
        for d in scenario.DELIVERIES
    ]
    sqs: Any = served_stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName="UsageQueue")["QueueUrl"]
    _wait_until_drained(served_stack, queue_url)

    # Then the answers are those AssemblyAI must get: 2xx unless truly bad
    assert [(a.status, a.outcome) for a in answers] == [
        (200, "accepted"),  # acme-corp completed
        (200, "accepted"),  # globex error
        (200, "accepted"),  # duplicate
        (200, "accepted"),  # multichannel
        (200, "accepted"),  # EU project
        (200, "accepted"),  # unknown model
        (200, "accepted"),  # previous (rotated) secret
        (200, "accepted"),  # revoked project key
        (200, "accepted"),  # another customer claims acme-corp's transcript
        (200, "ignored"),  # redacted_audio_ready
        (401, "unauthorized"),
        (400, "invalid_json"),
        (200, "accepted"),  # no customer_id: stored, resolved from the transcript's webhook_url
    ]
    # And one ledger row per transcript, whatever the duplicates
    items = _items(served_stack)
    ledger = [
        _pick(
            i,
            "source_id",
            "product",
            "customer_id",
            "project",
            "month",
            "status",
            "billable_seconds",
            "audio_duration_seconds",
            "audio_channels",
            "model",
            "language_code",
            "features",
            "dimensions",
            "error_message",
        )
        for i in sorted(items["ledger"], key=lambda i: i["source_id"])
    ]
    assert ledger == [
        {
            "source_id": scenario.COMPLETED_ID,
            "product": "async",
            "customer_id": "acme-corp",
            "project": "default",
            "month": month,
            "status": "billable",
            "billable_seconds": Decimal(754),
            "audio_duration_seconds": Decimal(754),
            "audio_channels": Decimal(1),
            "model": "universal-3-pro",
            "language_code": "en_us",
            "features": ["keyterms_prompt", "speaker_labels"],
            "dimensions": {"plan": "pro"},
            "error_message": None,
        },
        {
            "source_id": scenario.ERROR_ID,
            "product": "async",
            "customer_id": "globex",
            "project": "default",
            "month": month,
            "status": "failed",
            "billable_seconds": Decimal(0),
            "audio_duration_seconds": None,
            "audio_channels": Decimal(1),
            "model": "unknown",
            "language_code": "en_us",
            "features": [],
            "dimensions": {},
            "error_message": dict(scenario.SUBMISSIONS[1].fields)["error"],
        },
        {
            "source_id": scenario.MULTICHANNEL_ID,
            "product": "async",
            "customer_id": "acme-corp",
            "project": "default",
            "month": month,
            "status": "billable",
            "billable_seconds": Decimal("625.0"),
            "audio_duration_seconds": Decimal("312.5"),
            "audio_channels": Decimal(2),
            "model": "universal-2",
            "language_code": "en_us",
            "features": ["keyterms_prompt", "sentiment_analysis"],
            "dimensions": {"plan": "pro"},
            "error_message": None,
        },
        {
            "source_id": scenario.UNKNOWN_MODEL_ID,
            "product": "async",
            "customer_id": "umbrella",
            "project": "default",
            "month": month,
            "status": "billable",
            "billable_seconds": Decimal(421),
            "audio_duration_seconds": Decimal(421),
            "audio_channels": Decimal(1),
            "model": scenario.UNKNOWN_MODEL,
            "language_code": "en_us",
            "features": [],
            "dimensions": {},
            "error_message": None,
        },
        {
            "source_id": scenario.EU_ID,
            "product": "async",
            "customer_id": "initech-gmbh",
            "project": "eu",
            "month": month,
            "status": "billable",
            "billable_seconds": Decimal(1800),
            "audio_duration_seconds": Decimal(1800),
            "audio_channels": Decimal(1),
            "model": "universal-3-pro",
            "language_code": "de",
            "features": ["domain:medical-v1"],
            "dimensions": {"team": "research"},
            "error_message": None,
        },
    ]
    # And the monthly aggregates add up the billable rows exactly (the error row bills nothing)
    aggregates = sorted(
        (
            _pick(
                i,
                "customer_id",
                "month",
                "product",
                "project",
                "model",
                "dimensions",
                "usage_count",
                "billable_seconds",
            )
            for i in items["aggregate"]
        ),
        key=lambda a: (a["customer_id"], a["model"]),
    )
    assert aggregates == [
        {
            "customer_id": "acme-corp",
            "month": month,
            "product": "async",
            "project": "default",
            "model": "universal-2",
            "dimensions": {"plan": "pro"},
            "usage_count": Decimal(1),
            "billable_seconds": Decimal("625.0"),
        },
        {
            "customer_id": "acme-corp",
            "month": month,
            "product": "async",
            "project": "default",
            "model": "universal-3-pro",
            "dimensions": {"plan": "pro"},
            "usage_count": Decimal(1),
            "billable_seconds": Decimal(754),
        },
        {
            "customer_id": "initech-gmbh",
            "month": month,
            "product": "async",
            "project": "eu",
            "model": "universal-3-pro",
            "dimensions": {"team": "research"},
            "usage_count": Decimal(1),
            "billable_seconds": Decimal(1800),
        },
        {
            "customer_id": "umbrella",
            "month": month,
            "product": "async",
            "project": "default",
            "model": scenario.UNKNOWN_MODEL,
            "dimensions": {},
            "usage_count": Decimal(1),
            "billable_seconds": Decimal(421),
        },
    ]
    # And the usage API (GET /customers/{customer_id}/usage) answers from the same aggregates
    with urllib.request.urlopen(
        f"{served_stack.api_url}/customers/acme-corp/usage?month={month}", timeout=10
    ) as response:
        usage = json.loads(response.read())
    assert usage["customer_id"] == "acme-corp"
    assert usage["totals"]["usage_count"] == 2
    assert Decimal(usage["totals"]["billable_seconds"]) == Decimal(1379)
    # And the misattributed delivery is quarantined, not billed to globex
    assert [
        (q["source_id"], q["reason"], json.loads(q["message"])["attribution"]["customer_id"])
        for q in items["quarantine"]
    ] == [(scenario.COMPLETED_ID, "customer_mismatch", "globex")]
    # And the transcript of the project whose key AssemblyAI rejects is dead-lettered with why
    dlq_url = sqs.get_queue_url(QueueName="UsageDeadLetterQueue")["QueueUrl"]
    dead = sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
    assert [
        (json.loads(m["Body"])["transcript_id"], m["MessageAttributes"]["reason"]["StringValue"])
        for m in dead
    ] == [(scenario.LEGACY_ID, "assemblyai_auth")]

    # And the monthly export (scheduled on AWS) runs on the same data through Lambda's Invoke API
    lambda_api = served_stack.client("lambda", endpoint_url=served_stack.api_url)
    answer = lambda_api.invoke(
        FunctionName="MonthlyExportFunction", Payload=json.dumps({"month": month})
    )
    export = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, export
    assert (export["month"], export["status"], export["row_count"]) == (month, "published", 4)
    assert Decimal(export["totals"]["billable_seconds"]) == Decimal(754 + 625 + 1800 + 421)

    # When the developer presses Ctrl-C
    code = served_stack.stop(signal.SIGINT)

    # Then the stack stops cleanly and leaves no function process behind
    assert code == 0, "".join(served_stack.output)
    assert len(workers) == len(TRIGGERED)  # one per function with an HTTP route or SQS queue
    assert not [pid for pid in workers if process_exists(pid)]


def test_sigterm_stops_the_stack_cleanly(served_stack: ServedStack) -> None:
    workers = children_of(served_stack.process.pid)

    code = served_stack.stop(signal.SIGTERM)

    assert code == 0
    assert not [pid for pid in workers if process_exists(pid)]


def test_unknown_routes_get_api_gateways_404(served_stack: ServedStack) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{served_stack.api_url}/nowhere", timeout=10)
    assert caught.value.code == 404
    assert json.loads(caught.value.read()) == {"message": "Not Found"}


def test_a_taken_port_is_named_with_the_flag_to_change_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_local_stack("demo", f"--api-port={port}", f"--log-dir={tmp_path}")

    assert result.returncode == 2
    assert f"port {port} is in use, choose another with --api-port" in result.stderr


def test_make_run_demo_exits_by_itself_with_its_expectations_met(tmp_path: Path) -> None:
    # The demo checks its own expectations (exact ledger rows, aggregates per customer,
    # quarantine, dead letters, export = ledger) and exits non-zero when one is not met.
    result = run_local_stack("demo", f"--log-dir={tmp_path}", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    for heading in (
        "Webhook deliveries",
        "Streaming reports",
        "Orphan sweep",
        "Product reports",
        "Reconciliation with AssemblyAI",
        "Usage recorded per customer and month",
        "Ledger",
        "Quarantined",
        "Dead-letter queue",
        "Monthly billing export",
        "month,customer_id,product,project,model",
        "How each row was priced",
        "What the application received at",
        "endpoint_unavailable",
        "All demo expectations met.",
    ):
        assert heading in result.stdout
    # the CSV (region is empty for products not priced by region)
    assert ",globex,streaming,default,u3-rt-pro,,,false,1,33," in result.stdout
    # an add-on priced by model, a Speech Understanding task, estimated rows (issue 11)
    assert "keyterms_prompt=0;sentiment_analysis=0.02" in result.stdout
    assert "keyterms_prompt=0.05;speaker_labels=0.02" in result.stdout
    assert "speech_understanding:translation=1260.25" in result.stdout
    assert ",initech-gmbh,streaming,default,u3-rt-pro,,,true,1,10800," in result.stdout
    # the other products next to transcription (issue 14): Voice Agent and Sync priced per hour,
    # LLM Gateway per token and region, unpriced until its rates are sourced
    assert ",acme-corp,voice_agent,default,voice-agent,,,false,1,312," in result.stdout
    assert ",acme-corp,sync,default,universal-3-5-pro,,,false,2,105.25," in result.stdout
    assert ",acme-corp,llm_gateway,default,claude-sonnet-4-6,eu,,false,1,0,0.000000,12000,800," in (
        result.stdout
    )
    assert (tmp_path / "UsageProcessorFunction.log").read_text()
