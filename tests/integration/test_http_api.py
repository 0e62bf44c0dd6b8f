"""The HTTP functions on Powertools' resolver (handlers/http_api.py): what API Gateway routed
is what answers, bad input is a 4xx with an error code and never a 5xx, a signature is checked
before the body is read, and numbers stay exact. Through the deployed shape (moto, template)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from tests.integration.test_streaming import WRONG_SECRET, report_event, termination_body

from conftest import Stack

IAM = {"authorizer": {"iam": {"userArn": "arn:aws:iam::123456789012:user/ops"}}}


def api(route: str, params: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    """A hand-made HTTP API event as API Gateway sends it (routeKey, pathParameters...)."""
    return {"routeKey": route, "pathParameters": params or {}, "requestContext": IAM, **fields}


def answer_of(response: dict[str, Any]) -> tuple[int, str | None]:
    body = json.loads(response["body"])
    return response["statusCode"], body.get("error") if isinstance(body, dict) else None


def test_a_report_with_a_bad_signature_is_401_before_its_body_is_read(stack: Stack) -> None:
    # Given a body the models would refuse, signed with the wrong secret
    event = report_event("/streaming/sessions/termination", "not json", secret=WRONG_SECRET)
    # Then the answer is 401, not a 400 that would describe the schema to an unsigned caller
    assert answer_of(stack.invoke("StreamingReportFunction", event)) == (401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("not json", "application/json"), ("[]", "application/json"), ("{}", None)],
)
def test_a_signed_report_the_models_refuse_is_400_invalid_report(
    stack: Stack, body: str, content_type: str | None
) -> None:
    event = report_event("/streaming/sessions/termination", body)
    if content_type is None:
        del event["headers"]["content-type"]
    response = stack.invoke("StreamingReportFunction", event)
    assert answer_of(response) == (400, "invalid_report")
    assert json.loads(response["body"])["message"]  # says what was wrong


def test_fractional_seconds_are_billed_exactly(stack: Stack) -> None:
    # Given a termination with seconds no binary float holds exactly
    body = termination_body(session_duration_seconds=600.123, audio_duration_seconds=598.001)
    response = stack.invoke(
        "StreamingReportFunction", report_event("/streaming/sessions/termination", body)
    )
    assert response["statusCode"] == 200, response
    # Then the ledger holds the decimal as sent (JSON numbers are parsed as Decimal)
    [row] = stack.items("ledger")
    assert row["billable_seconds"] == Decimal("600.123")


def test_an_unknown_route_is_404_on_every_http_function(stack: Stack) -> None:
    for function, route in [
        ("StreamingReportFunction", "POST /streaming/sessions/other"),
        ("UsageQueryFunction", "DELETE /customers/{customer_id}/usage"),
        ("EntitlementFunction", "POST /customers/{customer_id}/entitlement"),
        ("AllowanceFunction", "DELETE /customers/{customer_id}/allowance"),
    ]:
        response = stack.invoke(function, api(route, {"customer_id": "acme"}, body="{}"))
        assert answer_of(response) == (404, "not_found"), function


def test_a_custom_domain_mapping_routes_the_usage_api_by_route_key(stack: Stack) -> None:
    event = api(
        "GET /customers/{customer_id}/usage",
        {"customer_id": "acme"},
        rawPath="/billing/customers/acme/usage",
        queryStringParameters={"month": "2026-11"},
    )
    response = stack.invoke("UsageQueryFunction", event)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["customer_id"] == "acme"


@pytest.mark.parametrize("customer", ["user%40example.com", "user@example.com"])
def test_a_url_encoded_path_parameter_is_decoded_once(stack: Stack, customer: str) -> None:
    for function, route in [
        ("UsageQueryFunction", "GET /customers/{customer_id}/usage"),
        ("UsageQueryFunction", "GET /customers/{customer_id}/line-items"),
        ("EntitlementFunction", "GET /customers/{customer_id}/entitlement"),
    ]:
        query = {"product": "async"} if function == "EntitlementFunction" else {}
        event = api(route, {"customer_id": customer}, queryStringParameters=query)
        response = stack.invoke(function, event)
        assert response["statusCode"] == 200, (route, response)
        assert json.loads(response["body"])["customer_id"] == "user@example.com"


@pytest.mark.parametrize(
    ("function", "route", "query"),
    [
        ("UsageQueryFunction", "GET /customers/{customer_id}/line-items", {"page": "2"}),
        ("UsageQueryFunction", "GET /customers", {"Month": "2026-11"}),
        ("UsageQueryFunction", "GET /customers/{customer_id}/usage", {"limit": "5"}),
        ("EntitlementFunction", "GET /customers/{customer_id}/entitlement", {"prodcut": "async"}),
    ],
)
def test_an_unknown_query_parameter_is_refused_not_ignored(
    stack: Stack, function: str, route: str, query: dict[str, str]
) -> None:
    event = api(route, {"customer_id": "acme"}, queryStringParameters=query)
    response = stack.invoke(function, event)
    assert answer_of(response) == (400, "unknown_parameter")
    assert repr(next(iter(query))) in json.loads(response["body"])["message"]


@pytest.mark.parametrize(
    "query",
    [
        {"month": "0000-01"},
        {"month": "2026-11", "limit": "-1"},
        {"month": "2026-11", "limit": "1e3"},
        {"month": "2026-11", "cursor": "%%%"},
        {"month": "\x00"},
    ],
)
def test_bad_paging_input_is_a_4xx_never_a_5xx(stack: Stack, query: dict[str, str]) -> None:
    for route in ("GET /customers/{customer_id}/line-items", "GET /customers"):
        event = api(route, {"customer_id": "acme"}, queryStringParameters=query)
        status, code = answer_of(stack.invoke("UsageQueryFunction", event))
        assert status == 400 and code, (route, query)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"limits": [{"unit": "seconds", "amount": "-5"}], "reason": "r"}, "invalid_limits"),
        ({"reason": "no limits"}, "invalid_request"),
        ("not json", "invalid_request"),
        ({"limits": [{"unit": "seconds", "amount": "5"}], "reason": ""}, "invalid_request"),
        ({"limits": [{"unit": "seconds", "amount": "5"}], "reason": "  "}, "invalid_request"),
    ],
)
def test_an_allowance_change_the_models_refuse_is_400(stack: Stack, body: Any, code: str) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    event = api("PUT /customers/{customer_id}/allowance", {"customer_id": "acme"}, body=raw)
    assert answer_of(stack.invoke("AllowanceFunction", event)) == (400, code)
    assert stack.items("audit") == []  # nothing changed


def test_a_plan_that_is_not_a_string_is_400(stack: Stack) -> None:
    event = api(
        "PUT /customers/{customer_id}/plan",
        {"customer_id": "acme"},
        body=json.dumps({"plan": 5, "reason": "r"}),
    )
    assert answer_of(stack.invoke("AllowanceFunction", event)) == (400, "invalid_request")


def test_an_allowance_change_for_a_blank_plan_or_customer_is_400_not_409(stack: Stack) -> None:
    """A malformed name is the caller's to fix (400 invalid_request); 409 ``refused`` is for a
    change refused as things stand (a plan with no allowance yet, a racing change)."""
    body = json.dumps({"limits": [{"unit": "seconds", "amount": "5"}], "reason": "r"})
    plan = api("PUT /plans/{plan}/allowance", {"plan": "%20"}, body=body)
    assert answer_of(stack.invoke("AllowanceFunction", plan)) == (400, "invalid_request")
    customer = api("PUT /customers/{customer_id}/plan", {"customer_id": "%20"}, body=body)
    customer["body"] = json.dumps({"plan": None, "reason": "r"})
    assert answer_of(stack.invoke("AllowanceFunction", customer)) == (400, "invalid_request")
    missing = api("PUT /customers/{customer_id}/plan", {"customer_id": "acme"})
    missing["body"] = json.dumps({"plan": "no-such-plan", "reason": "r"})
    assert answer_of(stack.invoke("AllowanceFunction", missing)) == (409, "refused")
    assert stack.items("audit") == []


def test_an_allowance_body_over_the_limit_is_413_like_the_report_routes(stack: Stack) -> None:
    event = api(
        "PUT /customers/{customer_id}/allowance", {"customer_id": "acme"}, body="x" * 20_000
    )
    response = stack.invoke("AllowanceFunction", event)
    assert answer_of(response) == (413, "body_too_large")
    assert response["headers"]["Content-Type"] == "application/json"
    assert stack.items("audit") == []


def _content_type(response: dict[str, Any]) -> str:
    headers = {k.lower(): v for k, v in response["headers"].items()}
    return str(headers["content-type"])


def test_every_answer_path_says_application_json(stack: Stack) -> None:
    """The refusals answered before the route runs (401 signature, 413 size) and those of the
    resolver (200, 400, 404) all carry ``Content-Type: application/json``, not a joined string."""
    termination = termination_body()
    answers = {
        "401": stack.invoke(
            "StreamingReportFunction",
            report_event("/streaming/sessions/termination", termination, secret=WRONG_SECRET),
        ),
        "413": stack.invoke(
            "StreamingReportFunction",
            report_event("/streaming/sessions/termination", "x" * 20_000),
        ),
        "400": stack.invoke(
            "StreamingReportFunction", report_event("/streaming/sessions/termination", "[]")
        ),
        "200": stack.invoke(
            "StreamingReportFunction", report_event("/streaming/sessions/termination", termination)
        ),
        "404": stack.invoke("UsageQueryFunction", api("GET /nowhere")),
        "400 usage": stack.invoke(
            "UsageQueryFunction",
            api(
                "GET /customers/{customer_id}/usage",
                {"customer_id": "acme"},
                queryStringParameters={"month": ""},
            ),
        ),
    }
    for name, response in answers.items():
        assert str(response["statusCode"]) == name.split()[0], (name, response)
        assert _content_type(response) == "application/json", (name, response["headers"])


def usage(query: dict[str, str], route: str = "GET /customers/{customer_id}/usage") -> Any:
    return api(route, {"customer_id": "acme-corp"}, queryStringParameters=query)


@pytest.mark.parametrize(
    "query",
    [
        {"from": "9999-12-31", "to": "9999-12-31"},
        {"from": "0001-01-01", "to": "0001-01-02"},
        {"from": "1999-12-31", "to": "2000-01-01"},
        {"from": "2999-12-31", "to": "3000-01-01"},
    ],
)
def test_a_date_range_outside_the_billing_years_is_400_invalid_range(
    stack: Stack, query: dict[str, str]
) -> None:
    """Dates follow the month rule (models/months.py: years 2000..2999); 9999-12-31 used to
    overflow into a 500 when the day after ``to`` was built."""
    assert answer_of(stack.invoke("UsageQueryFunction", usage(query))) == (400, "invalid_range")


def test_the_last_billing_day_is_a_valid_range(stack: Stack) -> None:
    response = stack.invoke("UsageQueryFunction", usage({"from": "2999-12-31", "to": "2999-12-31"}))
    assert response["statusCode"] == 200, response


@pytest.mark.parametrize(
    ("extra", "name"),
    [({"month": "2026-11"}, "month"), ({"format": "csv"}, "format"), ({"page": "x"}, "page")],
)
def test_a_date_range_with_month_format_or_page_is_refused(
    stack: Stack, extra: dict[str, str], name: str
) -> None:
    query = {"from": "2026-11-01", "to": "2026-11-02", **extra}
    response = stack.invoke("UsageQueryFunction", usage(query))
    assert answer_of(response) == (400, "conflicting_parameter")
    assert repr(name) in json.loads(response["body"])["message"]


@pytest.mark.parametrize(
    "route",
    [
        "GET /customers/{customer_id}/usage",
        "GET /customers/{customer_id}/line-items",
        "GET /customers",
    ],
)
def test_an_empty_month_is_400_not_the_current_month(stack: Stack, route: str) -> None:
    response = stack.invoke("UsageQueryFunction", usage({"month": ""}, route))
    assert answer_of(response) == (400, "invalid_month")
