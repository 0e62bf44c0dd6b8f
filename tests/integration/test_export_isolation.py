"""One bad item never blocks the monthly export (issue 17): a stored ledger row or aggregate the
code cannot read holds back its customer, with the reason in the manifest and the
``ExportCustomersHeld`` metric (alarmed), and every other customer's usage is published exactly.
Repairing the item and exporting again publishes a new version with the customer."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from typing import Any

import boto3
import pytest
from test_guard_metrics import emf_metrics
from test_monthly_export import export, key, record, s3_keys, s3_object

from conftest import REGION, Stack


def damage(stack: Stack, item: dict[str, Any], field: str, value: Any) -> None:
    """Overwrite one stored attribute as a hand edit or an unknown writer would."""
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.table)
    table.update_item(
        Key={"PK": item["PK"], "SK": item["SK"]},
        UpdateExpression="SET #f = :v",
        ExpressionAttributeNames={"#f": field},
        ExpressionAttributeValues={":v": value},
    )


def manifest(stack: Stack, version: int) -> dict[str, Any]:
    return dict(json.loads(s3_object(stack, key("2026-11", version, "manifest.json"))))


def line_item_customers(stack: Stack, version: int) -> list[str]:
    data = gzip.decompress(s3_object(stack, key("2026-11", version, "line_items.jsonl.gz")))
    return [json.loads(line)["customer_id"] for line in data.decode().splitlines()]


def test_an_unreadable_ledger_row_holds_its_customer_and_the_rest_is_published(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given acme with three rows, the middle one (in line-item order) damaged: its seconds are
    # text, not a number; and globex and zeta with readable rows before and after acme
    record(stack, "globex", "50")
    for seconds in ("100", "200", "300"):
        record(stack, "acme", seconds)
    record(stack, "zeta", "30")
    record(stack, "zeta", "12.5")
    acme_rows = sorted(
        (r for r in stack.items("ledger") if r["customer_id"] == "acme"),
        key=lambda r: str(r["source_id"]),
    )
    damage(stack, acme_rows[1], "billable_seconds", "two hundred")
    capsys.readouterr()

    # When the month is exported
    summary = export(stack, "2026-11")

    # Then globex and zeta are published exactly, acme is held with the reason, and counted
    assert (summary["status"], summary["version"]) == ("published", 1)
    published = manifest(stack, 1)
    assert [h["customer_id"] for h in published["held"]] == ["acme"]
    assert "billable_seconds" in published["held"][0]["reason"]
    assert acme_rows[1]["PK"] in published["held"][0]["reason"]
    assert "two hundred" not in published["held"][0]["reason"]  # no stored values echoed
    assert summary["held_customers"] == published["held"]
    assert (published["totals"]["usage_count"], published["totals"]["billable_seconds"]) == (
        3,
        "92.5",
    )
    assert published["line_items"]["row_count"] == 3
    # acme's first row was streamed before its damaged one: the file was written again without it
    assert sorted(line_item_customers(stack, 1)) == ["globex", "zeta", "zeta"]
    assert emf_metrics(capsys.readouterr().out).values["ExportCustomersHeld"] == 1

    # When the row is repaired and the month exported again, then version 2 adds acme's 600 s
    damage(stack, acme_rows[1], "billable_seconds", Decimal(200))
    again = export(stack, "2026-11")
    assert (again["status"], again["version"], again["held_customers"]) == ("published", 2, [])
    repaired = manifest(stack, 2)
    assert repaired["totals"]["billable_seconds"] == "692.5"
    assert repaired["changes"]["billable_seconds_delta"] == "600"
    assert sorted(set(line_item_customers(stack, 2))) == ["acme", "globex", "zeta"]


def test_an_unreadable_aggregate_holds_its_customer(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given globex's aggregate naming a product this version does not know
    record(stack, "acme", "100")
    record(stack, "globex", "50")
    [globex] = [a for a in stack.items("aggregate") if a["customer_id"] == "globex"]
    damage(stack, globex, "product", "fax")
    capsys.readouterr()

    summary = export(stack, "2026-11")

    published = manifest(stack, 1)
    assert [(h["customer_id"], "product" in h["reason"]) for h in published["held"]] == [
        ("globex", True)
    ]
    assert published["totals"]["billable_seconds"] == "100"
    assert line_item_customers(stack, 1) == ["acme"]
    assert summary["status"] == "published"
    assert emf_metrics(capsys.readouterr().out).values["ExportCustomersHeld"] == 1

    # A rerun with the same held customer changes nothing
    assert export(stack, "2026-11")["status"] == "unchanged"


def test_an_unreadable_row_naming_no_customer_fails_loudly(stack: Stack) -> None:
    """It cannot be isolated (whose totals would it leave out?): the month is not published."""
    from usage_meter.logic.monthly_export import LedgerMismatch

    record(stack, "acme", "100")
    [row] = stack.items("ledger")
    damage(stack, row, "customer_id", "")
    with pytest.raises(LedgerMismatch, match="names no customer"):
        export(stack, "2026-11")
    assert s3_keys(stack) == []
