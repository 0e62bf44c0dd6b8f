"""Drill-down for the usage API and the ops CLI: a customer's line items (paginated), the customers
with usage in a month (paginated), and a customer's usage over a date range.

Every figure of an export row can be traced to its line items: the same ledger rows, in the same
document shape as ``line_items.jsonl.gz`` (``logic/line_items.line_item_document``).

A date range is read from the ledger (the aggregates are monthly): each month the range touches is
one Query on the customer's ledger shard, keeping the rows whose ``occurred_at`` (UTC) falls in
``[from, to]`` (whole days). The rows are then grouped and priced exactly like the export, with
each month's price version, one row per month x breakdown; a range that covers whole months gives
the export's rows for those months.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from usage_meter.logic.billing_files import row_document
from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.logic.line_items import line_item_document
from usage_meter.logic.monthly_export import InvalidMonth, check_month, priced_rows, totals
from usage_meter.models.billing import ExportRow, PriceTable, UsageAggregate
from usage_meter.models.identifiers import CUSTOMER_ID_RULE, is_customer_id
from usage_meter.models.months import FIRST_YEAR, LAST_YEAR
from usage_meter.models.usage import UsageRecord, UsageStatus

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_RANGE_DAYS = 366


class DrillDownReader(Protocol):
    def customer_ledger_page(
        self, customer_id: str, month: str, limit: int, cursor: str | None = None
    ) -> tuple[list[UsageRecord], str | None]:
        """Raises ValueError for a cursor it did not issue."""
        ...

    def customer_ledger_rows(self, customer_id: str, month: str) -> Iterator[UsageRecord]: ...

    def customers_page(
        self, month: str, limit: int, after: str | None = None
    ) -> tuple[list[str], str | None]: ...


def _customer(customer_id: str) -> str:
    if not is_customer_id(customer_id):
        raise RequestRejected(Rejection.INVALID, "invalid_customer_id", CUSTOMER_ID_RULE)
    return customer_id


def _month(month: str) -> str:
    try:
        return check_month(month)
    except InvalidMonth as exc:
        raise RequestRejected(Rejection.INVALID, "invalid_month", str(exc)) from exc


def page_size(raw: str | None) -> int:
    """``limit`` query parameter: 1..1000, default 100."""
    if raw is None or raw == "":
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise RequestRejected(Rejection.INVALID, "invalid_limit", f"limit must be 1..{MAX_PAGE}")
    return int(raw)


def customer_line_items(
    customer_id: str, month: str, limit: int, cursor: str | None, reader: DrillDownReader
) -> dict[str, Any]:
    """``{"customer_id", "month", "line_items": [...], "next_cursor": str | None}``; pass
    ``next_cursor`` back as ``cursor`` for the next page. Raises RequestRejected (INVALID)."""
    _customer(customer_id)
    _month(month)
    try:
        rows, next_cursor = reader.customer_ledger_page(customer_id, month, limit, cursor)
    except ValueError as exc:
        raise RequestRejected(
            Rejection.INVALID, "invalid_cursor", "cursor is not one this API issued"
        ) from exc
    return {
        "customer_id": customer_id,
        "month": month,
        "line_items": [line_item_document(r) for r in rows],
        "next_cursor": next_cursor,
    }


def customers_with_usage(
    month: str, limit: int, cursor: str | None, reader: DrillDownReader
) -> dict[str, Any]:
    """``{"month", "customers": [ids], "next_cursor"}``: customers billed anything in the month."""
    _month(month)
    if cursor is not None and not is_customer_id(cursor):
        raise RequestRejected(
            Rejection.INVALID, "invalid_cursor", "cursor is not one this API issued"
        )
    customers, after = reader.customers_page(month, limit, cursor)
    return {"month": month, "customers": customers, "next_cursor": after}


def parse_range(start: str, end: str) -> tuple[date, date]:
    """``from`` and ``to`` as ISO dates (inclusive, UTC days), at most 366 days apart, in the
    billing years of every month (models/months.py). Raises RequestRejected ``invalid_range``."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise RequestRejected(
            Rejection.INVALID, "invalid_range", "from and to must be YYYY-MM-DD"
        ) from exc
    if not all(FIRST_YEAR <= day.year <= LAST_YEAR for day in (first, last)):
        raise RequestRejected(
            Rejection.INVALID, "invalid_range", f"from and to: year {FIRST_YEAR}..{LAST_YEAR}"
        )
    if last < first or (last - first).days >= MAX_RANGE_DAYS:
        raise RequestRejected(
            Rejection.INVALID, "invalid_range", "to must be on or after from, within 366 days"
        )
    return first, last


def check_range_alone(others: dict[str, str | None]) -> None:
    """A date range is answered on its own: ``others`` (parameter name -> value as received,
    ``None`` when absent) must all be absent. Raises RequestRejected ``conflicting_parameter``
    naming the first one given."""
    for name, value in others.items():
        if value is not None:
            raise RequestRejected(
                Rejection.INVALID,
                "conflicting_parameter",
                f"{name!r} cannot be combined with from/to (a date range is answered alone)",
            )


def _months(first: date, last: date) -> list[str]:
    months, (year, month) = [], (first.year, first.month)
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return months


def _aggregate(records: list[UsageRecord], month: str) -> list[UsageAggregate]:
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for r in records:
        key = (r.customer_id, r.product, r.project, r.model, tuple(sorted(r.dimensions.items())))
        entry = groups.setdefault(key, [0, Decimal(0), {}])
        entry[0] += 1
        entry[1] += r.billable_seconds
        for feature in r.features:
            entry[2][feature] = entry[2].get(feature, Decimal(0)) + r.billable_seconds
    return [
        UsageAggregate(
            customer_id=customer,
            month=month,
            product=product,
            project=project,
            model=model,
            dimensions=dict(dims),
            usage_count=count,
            billable_seconds=seconds,
            addon_seconds=addons,
        )
        for (customer, product, project, model, dims), (count, seconds, addons) in groups.items()
    ]


def customer_usage_between(
    customer_id: str, first: date, last: date, reader: DrillDownReader, prices: PriceTable
) -> dict[str, Any]:
    """A customer's billable usage with ``occurred_at`` in [first, last] (UTC days), priced per
    month like the export: ``{"customer_id", "from", "to", "totals", "rows"}``."""
    _customer(customer_id)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    rows: list[ExportRow] = []
    for month in _months(first, last):
        kept = [
            r
            for r in reader.customer_ledger_rows(customer_id, month)
            if r.status is UsageStatus.BILLABLE and start <= r.occurred_at < end
        ]
        rows.extend(priced_rows(_aggregate(kept, month), prices.for_month(month)))
    return {
        "customer_id": customer_id,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "totals": totals(rows),
        "rows": [row_document(r) for r in rows],
    }
