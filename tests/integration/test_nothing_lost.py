"""Issue 9, "nothing lost": an authenticated delivery that names a transcript is never refused, and
the usage AssemblyAI bills ends billed or quarantined with a reason, whatever arrives.

Each listed case of the issue is a test here, end to end through the real handlers (intake -> SQS
-> processor -> DynamoDB in moto, the real SDK against the AssemblyAI stand-in).

Facts used: AssemblyAI stops retrying a webhook on any 4xx (assemblyai-api-facts.md, "Webhooks");
``DELETE /v2/transcript/{id}`` replaces ``webhook_url`` and ``audio_url`` with
``http://deleted_by_user`` and keeps ``audio_duration`` (AssemblyAI API spec, the
``DeleteTranscriptResponse`` example; assemblyai-api-facts.md, "Deleted transcripts").
"""

from __future__ import annotations

import copy
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest

from conftest import (
    REGION,
    REPORT_SECRET,
    WEBHOOK_BASE_URL,
    Stack,
    load_event,
    sqs_event,
    webhook_url,
)
from usage_meter.adapters.assemblyai_api import transcript_source
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.logic.standard_webhooks import signed_headers
from usage_meter.logic.usage_processing import ProcessorDeps, process_usage_message
from usage_meter.models.usage import UNKNOWN_MODEL_REASON
from usage_meter.models.webhook import UsageMessage
from usage_meter.settings import processor_settings
from usage_meter_client import webhook_target
from usage_meter_local.assemblyai_standin import transcript

RECORDED = load_event("apigw/webhook_completed.json")  # received 2026-11-03T14:05:09.123Z
DELETED = "http://deleted_by_user"


def webhook_event(transcript_id: str, raw_query: str, **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(RECORDED)
    event["rawQueryString"] = raw_query
    event["body"] = json.dumps({"transcript_id": transcript_id, "status": "completed"})
    event["isBase64Encoded"] = False
    event.update(changes)
    return event


def deliver(stack: Stack, event: dict[str, Any]) -> dict[str, Any]:
    """The intake answers; then the processor handles whatever it queued (as SQS would)."""
    response = stack.invoke_intake(event)
    messages = stack.queue_messages(stack.queue_url)
    sqs = boto3.client("sqs", region_name=REGION)
    for message in messages:
        sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    bodies = [m["Body"] for m in messages]
    if bodies:
        assert stack.invoke_processor(sqs_event(bodies)) == {"batchItemFailures": []}
    return response


def ledger_rows(stack: Stack) -> dict[str, dict[str, Any]]:
    return {r["source_id"]: r for r in stack.items("ledger")}


def quarantined(stack: Stack) -> dict[str, dict[str, Any]]:
    return {q["source_id"]: q for q in stack.items("quarantine")}


def usage_answer(stack: Stack, customer_id: str, month: str = "2026-11") -> dict[str, Any]:
    event = {
        "version": "2.0",
        "routeKey": "GET /customers/{customer_id}/usage",
        "rawPath": f"/customers/{quote(customer_id)}/usage",
        "pathParameters": {"customer_id": customer_id},
        "queryStringParameters": {"month": month},
        "requestContext": {"http": {"method": "GET"}},
    }
    response = stack.invoke("UsageQueryFunction", event)
    assert response["statusCode"] == 200, response
    document: dict[str, Any] = json.loads(response["body"])
    return document


# -- case 1: a camelCase dimension -------------------------------------------------------------


@pytest.fixture(autouse=True)
def _module_id_is_a_billing_dimension(stack: Stack) -> None:
    # These cases bill moduleId: an operator allow-lists it (BillingDimensions, issue 13).
    stack.overrides["BILLING_DIMENSIONS"] = "plan,team,moduleId"


def test_case_1_camel_case_dimension_is_billed_not_refused(stack: Stack) -> None:
    # Given a completed 120 s transcript whose webhook_url carries ?customer_id=acme-corp&moduleId=…
    query = "customer_id=acme-corp&moduleId=mod_8f2c"
    stack.api.state.add(
        transcript("t-case-1", webhook_url=f"{WEBHOOK_BASE_URL}?{query}", audio_duration=120)
    )

    # When AssemblyAI delivers its webhook with the same query and valid auth
    response = deliver(stack, webhook_event("t-case-1", query))

    # Then it is answered 200 and 120 s are billed to acme-corp with moduleId kept as a dimension
    assert response["statusCode"] == 200, response
    row = ledger_rows(stack)["t-case-1"]
    assert (row["customer_id"], row["billable_seconds"]) == ("acme-corp", Decimal(120))
    assert row["dimensions"] == {"moduleId": "mod_8f2c"}
    [aggregate] = stack.items("aggregate")
    assert (aggregate["usage_count"], aggregate["dimensions"]) == (1, {"moduleId": "mod_8f2c"})
    assert quarantined(stack) == {}


# -- case 2: non-ASCII letters and spaces in customer ids ----------------------------------------


def test_case_2_non_ascii_and_space_customer_ids_are_billed(stack: Stack) -> None:
    # Given transcripts submitted for müller-gmbh and "acme corp", as AssemblyAI echoes their URLs
    for tid, raw in (("t-muller", "m%C3%BCller-gmbh"), ("t-space", "acme%20corp")):
        url = f"{WEBHOOK_BASE_URL}?customer_id={raw}"
        stack.api.state.add(transcript(tid, webhook_url=url, audio_duration=60))

        # When their webhooks arrive
        response = deliver(stack, webhook_event(tid, f"customer_id={raw}"))

        # Then each is answered 200 and billed, not held
        assert response["statusCode"] == 200, response

    rows = ledger_rows(stack)
    assert rows["t-muller"]["customer_id"] == "müller-gmbh"
    assert rows["t-space"]["customer_id"] == "acme corp"
    assert quarantined(stack) == {}
    # And the usage API answers for them under the same (NFC) names
    for customer in ("müller-gmbh", "acme corp", "mu\u0308ller-gmbh", "m%C3%BCller-gmbh"):
        answer = usage_answer(stack, customer)
        assert answer["totals"]["usage_count"] == 1, (customer, answer)


def test_the_app_helper_builds_urls_the_service_bills(stack: Stack) -> None:
    # The application helper applies the same rule (and NFC) as the intake and the processor
    target = webhook_target(
        WEBHOOK_BASE_URL, "mu\u0308ller gmbh", auth_header_value="x", dimensions={"moduleId": "m1"}
    )
    query = target.url.split("?", 1)[1]
    stack.api.state.add(transcript("t-helper", webhook_url=target.url, audio_duration=30))

    deliver(stack, webhook_event("t-helper", query))

    row = ledger_rows(stack)["t-helper"]
    assert (row["customer_id"], row["dimensions"]) == ("müller gmbh", {"moduleId": "m1"})


# -- case 3: a transcript deleted before the processor read it ------------------------------------


def test_case_3_deleted_transcript_is_billed_from_the_delivery_unpriced_with_reason(
    stack: Stack,
) -> None:
    # Given a completed transcript deleted at AssemblyAI right after completion
    stack.api.state.add(
        transcript(
            "t-deleted",
            webhook_url=DELETED,
            audio_url=DELETED,
            audio_duration=390,
            speech_model_used=None,
            speech_model=None,
        )
    )
    stack.api.state.transcripts["t-deleted"].pop("speech_model_used")

    # When its authenticated webhook arrives with ?customer_id=acme-corp
    response = deliver(stack, webhook_event("t-deleted", "customer_id=acme-corp"))

    # Then 390 s are billed to acme-corp, model unknown, with the reason on the row
    assert response["statusCode"] == 200
    row = ledger_rows(stack)["t-deleted"]
    assert (row["customer_id"], row["billable_seconds"], row["model"]) == (
        "acme-corp",
        Decimal(390),
        "unknown",
    )
    assert row["note"].startswith("transcript_deleted:")
    assert quarantined(stack) == {}  # not customer_mismatch
    # And the usage answer shows it unpriced, saying why
    [answer_row] = usage_answer(stack, "acme-corp")["rows"]
    assert answer_row["cost"] is None
    assert UNKNOWN_MODEL_REASON in answer_row["unpriced"]


def test_deleted_transcript_with_a_broken_delivery_is_held_with_its_own_reason(
    stack: Stack,
) -> None:
    stack.api.state.add(transcript("t-del-bad", webhook_url=DELETED, audio_duration=10))

    response = deliver(stack, webhook_event("t-del-bad", "customer_id=a%2Fb"))

    assert response["statusCode"] == 200
    assert ledger_rows(stack) == {}
    assert quarantined(stack)["t-del-bad"]["reason"] == "transcript_deleted"


# -- case 4: a custom domain with an API mapping path -------------------------------------------


def test_case_4_routing_uses_the_route_key_not_the_raw_path(stack: Stack) -> None:
    # Given the webhook reached through a custom domain whose API mapping adds /usage
    stack.api.state.add(transcript("t-domain", webhook_url=webhook_url("acme"), audio_duration=5))
    event = webhook_event(
        "t-domain",
        "customer_id=acme",
        routeKey="POST /webhooks/assemblyai",
        rawPath="/usage/webhooks/assemblyai",
    )

    # When it is delivered, Then it is accepted and billed
    assert deliver(stack, event)["statusCode"] == 200
    assert "t-domain" in ledger_rows(stack)

    # And streaming begin behind the same mapping works too
    body = json.dumps(
        {
            "session_id": "s-domain",
            "customer_id": "acme",
            "model": "universal-streaming-english",
            "began_at": "2026-11-03T14:00:00+00:00",
        }
    )
    begin = {
        "version": "2.0",
        "routeKey": "POST /streaming/sessions/begin",
        "rawPath": "/usage/streaming/sessions/begin",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            **signed_headers([REPORT_SECRET], "msg_begin", int(time.time()), body.encode()),
        },
        "requestContext": {"http": {"method": "POST", "path": "/usage/streaming/sessions/begin"}},
        "body": body,
        "isBase64Encoded": False,
    }
    answer = stack.invoke("StreamingReportFunction", begin)
    assert answer["statusCode"] == 200, answer


def test_an_unknown_route_key_is_404(stack: Stack) -> None:
    event = webhook_event("t-x", "customer_id=acme", routeKey="POST /webhooks/other")
    assert stack.invoke_intake(event)["statusCode"] == 404


# -- bad attribution: billed from the transcript's own webhook_url, or quarantined ----------------


def test_a_broken_delivery_query_is_billed_from_the_transcripts_webhook_url(stack: Stack) -> None:
    # Given a transcript whose own webhook_url is valid, delivered with a mangled query
    url = webhook_url("acme", plan="pro")
    stack.api.state.add(transcript("t-mangled", webhook_url=url, audio_duration=42))

    response = deliver(stack, webhook_event("t-mangled", "customer_id=acme%FF&plan=pro"))

    assert response["statusCode"] == 200
    row = ledger_rows(stack)["t-mangled"]
    assert (row["customer_id"], row["dimensions"], row["billable_seconds"]) == (
        "acme",
        {"plan": "pro"},
        Decimal(42),
    )


def test_an_attribution_broken_everywhere_is_quarantined_with_what_was_wrong(
    stack: Stack,
) -> None:
    query = "customer_id=%3DHYPERLINK(1)&plan=pro"
    stack.api.state.add(
        transcript("t-bad", webhook_url=f"{WEBHOOK_BASE_URL}?{query}", audio_duration=50)
    )

    response = deliver(stack, webhook_event("t-bad", query))

    assert response["statusCode"] == 200
    assert ledger_rows(stack) == {}
    item = quarantined(stack)["t-bad"]
    assert item["reason"] == "invalid_attribution"
    assert "invalid_customer_id" in item["detail"] and "webhook_url" in item["detail"]
    assert json.loads(item["message"])["query"] == query


def test_an_unknown_project_in_a_broken_query_is_quarantined_not_lost(stack: Stack) -> None:
    response = deliver(stack, webhook_event("t-proj", "customer_id=a%2Fb&project=nope"))

    assert response["statusCode"] == 200
    item = quarantined(stack)["t-proj"]
    assert item["reason"] == "invalid_attribution"
    assert "project 'nope' is not configured" in item["detail"]


# -- case 5: moving usage to the month of first receipt leaves no 0-count row ----------------------


def test_case_5_no_zero_row_is_left_in_the_later_month(stack: Stack) -> None:
    # Given one transcript received just before and just after midnight, the later copy first
    url = webhook_url("acme-corp")
    stack.api.state.add(transcript("t-midnight", webhook_url=url, audio_duration=90))
    for epoch_ms in (1_796_083_205_000, 1_796_083_198_500):  # 2026-12-01T00:00:05Z, then Nov
        event = webhook_event("t-midnight", "customer_id=acme-corp")
        event["requestContext"] = {**event["requestContext"], "timeEpoch": epoch_ms}
        assert deliver(stack, event)["statusCode"] == 200

    # Then November has it and December has no row at all: not in the table, not in answers
    months = sorted(a["month"] for a in stack.items("aggregate"))
    assert months == ["2026-11"]
    assert usage_answer(stack, "acme-corp", "2026-12")["rows"] == []
    ledger = DynamoUsageReader(boto3.client("dynamodb", region_name=REGION), stack.table)
    assert ledger.month_aggregates("2026-12") == []
    assert [a.usage_count for a in ledger.month_aggregates("2026-11")] == [1]


def test_a_query_string_in_the_webhook_url_is_what_the_helper_writes() -> None:
    # Guard for the tests above: the helper's query is plain urlencode of the same names
    target = webhook_target(WEBHOOK_BASE_URL, "acme corp", auth_header_value="x")
    assert target.url.endswith("?" + urlencode({"customer_id": "acme corp"}))


class Counted:
    def __init__(self) -> None:
        self.counted: dict[str, float] = {}

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.counted[name] = self.counted.get(name, 0) + value


def test_an_attribution_quarantine_is_counted_once_for_the_alarm(stack: Stack) -> None:
    # Given a delivery whose attribution is broken everywhere, delivered twice
    query = "customer_id=a%2Fb"
    stack.api.state.add(transcript("t-twice", webhook_url=f"{WEBHOOK_BASE_URL}?{query}"))
    stack.invoke_intake(webhook_event("t-twice", query))
    [body] = [m["Body"] for m in stack.queue_messages(stack.queue_url)]
    stack.use_function("UsageProcessorFunction")
    metrics = Counted()
    deps = ProcessorDeps(
        transcripts=transcript_source(processor_settings(), processor_settings().table_name),
        ledger=DynamoUsageLedger(boto3.client("dynamodb", region_name=REGION), stack.table),
        metrics=metrics,
        known_projects=frozenset({"default"}),
    )

    # When the processor handles it twice
    results = [process_usage_message(UsageMessage.from_json(body), deps) for _ in range(2)]

    # Then it is quarantined once and counted once in the metric AttributionQuarantineAlarm watches
    assert [r.reason for r in results] == ["invalid_attribution"] * 2
    assert metrics.counted["AttributionQuarantined"] == 1
    assert metrics.counted["UsageQuarantined"] == 1
    assert len(stack.items("quarantine")) == 1
