"""The usage API's answers stay below Lambda's 6 MB response limit however many rows a customer
has (AWS Lambda quotas: 6 MB invocation response payload, synchronous): pages of at most
MAX_PAGE_ROWS rows and MAX_PAGE_BYTES of rows, chained by ``next_page``, totals for the whole month.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from usage_meter.adapters.price_table import load_price_table
from usage_meter.handlers.http_errors import rejection_status
from usage_meter.logic.errors import RequestRejected
from usage_meter.logic.usage_report import MAX_PAGE_BYTES, MAX_PAGE_ROWS, customer_usage
from usage_meter.models.billing import LedgerTotals, UsageAggregate

PRICES = load_price_table(
    str(Path(__file__).resolve().parents[2] / "functions/usage_meter/config/prices.json")
)
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
ROWS = 4_500  # unpaged, about 7 MB: over the limit


class ManyRows:
    """A customer with ROWS breakdowns, each with 8 long dimension values (about 1.7 KB a row)."""

    def customer_aggregates(self, customer_id: str, month: str) -> list[UsageAggregate]:
        return [
            UsageAggregate(
                customer_id=customer_id,
                month=month,
                product="async",
                project="default",
                model="universal-3-pro",
                dimensions={f"dimension_{d}": f"{i:06d}-" + "v" * 120 for d in range(8)},
                usage_count=1,
                billable_seconds=Decimal(60),
            )
            for i in range(ROWS)
        ]

    def month_aggregates(self, month: str) -> list[UsageAggregate]:  # pragma: no cover
        raise NotImplementedError

    def month_ledger_totals(self, month: str) -> dict[str, LedgerTotals]:  # pragma: no cover
        raise NotImplementedError


@pytest.mark.parametrize("wanted", ["json", "csv"])
def test_every_page_fits_and_the_pages_hold_every_row(wanted: str) -> None:
    seen: list[str] = []
    page: str | None = None
    pages = 0
    while True:
        report = customer_usage("acme", "2026-11", wanted, ManyRows(), PRICES, page=page)
        pages += 1
        assert len(report.body.encode()) < LAMBDA_RESPONSE_LIMIT
        if wanted == "json":
            document = json.loads(report.body)
            assert document["totals"]["usage_count"] == ROWS  # the month's, on every page
            assert document["next_page"] == report.next_page
            assert len(document["rows"]) <= MAX_PAGE_ROWS
            seen += [r["dimensions"] for r in document["rows"]]
        else:
            seen += report.body.splitlines()[1:]
        if report.next_page is None:
            break
        page = report.next_page
    assert len(seen) == ROWS and len(set(seen)) == ROWS
    assert pages == -(-ROWS // MAX_PAGE_ROWS)


def test_byte_budget_cuts_a_page_before_the_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from usage_meter.logic import usage_report

    monkeypatch.setattr(usage_report, "MAX_PAGE_BYTES", 100_000)
    report = customer_usage("acme", "2026-11", "json", ManyRows(), PRICES)
    rows = json.loads(report.body)["rows"]
    assert 0 < len(rows) < MAX_PAGE_ROWS
    assert report.next_page == str(len(rows))
    assert MAX_PAGE_BYTES > 100_000


@pytest.mark.parametrize("page", ["-1", "abc", "1e3", "\uff11", "9" * 10, " 1"])
def test_odd_page_is_400(page: str) -> None:
    with pytest.raises(RequestRejected) as rejected:
        customer_usage("acme", "2026-11", "json", ManyRows(), PRICES, page=page)
    assert (rejection_status(rejected.value), rejected.value.code) == (400, "invalid_page")


def test_page_past_the_end_is_empty() -> None:
    report = customer_usage("acme", "2026-11", "json", ManyRows(), PRICES, page=str(ROWS + 5))
    document = json.loads(report.body)
    assert document["rows"] == [] and document["next_page"] is None
    assert document["totals"]["usage_count"] == ROWS
