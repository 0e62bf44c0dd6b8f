"""The local stack's translations, without starting anything: HTTP request -> API Gateway v2
event, function result -> HTTP answer, and which SQS messages an event source deletes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from usage_meter_local import scenario
from usage_meter_local.function_pool import Invocation
from usage_meter_local.http_front import (
    RawRequest,
    Route,
    answer_from_result,
    build_event,
    match_route,
)
from usage_meter_local.sqs_poller import failed_message_ids, lambda_record
from usage_meter_local.template import http_routes, load_template

WEBHOOK = Route.of("POST", "/webhooks/assemblyai", "WebhookIntakeFunction")
NOW = datetime(2026, 11, 3, 14, 5, 9, 123000, tzinfo=UTC)


def _request(target: str, body: bytes = b"{}", **headers: str) -> RawRequest:
    return RawRequest(
        method="POST",
        target=target,
        headers=[("Host", "127.0.0.1:3000"), ("Content-Type", "application/json")]
        + [(k.replace("_", "-"), v) for k, v in headers.items()],
        body=body,
        source_ip="127.0.0.1",
    )


def test_the_webhook_route_is_in_the_template() -> None:
    routes = http_routes(load_template())
    assert routes[("POST", "/webhooks/assemblyai")] == "WebhookIntakeFunction"
    assert match_route([Route.of(m, p, f) for (m, p), f in routes.items()], "GET", "/x") is None


def test_event_keeps_the_raw_query_string_and_lower_cases_headers() -> None:
    # Given a webhook with a repeated parameter, an encoded value and mixed-case headers
    request = _request(
        "/webhooks/assemblyai?customer_id=acme%2Bco&plan=pro&plan=max",
        b'{"transcript_id": "t1", "status": "completed"}',
        X_Usage_Meter_Webhook_Secret="s3cret",
    )

    # When it becomes an API Gateway HTTP API event
    event = build_event(WEBHOOK, {}, request, NOW)

    # Then it has payload format 2.0's shape, with the query string exactly as received
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/assemblyai"
    assert event["rawPath"] == "/webhooks/assemblyai"
    assert event["rawQueryString"] == "customer_id=acme%2Bco&plan=pro&plan=max"
    assert event["queryStringParameters"] == {"customer_id": "acme+co", "plan": "pro,max"}
    assert event["headers"]["x-usage-meter-webhook-secret"] == "s3cret"
    assert event["headers"]["host"] == "127.0.0.1:3000"
    assert event["body"] == '{"transcript_id": "t1", "status": "completed"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/webhooks/assemblyai"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["timeEpoch"] == 1793714709123
    assert context["time"] == "03/Nov/2026:14:05:09 +0000"
    assert context["requestId"]


def test_a_body_that_is_not_utf8_arrives_base64_encoded() -> None:
    event = build_event(WEBHOOK, {}, _request("/webhooks/assemblyai", b"\xff\xfe{"), NOW)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe{"


def test_no_query_and_no_body_leave_those_keys_out() -> None:
    event = build_event(WEBHOOK, {}, _request("/webhooks/assemblyai", b""), NOW)
    assert "queryStringParameters" not in event
    assert "body" not in event
    assert event["rawQueryString"] == ""


def test_cookies_move_out_of_the_headers() -> None:
    event = build_event(WEBHOOK, {}, _request("/webhooks/assemblyai", Cookie="a=1; b=2"), NOW)
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]


def test_routes_match_method_and_path_parameters() -> None:
    routes = [
        WEBHOOK,
        Route.of("GET", "/usage/{customer_id}", "Query"),
        Route.of("GET", "/usage/current", "Current"),
    ]
    assert match_route(routes, "POST", "/webhooks/assemblyai") == (WEBHOOK, {})
    assert match_route(routes, "GET", "/webhooks/assemblyai") is None
    assert match_route(routes, "GET", "/usage/acme") == (routes[1], {"customer_id": "acme"})
    assert match_route(routes, "GET", "/usage/current") == (routes[2], {})


def test_path_parameters_arrive_percent_decoded_as_on_api_gateway() -> None:
    # HTTP APIs decode path parameters (AWS's own Lambda test tool translates them decoded:
    # aws/aws-lambda-dotnet#1901); /customers/user%40example.com/usage was a 400 locally.
    routes = [Route.of("GET", "/customers/{customer_id}/usage", "Query")]
    assert match_route(routes, "GET", "/customers/user%40example.com/usage") == (
        routes[0],
        {"customer_id": "user@example.com"},
    )
    assert match_route(routes, "GET", "/customers/a%2Fb/usage") == (
        routes[0],
        {"customer_id": "a/b"},  # an encoded slash stays inside its segment
    )


def test_a_structured_result_becomes_the_http_answer() -> None:
    answer = answer_from_result(
        {
            "statusCode": 401,
            "headers": {"Content-Type": "application/json"},
            "body": '{"error":"unauthorized"}',
            "cookies": ["k=v"],
        }
    )
    assert answer.status == 401
    assert answer.body == b'{"error":"unauthorized"}'
    assert ("set-cookie", "k=v") in answer.headers


def test_a_result_without_status_code_is_a_json_200() -> None:
    answer = answer_from_result({"ok": True})
    assert (answer.status, json.loads(answer.body)) == (200, {"ok": True})


def test_a_base64_result_body_is_decoded() -> None:
    body = base64.b64encode(b"\x00\x01").decode()
    answer = answer_from_result({"statusCode": 200, "body": body, "isBase64Encoded": True})
    assert answer.body == b"\x00\x01"


def _invocation(ok: bool = True, result: object = None) -> Invocation:
    error = None if ok else {"errorType": "Boom", "errorMessage": "boom"}
    return Invocation(request_id="r", ok=ok, result=result, error=error)


IDS = ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    ("invocation", "failed", "whole_batch"),
    [
        (_invocation(result={"batchItemFailures": []}), set(), False),
        (_invocation(result=None), set(), False),
        (_invocation(result={}), set(), False),
        (_invocation(result={"batchItemFailures": [{"itemIdentifier": "m2"}]}), {"m2"}, False),
        (_invocation(ok=False), set(IDS), True),
        (_invocation(result={"batchItemFailures": [{"itemIdentifier": "nope"}]}), set(IDS), True),
        (_invocation(result={"batchItemFailures": [{"itemIdentifier": ""}]}), set(IDS), True),
        (_invocation(result={"batchItemFailures": [{"id": "m1"}]}), set(IDS), True),
        (_invocation(result="done"), set(IDS), True),
    ],
)
def test_which_messages_stay_on_the_queue(
    invocation: Invocation, failed: set[str], whole_batch: bool
) -> None:
    # Lambda's rules for ReportBatchItemFailures: an invalid answer fails the whole batch.
    assert failed_message_ids(invocation, IDS, True) == (failed, whole_batch)


def test_without_report_batch_item_failures_a_success_deletes_everything() -> None:
    result = {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert failed_message_ids(_invocation(result=result), IDS, False) == (set(), False)


def test_an_sqs_message_becomes_a_lambda_record() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1793714709200"},
        "MessageAttributes": {"reason": {"DataType": "String", "StringValue": "x"}},
        "MD5OfMessageAttributes": "abc",
    }
    record = lambda_record(message, "arn:aws:sqs:eu-west-1:123456789012:UsageQueue", "eu-west-1")  # type: ignore[arg-type]
    assert record == {
        "messageId": "m1",
        "receiptHandle": "rh",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1793714709200"},
        "messageAttributes": {
            "reason": {
                "stringValue": "x",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "md5OfMessageAttributes": "abc",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:UsageQueue",
        "awsRegion": "eu-west-1",
    }


def test_a_result_api_gateway_cannot_read_is_a_500() -> None:
    assert answer_from_result({"statusCode": "abc"}).status == 500
    assert (
        answer_from_result({"statusCode": 200, "body": "%%", "isBase64Encoded": True}).status == 500
    )


def test_the_demo_reports_what_it_did_not_see() -> None:
    from usage_meter_local.demo_webhooks import unmet_expectations
    from usage_meter_local.report import Recorded

    nothing = Recorded(usage=[], ledger=[], quarantine=[], dead_letters=[])

    assert unmet_expectations(nothing, [], []) == []
    failures = unmet_expectations(nothing, scenario.EXPECTED_LEDGER, scenario.EXPECTED_QUARANTINE)
    assert [f.split(":")[0] for f in failures] == [
        "ledger rows",
        "usage per customer (aggregates)",
        "quarantine",
    ]


def test_the_banner_invokes_export_this_month_and_tells_aws_cli_v1_users() -> None:
    from datetime import UTC, datetime

    from usage_meter_local.cli import lambda_invoke_examples

    text = lambda_invoke_examples(
        "http://127.0.0.1:3000",
        "eu-west-1",
        ["MonthlyExportFunction", "ReconciliationFunction"],
        datetime(2026, 11, 29, tzinfo=UTC),
    )
    export, reconcile, note = text.splitlines()
    assert "--function-name MonthlyExportFunction" in export
    assert """--payload '{"month": "2026-11"}'""" in export
    assert "--payload '{}'" in reconcile
    assert "AWS CLI v2; with v1 leave out --cli-binary-format" in note
    assert "previous month" in note


def test_invoke_honours_log_dir_and_defaults_to_stderr() -> None:
    from pathlib import Path

    from usage_meter_local.cli import _parser

    args = _parser().parse_args(["invoke", "F", "e.json"])
    assert args.log_dir is None
    args = _parser().parse_args(["invoke", "F", "e.json", "--log-dir", "/tmp/logs"])
    assert args.log_dir == Path("/tmp/logs")


def test_a_taken_port_names_the_flag_and_the_variable_make_passes_through() -> None:
    # `make local` cannot pass --aws-port; the message names the variable that can.
    import socket

    from usage_meter_local.ports import PortUnavailable, bind

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(PortUnavailable) as refused:
            bind(port, "--aws-port", lambda: socket.create_server(("127.0.0.1", port)))
    assert str(refused.value) == (
        f"port {port} is in use, choose another with --aws-port, "
        "or USAGE_METER_AWS_PORT=N with make (0 = any free port)"
    )
