"""The export benchmark's canned DynamoDB (benchmarks/dynamodb_pages.py) must answer every request
the production export makes, with views that add up: otherwise `make bench` measures nothing (it
failed on the line items' first Query once they were added). A small month through the real
export, botocore and all, keeps that from regressing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.dynamodb_pages import CannedMonth

from usage_meter.adapters import aws_clients
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.logic.monthly_export import export_month

MONTH = "2026-11"
ROOT = Path(__file__).resolve().parents[2]


class _Store:
    def __init__(self) -> None:
        self.files: dict[str, Any] = {}

    def latest(self, month: str) -> None:
        return None

    def next_version(self, month: str) -> int:
        return 1

    def read(self, month: str, version: int, name: str) -> bytes:
        return bytes(self.files[name])

    def publish(self, month: str, version: int, files: dict[str, Any]) -> None:
        self.files.update(
            {k: v if isinstance(v, bytes) else (v.seek(0), v.read())[1] for k, v in files.items()}
        )


def test_the_export_reads_a_canned_month_through_botocore_and_every_view_adds_up() -> None:
    from aws_lambda_powertools import Metrics

    rows = 3_000
    canned = CannedMonth(MONTH, rows, customers=40, rows_per_page=100, latency=False)
    client = aws_clients.new_dynamodb()
    canned.attach(client)
    reader = DynamoUsageReader(client, "UsageTable")
    prices = load_price_table(str(ROOT / "functions/usage_meter/config/prices.json"))
    metrics = PowertoolsMetrics(Metrics(namespace="Test", service="test"))

    result = export_month(MONTH, reader, _Store(), prices, metrics)

    assert result.status == "published"
    totals = result.manifest["totals"]
    expected = canned.expected_totals()
    assert totals["usage_count"] == rows == sum(n for n, _ in expected.values())
    seconds = Decimal(sum(ms for _, ms in expected.values())).scaleb(-3)
    assert Decimal(totals["billable_seconds"]) == seconds
    assert canned.line_served.rows == rows  # every ledger row read once for the line items
