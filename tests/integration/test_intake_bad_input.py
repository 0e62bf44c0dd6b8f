"""Malformed webhook deliveries against the real intake handler in moto.

Every unusable request (bad or missing auth, a body that is not JSON or names no transcript id, an
oversized body) must get the exact 4xx it deserves (AssemblyAI stops retrying on any 4xx), a JSON
error code, and must leave no trace. An authenticated delivery that names a transcript is never
refused (issue 9): a broken attribution or an unknown status is queued with what was wrong, for the
processor to bill from the transcript's own webhook_url or to quarantine. Failures of our own (AWS
unavailable) must be 5xx.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest

from conftest import (
    AUTH_HEADER,
    PREVIOUS_WEBHOOK_SECRET,
    REGION,
    WEBHOOK_SECRET,
    FakeLambdaContext,
    Stack,
    load_event,
)

Event = dict[str, Any]
Change = Callable[[Event], None]

RECORDED = load_event("apigw/webhook_completed.json")
TRANSCRIPT_ID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01"
UNAUTHORIZED = {"error": "unauthorized", "message": "unauthorized"}


# -- building events from the recorded one ----------------------------------------------------


def modified(*changes: Change) -> Event:
    """A deep copy of the recorded event with ``changes`` applied in order."""
    event = copy.deepcopy(RECORDED)
    for change in changes:
        change(event)
    return event


def query(raw: str) -> Change:
    """Replace the raw query string (and API Gateway's parsed view of it, as it would send)."""

    def apply(event: Event) -> None:
        event["rawQueryString"] = raw
        parsed: dict[str, str] = {}
        for name, value in parse_qsl(raw, keep_blank_values=True, errors="replace"):
            parsed[name] = f"{parsed[name]},{value}" if name in parsed else value
        if parsed:
            event["queryStringParameters"] = parsed
        else:
            event.pop("queryStringParameters", None)

    return apply


def body(text: str | None) -> Change:
    """A plain-text body (``None``: API Gateway sends no body at all)."""

    def apply(event: Event) -> None:
        event["isBase64Encoded"] = False
        if text is None:
            event.pop("body", None)
            event["headers"].pop("content-length", None)
        else:
            event["body"] = text
            size = len(text.encode("utf-8", errors="surrogatepass"))
            event["headers"]["content-length"] = str(size)

    return apply


def json_body(document: object) -> Change:
    return body(json.dumps(document, ensure_ascii=False))


def base64_body(raw: bytes) -> Change:
    """A body API Gateway delivered base64-encoded."""
    return raw_base64_body(base64.b64encode(raw).decode("ascii"), len(raw))


def raw_base64_body(encoded: str, size: int | None = None) -> Change:
    def apply(event: Event) -> None:
        event["isBase64Encoded"] = True
        event["body"] = encoded
        event["headers"]["content-length"] = str(size if size is not None else len(encoded))

    return apply


def header(name: str, value: str) -> Change:
    def apply(event: Event) -> None:
        event["headers"][name] = value

    return apply


def without_header(name: str) -> Change:
    def apply(event: Event) -> None:
        event["headers"].pop(name, None)

    return apply


def auth(value: str) -> Change:
    return header(AUTH_HEADER, value)


NO_AUTH = without_header(AUTH_HEADER)


_MISSING = object()  # marks a field to leave out of notification()


def notification(**overrides: object) -> dict[str, object]:
    document: dict[str, object] = {"transcript_id": TRANSCRIPT_ID, "status": "completed"}
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not _MISSING}


def dimensions(count: int) -> str:
    return "&".join(f"dim{i}=v{i}" for i in range(count))


# The billing dimensions these cases use: only allow-listed parameters are checked as dimensions.
ALLOWED_DIMENSIONS = ",".join(
    ["plan", "Plan", "tier", "region", "d" * 40, *(f"dim{i}" for i in range(9))]
)


@pytest.fixture(autouse=True)
def _billing_dimensions(stack: Stack) -> None:
    stack.overrides["BILLING_DIMENSIONS"] = ALLOWED_DIMENSIONS


# -- inspecting outcomes ----------------------------------------------------------------------


def response_json(response: dict[str, Any]) -> dict[str, Any]:
    assert response["headers"]["Content-Type"].startswith("application/json"), response
    document = json.loads(response["body"])
    assert isinstance(document, dict), response
    return document


def all_table_items(stack: Stack) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.table)
    return list(table.scan()["Items"])  # tests only: production code never scans


def assert_nothing_written(stack: Stack) -> None:
    assert stack.queue_messages(stack.queue_url) == []
    assert stack.queue_messages(stack.dlq_url) == []
    assert all_table_items(stack) == []


# -- the malformed requests -------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    event: Event
    status: int
    error: str


def case(case_id: str, status: int, error: str, *changes: Change) -> Any:
    return pytest.param(Bad(modified(*changes), status, error), id=case_id)


def unauthorized(case_id: str, *changes: Change) -> Any:
    return case(case_id, 401, "unauthorized", *changes)


def bad_query(case_id: str, raw: str, error: str) -> Any:
    """A query string that breaks an attribution rule: stored with the problem, never 4xx."""
    return pytest.param(raw, error, id=case_id)


def bad_body(case_id: str, error: str, change: Change) -> Any:
    return case(case_id, 400, error, change)


LONG_ID = "a" * 129
VALID_QUERY = "customer_id=acme-corp&plan=pro"

AUTH_CASES = [
    unauthorized("auth-header-missing", NO_AUTH),
    unauthorized("auth-wrong-value", auth("not-the-secret")),
    unauthorized("auth-empty-value", auth("")),
    unauthorized("auth-trailing-space", auth(WEBHOOK_SECRET + " ")),
    unauthorized("auth-leading-space", auth(" " + WEBHOOK_SECRET)),
    unauthorized("auth-prefix-of-secret", auth(WEBHOOK_SECRET[:-1])),
    unauthorized("auth-secret-plus-suffix", auth(WEBHOOK_SECRET + "x")),
    unauthorized("auth-upper-case-secret", auth(WEBHOOK_SECRET.upper())),
    unauthorized("auth-bearer-prefix", auth(f"Bearer {WEBHOOK_SECRET}")),
    unauthorized(
        "auth-current-and-previous-joined", auth(f"{WEBHOOK_SECRET},{PREVIOUS_WEBHOOK_SECRET}")
    ),
    unauthorized("auth-secret-in-other-header", NO_AUTH, header("authorization", WEBHOOK_SECRET)),
    unauthorized(
        "auth-secret-in-similar-header", NO_AUTH, header("x-usage-meter-webhook", WEBHOOK_SECRET)
    ),
    unauthorized(
        "auth-secret-in-query-string",
        NO_AUTH,
        query(f"{VALID_QUERY}&{AUTH_HEADER}={WEBHOOK_SECRET}"),
    ),
    # Authentication comes first: an anonymous caller learns nothing about validation.
    unauthorized("auth-missing-with-bad-query", NO_AUTH, query("customer_id=..%2Fx")),
    unauthorized("auth-missing-with-bad-body", NO_AUTH, body("not json")),
    unauthorized("auth-missing-with-oversized-body", NO_AUTH, body("x" * 10_000)),
]

QUERY_CASES = [
    bad_query("query-customer-id-missing", "plan=pro", "missing_customer_id"),
    bad_query("query-empty", "", "missing_customer_id"),
    bad_query("query-customer-id-wrong-case-name", "Customer_ID=acme-corp", "missing_customer_id"),
    bad_query("query-customer-id-empty", "customer_id=&plan=pro", "invalid_customer_id"),
    bad_query("query-customer-id-129-chars", f"customer_id={LONG_ID}", "invalid_customer_id"),
    bad_query("query-customer-id-slash-encoded", "customer_id=acme%2Fcorp", "invalid_customer_id"),
    bad_query("query-customer-id-slash-raw", "customer_id=acme/corp", "invalid_customer_id"),
    bad_query("query-customer-id-backslash", "customer_id=acme%5Ccorp", "invalid_customer_id"),
    bad_query("query-customer-id-dotdot", "customer_id=..", "invalid_customer_id"),
    bad_query("query-customer-id-dot", "customer_id=.", "invalid_customer_id"),
    bad_query(
        "query-customer-id-path-traversal", "customer_id=..%2F..%2Fetc", "invalid_customer_id"
    ),
    bad_query("query-customer-id-nul", "customer_id=acme%00corp", "invalid_customer_id"),
    bad_query("query-customer-id-newline", "customer_id=acme%0A", "invalid_customer_id"),
    bad_query("query-customer-id-crlf", "customer_id=acme%0D%0Aevil", "invalid_customer_id"),
    bad_query("query-customer-id-hash-encoded", "customer_id=acme%23corp", "invalid_customer_id"),
    bad_query("query-customer-id-hash-raw", "customer_id=acme#corp", "invalid_customer_id"),
    bad_query("query-customer-id-formula-equals", "customer_id==SUM(1)", "invalid_customer_id"),
    bad_query("query-customer-id-formula-plus", "customer_id=%2B1", "invalid_customer_id"),
    bad_query("query-customer-id-formula-minus", "customer_id=-1", "invalid_customer_id"),
    bad_query("query-customer-id-formula-at", "customer_id=%40acme", "invalid_customer_id"),
    bad_query(
        "query-customer-id-twice", "customer_id=acme&customer_id=evil", "duplicate_parameter"
    ),
    bad_query(
        "query-dimension-twice", "customer_id=acme&plan=pro&plan=free", "duplicate_parameter"
    ),
    bad_query("query-project-upper-case", "customer_id=acme&project=Prod", "invalid_project"),
    bad_query("query-project-65-chars", f"customer_id=acme&project={'p' * 65}", "invalid_project"),
    bad_query("query-project-traversal", "customer_id=acme&project=..%2Fx", "invalid_project"),
    bad_query("query-project-empty", "customer_id=acme&project=", "invalid_project"),
    bad_query("query-9-dimensions", f"customer_id=acme&{dimensions(9)}", "too_many_dimensions"),
    # Names outside the BillingDimensions allow-list (Plan, 1plan, plan-tier, ...) are the
    # application's own parameters: accepted and passed on, never billing dimensions
    # (tests/integration/test_notification_events.py).
    bad_query(
        "query-dimension-value-129-chars",
        f"customer_id=acme&plan={'v' * 129}",
        "invalid_dimension_value",
    ),
    bad_query(
        "query-dimension-value-nul", "customer_id=acme&plan=pro%00", "invalid_dimension_value"
    ),
    bad_query(
        "query-dimension-value-newline", "customer_id=acme&plan=a%0Ab", "invalid_dimension_value"
    ),
    bad_query(
        "query-dimension-value-c1-control",
        "customer_id=acme&plan=a%C2%85",
        "invalid_dimension_value",
    ),
    bad_query("query-dimension-value-empty", "customer_id=acme&plan=", "invalid_dimension_value"),
    bad_query("query-pct-ff-in-customer-id", "customer_id=acme%FF", "invalid_query"),
    bad_query("query-pct-ff-in-dimension", "customer_id=acme&plan=%FF", "invalid_query"),
    bad_query("query-overlong-utf8", "customer_id=acme&plan=%C0%AF", "invalid_query"),
    bad_query("query-utf8-surrogate", "customer_id=acme&plan=%ED%A0%80", "invalid_query"),
    bad_query("query-parameter-without-equals", "customer_id", "invalid_customer_id"),
    bad_query(
        "query-2049-chars",
        f"customer_id=acme&plan={'v' * (2049 - len('customer_id=acme&plan='))}",
        "query_too_long",
    ),
]

NOW_VALID_QUERIES = [
    pytest.param("customer_id=acme+corp", "acme corp", {}, id="customer-id-space-plus"),
    pytest.param("customer_id=acme%20corp", "acme corp", {}, id="customer-id-space-pct20"),
    pytest.param("customer_id=acm%C3%A9", "acmé", {}, id="customer-id-latin-accent"),
    pytest.param("customer_id=acme%CC%81", "acmé", {}, id="customer-id-nfd-accent-nfc"),
    pytest.param("customer_id=%D0%B0cme", "\u0430cme", {}, id="customer-id-cyrillic-a"),
    pytest.param("customer_id=%EF%BC%91", "\uff11", {}, id="customer-id-fullwidth-digit"),
    pytest.param("customer_id=acme&Plan=pro", "acme", {"Plan": "pro"}, id="dimension-name-upper"),
]

BODY_CASES = [
    bad_body("body-empty-string", "empty_body", body("")),
    bad_body("body-absent", "empty_body", body(None)),
    bad_body("body-not-json", "invalid_json", body("transcript completed")),
    bad_body("body-truncated-json", "invalid_json", body('{"transcript_id": "abc", "status"')),
    bad_body("body-json-array", "invalid_body", json_body([notification()])),
    bad_body("body-json-string", "invalid_body", json_body("completed")),
    bad_body("body-json-null", "invalid_body", body("null")),
    bad_body("body-json-number", "invalid_body", body("42")),
    bad_body("body-empty-object", "invalid_body", json_body({})),
    bad_body(
        "body-transcript-id-missing",
        "invalid_body",
        json_body(notification(transcript_id=_MISSING)),
    ),
    bad_body(
        "body-transcript-id-number", "invalid_body", json_body(notification(transcript_id=123))
    ),
    bad_body(
        "body-transcript-id-null", "invalid_body", json_body(notification(transcript_id=None))
    ),
    bad_body("body-transcript-id-empty", "invalid_body", json_body(notification(transcript_id=""))),
    bad_body(
        "body-transcript-id-slash", "invalid_body", json_body(notification(transcript_id="a/b"))
    ),
    bad_body(
        "body-transcript-id-traversal",
        "invalid_body",
        json_body(notification(transcript_id="../x")),
    ),
    bad_body(
        "body-transcript-id-hash", "invalid_body", json_body(notification(transcript_id="a#b"))
    ),
    bad_body(
        "body-transcript-id-129-chars",
        "invalid_body",
        json_body(notification(transcript_id=LONG_ID)),
    ),
    bad_body(
        "body-base64-invalid-utf8",
        "invalid_json",
        base64_body(b'{"transcript_id": "\xff\xfe", "status": "completed"}'),
    ),
    bad_body(
        "body-lone-surrogate",
        "invalid_json",
        body('{"transcript_id": "\ud800", "status": "completed"}'),
    ),
    bad_body("body-base64-invalid-alphabet", "invalid_body", raw_base64_body("not base64 at all!")),
    bad_body("body-base64-bad-padding", "invalid_body", raw_base64_body("eyJhIjoxfQ")),
    bad_body(
        "body-base64-flag-on-plain-json",
        "invalid_body",
        raw_base64_body(json.dumps(notification())),
    ),
]


def padded_body(size: int) -> str:
    """A valid notification padded with spaces to exactly ``size`` bytes."""
    text = json.dumps(notification())
    return text[:-1] + " " * (size - len(text)) + "}"


SIZE_CASES = [
    case("size-plain-4097-bytes", 413, "body_too_large", body(padded_body(4097))),
    case("size-plain-100-kib", 413, "body_too_large", body("x" * 100_000)),
    case(
        "size-plain-multibyte-chars-over-limit",
        413,
        "body_too_large",
        # 2100 characters but 4200 bytes: the limit is in bytes, not characters.
        json_body({**notification(), "note": "é" * 2100}),
    ),
    case("size-base64-4097-bytes", 413, "body_too_large", base64_body(padded_body(4097).encode())),
    case("size-base64-100-kib", 413, "body_too_large", base64_body(b"x" * 100_000)),
    case("size-base64-huge-invalid", 413, "body_too_large", raw_base64_body("!" * 10_000)),
]

BAD_REQUESTS = AUTH_CASES + BODY_CASES + SIZE_CASES


@pytest.mark.parametrize("bad", BAD_REQUESTS)
def test_bad_request_is_rejected_and_changes_nothing(stack: Stack, bad: Bad) -> None:
    response = stack.invoke_intake(bad.event)

    assert response["statusCode"] == bad.status, response
    document = response_json(response)
    assert document["error"] == bad.error, document
    assert isinstance(document.get("message"), str) and document["message"]
    if bad.status == 401:
        assert document == UNAUTHORIZED
    assert_nothing_written(stack)


@pytest.mark.parametrize(("raw", "code"), QUERY_CASES)
def test_authenticated_delivery_with_a_bad_attribution_is_stored_not_refused(
    stack: Stack, raw: str, code: str
) -> None:
    # Given an authenticated delivery naming a transcript, with a query that breaks a rule
    response = stack.invoke_intake(modified(query(raw)))

    # Then it is answered 200 (AssemblyAI would stop retrying on a 4xx) and queued with the
    # problem and the raw query, for the processor to resolve or quarantine
    assert response["statusCode"] == 200, response
    assert response_json(response) == {"status": "accepted", "transcript_id": TRANSCRIPT_ID}
    [message] = queued_bodies(stack)
    assert "attribution" not in message
    assert message["attribution_problem"].startswith(f"{code}: "), message
    assert message["query"] == raw[:4096]
    assert all_table_items(stack) == []


@pytest.mark.parametrize(("raw", "customer_id", "dims"), NOW_VALID_QUERIES)
def test_real_world_attributions_are_queued_as_valid(
    stack: Stack, raw: str, customer_id: str, dims: dict[str, str]
) -> None:
    response = stack.invoke_intake(modified(query(raw)))

    assert response["statusCode"] == 200, response
    [message] = queued_bodies(stack)
    assert message["attribution"] == {
        "customer_id": customer_id,
        "project": "default",
        "dimensions": dims,
    }


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(_MISSING, id="missing"),
        pytest.param("queued", id="queued"),
        pytest.param("processing", id="processing"),
        pytest.param(None, id="null"),
        pytest.param("COMPLETED", id="upper-case"),
        pytest.param(1, id="number"),
        pytest.param([], id="list"),
        pytest.param({}, id="object"),
    ],
)
def test_a_delivery_naming_a_transcript_with_an_odd_status_is_stored(
    stack: Stack, status: object
) -> None:
    # The processor reads the transcript's own status, so an odd one is no reason to refuse
    response = stack.invoke_intake(modified(json_body(notification(status=status))))

    assert response["statusCode"] == 200, response
    [message] = queued_bodies(stack)
    assert message["webhook_status"] == "unknown"


def test_at_least_35_distinct_bad_requests() -> None:
    ids = [p.id for p in BAD_REQUESTS]
    assert len(ids) == len(set(ids)) >= 35
    events = [json.dumps(p.values[0].event, sort_keys=True) for p in BAD_REQUESTS]
    assert len(set(events)) == len(events)


def test_recorded_event_is_valid_as_is() -> None:
    # Guard for the helpers: the baseline itself must be the accepted request.
    assert RECORDED["rawQueryString"] == VALID_QUERY
    assert RECORDED["headers"][AUTH_HEADER] == WEBHOOK_SECRET


# -- positive controls ------------------------------------------------------------------------


def queued_bodies(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in stack.queue_messages(stack.queue_url)]


def test_recorded_event_is_accepted_and_queued(stack: Stack) -> None:
    response = stack.invoke_intake(modified())

    assert response["statusCode"] == 200, response
    assert response_json(response) == {"status": "accepted", "transcript_id": TRANSCRIPT_ID}
    [message] = queued_bodies(stack)
    assert message["transcript_id"] == TRANSCRIPT_ID
    assert message["webhook_status"] == "completed"
    assert message["attribution"] == {
        "customer_id": "acme-corp",
        "project": "default",
        "dimensions": {"plan": "pro"},
    }
    received_at = datetime.fromisoformat(message["received_at"])
    assert received_at.utcoffset() is not None and received_at.utcoffset().total_seconds() == 0
    assert received_at == datetime(2026, 11, 3, 14, 5, 9, 123_000, tzinfo=UTC)
    assert message["received_at"].startswith("2026-11-03T14:05:09.123")
    assert all_table_items(stack) == []  # the intake only queues; the processor writes


def test_previous_rotation_secret_is_accepted(stack: Stack) -> None:
    response = stack.invoke_intake(modified(auth(PREVIOUS_WEBHOOK_SECRET)))

    assert response["statusCode"] == 200, response
    assert len(queued_bodies(stack)) == 1


def test_header_name_is_case_insensitive(stack: Stack) -> None:
    response = stack.invoke_intake(
        modified(NO_AUTH, header("X-Usage-Meter-Webhook-Secret", WEBHOOK_SECRET))
    )

    assert response["statusCode"] == 200, response


def test_redacted_audio_notification_is_acknowledged_not_queued(stack: Stack) -> None:
    event = modified(
        json_body({"status": "redacted_audio_ready", "redacted_audio_url": "https://x.test/a.wav"})
    )

    response = stack.invoke_intake(event)

    assert response["statusCode"] == 200, response
    assert response_json(response)["status"] == "ignored"
    assert_nothing_written(stack)


def test_error_status_is_queued(stack: Stack) -> None:
    response = stack.invoke_intake(modified(json_body(notification(status="error"))))

    assert response["statusCode"] == 200, response
    [message] = queued_bodies(stack)
    assert message["webhook_status"] == "error"


def test_unknown_body_fields_are_tolerated(stack: Stack) -> None:
    extra = notification(language_code="en", audio_duration=12.5, nested={"a": [1, 2]})

    response = stack.invoke_intake(modified(json_body(extra)))

    assert response["statusCode"] == 200, response
    assert len(queued_bodies(stack)) == 1


def test_base64_encoded_body_is_accepted(stack: Stack) -> None:
    response = stack.invoke_intake(modified(base64_body(json.dumps(notification()).encode())))

    assert response["statusCode"] == 200, response
    [message] = queued_bodies(stack)
    assert message["transcript_id"] == TRANSCRIPT_ID


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(body(padded_body(4096)), id="plain-exactly-4096-bytes"),
        pytest.param(base64_body(padded_body(4096).encode()), id="base64-exactly-4096-bytes"),
        pytest.param(query(f"customer_id={'a' * 128}"), id="customer-id-128-chars"),
        pytest.param(query(f"customer_id=acme&{dimensions(8)}"), id="eight-dimensions"),
        pytest.param(
            query(f"customer_id=acme&project={'p' * 64}&{'d' * 40}={'v' * 128}"),
            id="longest-project-dimension-name-and-value",
        ),
        pytest.param(query("customer_id=Acme.Corp_1:eu@x-y"), id="customer-id-all-allowed-chars"),
    ],
)
def test_requests_at_the_limits_are_accepted(stack: Stack, change: Change) -> None:
    response = stack.invoke_intake(modified(change))

    assert response["statusCode"] == 200, response
    assert len(queued_bodies(stack)) == 1


def test_query_decoding_reaches_the_message(stack: Stack) -> None:
    event = modified(query("customer_id=acme-corp&project=eu&tier=gold+plus&region=eu%20west"))

    response = stack.invoke_intake(event)

    assert response["statusCode"] == 200, response
    [message] = queued_bodies(stack)
    assert message["attribution"] == {
        "customer_id": "acme-corp",
        "project": "eu",
        "dimensions": {"region": "eu west", "tier": "gold plus"},
    }


def _invoke_with_queue_url(stack: Stack, url: str, event: Event) -> dict[str, Any]:
    from usage_meter.handlers import webhook_intake

    stack.use_function("WebhookIntakeFunction")  # environment from template.yaml, caches reset
    stack.monkeypatch.setenv("USAGE_QUEUE_URL", url)
    return webhook_intake.handler(event, FakeLambdaContext())  # type: ignore[arg-type]


def test_enqueue_failure_is_503_never_4xx(stack: Stack) -> None:
    missing = stack.queue_url.rsplit("/", 1)[0] + "/no-such-queue"

    response = _invoke_with_queue_url(stack, missing, modified())

    assert response["statusCode"] == 503, response
    assert response_json(response) == {
        "error": "unavailable",
        "message": "temporarily unavailable, retry",
    }
    assert_nothing_written(stack)


def test_deleted_queue_is_503(stack: Stack) -> None:
    boto3.client("sqs", region_name=REGION).delete_queue(QueueUrl=stack.queue_url)

    response = stack.invoke_intake(modified())

    assert response["statusCode"] == 503, response
    assert response_json(response)["error"] == "unavailable"


def test_unreadable_webhook_secret_is_503_not_401(stack: Stack) -> None:
    # A Secrets Manager failure is ours, not the caller's: it must not stop AssemblyAI's retries.
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId="usage-meter/webhook-auth", ForceDeleteWithoutRecovery=True
    )

    response = stack.invoke_intake(modified())

    assert response["statusCode"] == 503, response
    assert response_json(response)["error"] == "unavailable"
    assert_nothing_written(stack)
