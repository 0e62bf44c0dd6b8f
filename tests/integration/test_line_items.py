"""Line items: every ledger row of the month in the export, adding up exactly to the summary."""

from __future__ import annotations

import gzip
import json
import tempfile
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from test_monthly_export import export, key, record, s3_keys, s3_object

from conftest import REGION, Stack
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.logic.line_items import write_line_items
from usage_meter.logic.monthly_export import LedgerMismatch
from usage_meter.models.usage import UsageRecord, UsageStatus


def line_items(stack: Stack, month: str, version: int) -> list[dict[str, Any]]:
    data = gzip.decompress(s3_object(stack, key(month, version, "line_items.jsonl.gz")))
    return [json.loads(line) for line in data.decode().splitlines()]


def test_line_items_add_up_to_the_summary_rows_and_the_manifest(stack: Stack) -> None:
    # Given billable, failed, dimensioned and add-on usage of several customers
    record(stack, "acme", "3600", features=("speaker_labels",), dimensions={"plan": "pro"})
    record(stack, "acme", "1800.25", features=("speaker_labels", "redact_pii"))
    record(stack, "acme", "0", status=UsageStatus.FAILED)
    record(stack, "globex", "7200", product="streaming", model="u3-rt-pro")
    record(stack, "globex", "30", at="2026-10-31T23:59:59+00:00")  # October: not in November

    # When November is exported
    export(stack, "2026-11")

    # Then each line item is a ledger row with its source, and the billable ones sum per summary
    # row to exactly its count, seconds and add-on seconds; the manifest agrees with both
    items = line_items(stack, "2026-11", 1)
    summary = [json.loads(x) for x in s3_object(stack, key("2026-11", 1, "usage.jsonl")).split()]
    manifest = json.loads(s3_object(stack, key("2026-11", 1, "manifest.json")))
    assert [(i["customer_id"], i["status"]) for i in items] == [
        ("acme", "billable"),
        ("acme", "billable"),
        ("acme", "failed"),
        ("globex", "billable"),
    ]
    assert {i["source_id"] for i in items} == {r["source_id"] for r in stack.items("ledger")} - {
        r["source_id"] for r in stack.items("ledger") if r["month"] == "2026-10"
    }
    for row in summary:
        mine = [
            i
            for i in items
            if i["status"] == "billable"
            and all(
                i[c] == row[c]
                for c in ("customer_id", "product", "project", "model", "region", "estimated")
            )
            and i["dimensions"] == row["dimensions"]
        ]
        assert len(mine) == row["usage_count"]
        seconds = sum((Decimal(i["billable_seconds"]) for i in mine), Decimal(0))
        assert seconds == Decimal(row["billable_seconds"])
        add_ons: dict[str, Decimal] = {}
        for i in mine:
            for name in i["add_ons"]:
                add_ons[name] = add_ons.get(name, Decimal(0)) + Decimal(i["billable_seconds"])
        expected = ";".join(f"{k}={v:f}" for k, v in sorted(add_ons.items()))
        assert row["add_on_seconds"] == (expected or None)
    billable = [i for i in items if i["status"] == "billable"]
    assert manifest["line_items"] == {
        "row_count": 4,
        "billable_rows": 3,
        "failed_rows": 1,
        "estimated_rows": 0,
        "billable_seconds": "12600.25",
    }
    assert manifest["totals"]["usage_count"] == len(billable)
    assert manifest["totals"]["billable_seconds"] == "12600.25"
    entry = manifest["files"]["line_items.jsonl.gz"]
    raw = s3_object(stack, key("2026-11", 1, "line_items.jsonl.gz"))
    assert (entry["rows"], entry["bytes"]) == (4, len(raw))
    assert entry["sha256"] == __import__("hashlib").sha256(raw).hexdigest()
    assert entry["content_sha256"] == __import__("hashlib").sha256(gzip.decompress(raw)).hexdigest()


def test_a_row_that_moved_breakdown_without_its_aggregate_fails_the_export(stack: Stack) -> None:
    # Given a ledger row whose model changed behind the aggregates' back: per customer the count
    # and seconds still agree, so only the line-item check can see it
    record(stack, "acme", "100")
    record(stack, "acme", "200", model="universal-2")
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.table)
    row = next(r for r in stack.items("ledger") if r["model"] == "universal-2")
    table.update_item(
        Key={"PK": row["PK"], "SK": row["SK"]},
        UpdateExpression="SET model = :m",
        ExpressionAttributeValues={":m": "universal-3-pro"},
    )

    # When the month is exported, then it refuses, naming both rows, and writes nothing
    with pytest.raises(
        LedgerMismatch, match=r"acme/async/default/universal-2///False: summary 1 / 200 s"
    ):
        export(stack, "2026-11")
    assert s3_keys(stack) == []


def test_an_estimated_orphan_is_a_line_item_marked_estimated(stack: Stack) -> None:
    ledger = DynamoUsageLedger(boto3.client("dynamodb", region_name=REGION), stack.table)
    ledger.record(
        UsageRecord(
            source_id="sess-1",
            product="streaming",
            status=UsageStatus.BILLABLE,
            customer_id="acme",
            project="default",
            month="2026-11",
            billable_seconds=Decimal(10800),
            model="u3-rt-pro",
            occurred_at=datetime(2026, 11, 2, 3, tzinfo=UTC),
            origin="orphan_estimate",
            estimated=True,
        )
    )
    export(stack, "2026-11")
    [item] = line_items(stack, "2026-11", 1)
    assert (item["origin"], item["estimated"], item["quantity"], item["unit"]) == (
        "orphan_estimate",
        True,
        "10800",
        "second",
    )
    manifest = json.loads(s3_object(stack, key("2026-11", 1, "manifest.json")))
    assert manifest["line_items"]["estimated_rows"] == 1


def test_month_ledger_rows_reads_every_shard_in_customer_order(stack: Stack) -> None:
    customers = [f"cust-{n:02d}" for n in range(20)]
    for customer in reversed(customers):
        record(stack, customer, "1")
        record(stack, customer, "2", product="streaming", model="u3-rt-pro")
    ledger = DynamoUsageReader(boto3.client("dynamodb", region_name=REGION), stack.table)

    rows = list(ledger.month_ledger_rows("2026-11"))

    assert len(rows) == 40
    order = [(r.customer_id, r.product, r.source_id) for r in rows]
    assert order == sorted(order)
    assert list(ledger.month_ledger_rows("2026-12")) == []


def _records(count: int) -> Iterator[UsageRecord]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for n in range(count):
        yield UsageRecord(
            source_id=f"{n:032x}",
            product="async",
            status=UsageStatus.BILLABLE,
            customer_id=f"customer-{n % 50}",
            project="default",
            month="2026-11",
            billable_seconds=Decimal(n % 3600) / 10,
            model="universal-3-pro",
            features=("speaker_labels",) if n % 2 else (),
            occurred_at=start + timedelta(seconds=n),
        )


def test_writing_line_items_is_bounded_in_memory() -> None:
    # Given 10,000 ledger rows produced one at a time (about 3.5 MB of JSON Lines)
    tracemalloc.start()
    with tempfile.TemporaryFile() as out:
        # When they are written
        summary = write_line_items(_records(10_000), out)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.seek(0)
        uncompressed = len(gzip.decompress(out.read()))

    # Then the peak of Python allocations is a small fraction of the file: rows are not kept
    assert summary.row_count == 10_000 and uncompressed > 3_000_000
    assert peak < 1_000_000, f"peak {peak} bytes"
