"""Drill-down: a customer's line items and the customers with usage (paginated), a date range, and
``usage-meter-ops ledger`` - every figure of the export traced to its ledger rows."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from test_monthly_export import _usage_event, export, key, record, s3_object

from conftest import Stack
from usage_meter import ops_cli
from usage_meter.models.usage import UsageStatus


def api(stack: Stack, route: str, customer: str | None = None, **query: str) -> dict[str, Any]:
    event = _usage_event(customer or "", **query)
    event["routeKey"] = route
    if customer is None:
        event["pathParameters"] = None
    return stack.invoke("UsageQueryFunction", event)  # type: ignore[no-any-return]


def all_line_items(stack: Stack, customer: str, month: str, limit: str) -> list[dict[str, Any]]:
    items, cursor, pages = [], None, 0
    while True:
        query = {"month": month, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api(stack, "GET /customers/{customer_id}/line-items", customer, **query)
        assert response["statusCode"] == 200, response
        body = json.loads(response["body"])
        items += body["line_items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert pages < 20


def test_line_items_api_pages_through_the_rows_behind_the_export(stack: Stack) -> None:
    # Given a customer with 5 ledger rows (one failed) and another customer
    for seconds in ("10", "20", "30.5", "40"):
        record(stack, "acme", seconds, features=("speaker_labels",))
    record(stack, "acme", "0", status=UsageStatus.FAILED)
    record(stack, "globex", "99")
    export(stack, "2026-11")

    # When the API is paged two rows at a time
    items = all_line_items(stack, "acme", "2026-11", "2")

    # Then every row comes exactly once, identical to the export's line items for that customer
    exported = [
        json.loads(line)
        for line in gzip.decompress(s3_object(stack, key("2026-11", 1, "line_items.jsonl.gz")))
        .decode()
        .splitlines()
    ]
    assert sorted(items, key=lambda i: i["source_id"]) == sorted(
        (i for i in exported if i["customer_id"] == "acme"), key=lambda i: i["source_id"]
    )
    assert len(items) == 5
    assert [i["status"] for i in items].count("failed") == 1


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"month": "2026-11", "cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"month": "2026-11", "limit": "0"}, "invalid_limit"),
        ({"month": "2026-11", "limit": "1001"}, "invalid_limit"),
        ({"month": "2026-13"}, "invalid_month"),
    ],
)
def test_line_items_api_rejects_bad_paging(stack: Stack, query: dict[str, str], code: str) -> None:
    response = api(stack, "GET /customers/{customer_id}/line-items", "acme", **query)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == code


def test_customers_with_usage_are_listed_once_each_page_by_page(stack: Stack) -> None:
    # Given customers with several breakdowns each (acme and acme-corp sort next to each other)
    for customer in ("acme", "acme-corp", "globex", "initech", "umbrella"):
        record(stack, customer, "1")
        record(stack, customer, "2", model="universal-2")
        record(stack, customer, "3", dimensions={"plan": "pro"})
    record(stack, "october-only", "5", at="2026-10-10T00:00:00+00:00")

    # When listed two at a time
    seen, cursor = [], None
    for _ in range(5):
        query = {"month": "2026-11", "limit": "2", **({"cursor": cursor} if cursor else {})}
        body = json.loads(api(stack, "GET /customers", **query)["body"])
        seen += body["customers"]
        cursor = body["next_cursor"]
        if cursor is None:
            break

    # Then each customer with usage in the month appears exactly once, in id order
    assert seen == ["acme", "acme-corp", "globex", "initech", "umbrella"]


def test_usage_over_a_date_range_counts_only_those_days(stack: Stack) -> None:
    record(stack, "acme", "100", at="2026-10-31T23:59:59+00:00")
    record(stack, "acme", "200", at="2026-11-01T00:00:00+00:00")
    record(stack, "acme", "400", at="2026-11-10T23:59:59.999+00:00")
    record(stack, "acme", "800", at="2026-11-11T00:00:00+00:00")
    record(stack, "acme", "1600", at="2026-12-01T08:00:00+00:00")

    def between(start: str, end: str) -> dict[str, Any]:
        response = api(
            stack, "GET /customers/{customer_id}/usage", "acme", **{"from": start, "to": end}
        )
        assert response["statusCode"] == 200, response
        return json.loads(response["body"])  # type: ignore[no-any-return]

    assert between("2026-11-01", "2026-11-10")["totals"]["billable_seconds"] == "600"
    spanning = between("2026-10-31", "2026-12-01")
    assert spanning["totals"]["billable_seconds"] == "3100"
    assert [(r["month"], r["billable_seconds"]) for r in spanning["rows"]] == [
        ("2026-10", "100"),
        ("2026-11", "1400"),
        ("2026-12", "1600"),
    ]
    # a whole month gives the export's row for it
    export(stack, "2026-11")
    [exported] = [
        json.loads(x) for x in s3_object(stack, key("2026-11", 1, "usage.jsonl")).splitlines()
    ]
    assert between("2026-11-01", "2026-11-30")["rows"] == [exported]
    bad = api(stack, "GET /customers/{customer_id}/usage", "acme", **{"from": "2026-11-02"})
    assert (bad["statusCode"], json.loads(bad["body"])["error"]) == (400, "invalid_range")


def test_ops_ledger_prints_a_customers_line_items_and_totals(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    record(stack, "acme", "60", dimensions={"plan": "pro"})
    record(stack, "acme", "30.5")
    record(stack, "acme", "0", status=UsageStatus.FAILED)
    record(stack, "globex", "7")
    capsys.readouterr()

    code = ops_cli.main(
        [
            *stack.ops_location,
            "ledger",
            "--customer",
            "acme",
            "--month",
            "2026-11",
        ]
    )

    captured = capsys.readouterr()
    assert code == 0
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert sorted((r["billable_seconds"], r["status"], r["dimensions"]) for r in rows) == [
        ("0", "failed", ""),
        ("30.5", "billable", ""),
        ("60", "billable", "plan=pro"),
    ]
    totals = json.loads(captured.err.split("# totals ", 1)[1])
    assert totals == {
        "customer_id": "acme",
        "month": "2026-11",
        "billable_rows": 2,
        "billable_seconds": "90.5",
    }


def test_every_usage_api_route_requires_iam() -> None:
    from usage_meter_local.template import load_template, resources_of

    function = resources_of(load_template(), "AWS::Serverless::Function")["UsageQueryFunction"]
    routes = {
        (e["Properties"]["Method"], e["Properties"]["Path"]): e["Properties"]["Auth"]["Authorizer"]
        for e in function["Events"].values()
    }
    assert routes == {
        ("GET", "/customers/{customer_id}/usage"): "AWS_IAM",
        ("GET", "/customers/{customer_id}/line-items"): "AWS_IAM",
        ("GET", "/customers"): "AWS_IAM",
    }
