"""One customer's usage for a month, priced exactly like the export (JSON or CSV), in pages.

A customer with many breakdowns (dimensions x models x projects) can have more rows than fit in
Lambda's 6 MB response payload limit (AWS Lambda quotas: "Invocation payload (request and
response) 6 MB each for synchronous"). An answer therefore holds at most ``MAX_PAGE_ROWS`` rows
and at most ``MAX_PAGE_BYTES`` of rows; ``next_page`` (JSON, or the ``X-Next-Page`` header for
CSV) is the ``page`` to ask for next, absent on the last page. ``totals`` are always the whole
month's. Pages are offsets into the export's row order, which is stable for a month's rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from usage_meter.logic.billing_files import render_csv, row_document
from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.logic.monthly_export import (
    InvalidMonth,
    UsageReader,
    check_month,
    priced_rows,
    totals,
)
from usage_meter.models.billing import ExportRow, PriceTable
from usage_meter.models.identifiers import (
    CUSTOMER_ID_RULE,
    is_customer_id,
    normalize_customer_id,
)

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8; header=present"}
MAX_PAGE_ROWS = 1000
MAX_PAGE_BYTES = 4 * 1024 * 1024  # rows' share of the 6 MB limit (totals and framing are small)
MAX_PAGE_NUMBER_DIGITS = 9


@dataclass(frozen=True)
class UsageReport:
    body: str
    content_type: str
    next_page: str | None = None


def _first_row(page: str | None) -> int:
    """The offset of a ``page`` parameter: ASCII digits only (absent: 0)."""
    if page is None or page == "":
        return 0
    if not (page.isascii() and page.isdigit() and len(page) <= MAX_PAGE_NUMBER_DIGITS):
        raise RequestRejected(
            Rejection.INVALID, "invalid_page", "page must be a number from next_page"
        )
    return int(page)


def _page(rows: list[ExportRow], start: int) -> tuple[list[ExportRow], int | None]:
    """Rows from ``start`` within the row and byte budgets, and where the next page starts."""
    taken: list[ExportRow] = []
    size = 0
    for index in range(start, min(len(rows), start + MAX_PAGE_ROWS)):
        row_size = len(json.dumps(row_document(rows[index])))
        if taken and size + row_size > MAX_PAGE_BYTES:
            return taken, index
        taken.append(rows[index])
        size += row_size
    end = start + len(taken)
    return taken, (end if end < len(rows) else None)


def customer_usage(
    customer_id: str,
    month: str,
    wanted: str,
    reader: UsageReader,
    prices: PriceTable,
    *,
    page: str | None = None,
) -> UsageReport:
    """The page of ``customer_id``'s ``month`` starting at ``page``; RequestRejected (400) for a
    bad customer id, month, format or page."""
    customer_id = normalize_customer_id(customer_id)
    if not is_customer_id(customer_id):
        raise RequestRejected(Rejection.INVALID, "invalid_customer_id", CUSTOMER_ID_RULE)
    try:
        check_month(month)
        price_version = prices.for_month(month)
    except InvalidMonth as exc:
        raise RequestRejected(Rejection.INVALID, "invalid_month", str(exc)) from exc
    if wanted not in FORMATS:
        raise RequestRejected(Rejection.INVALID, "invalid_format", "format must be json or csv")
    start = _first_row(page)
    rows = priced_rows(reader.customer_aggregates(customer_id, month), price_version)
    shown, following = _page(rows, start)
    next_page = None if following is None else str(following)
    if wanted == "csv":
        return UsageReport(render_csv(shown).decode("utf-8"), FORMATS["csv"], next_page)
    document = {
        "customer_id": customer_id,
        "month": month,
        "currency": price_version.currency if price_version else None,
        "price_table_version": price_version.version if price_version else None,
        "totals": totals(rows),
        "rows": [row_document(r) for r in shown],
        "next_page": next_page,
    }
    return UsageReport(json.dumps(document, sort_keys=True), FORMATS["json"], next_page)
