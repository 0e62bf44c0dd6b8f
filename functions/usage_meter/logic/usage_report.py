"""One customer's usage for a month, priced exactly like the export (JSON or CSV)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from usage_meter.logic.billing_files import render_csv, row_document
from usage_meter.logic.errors import RequestRejected
from usage_meter.logic.monthly_export import (
    InvalidMonth,
    UsageReader,
    check_month,
    priced_rows,
    totals,
)
from usage_meter.models.billing import PriceTable
from usage_meter.models.identifiers import (
    CUSTOMER_ID_RULE,
    is_customer_id,
    normalize_customer_id,
)

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8; header=present"}


@dataclass(frozen=True)
class UsageReport:
    body: str
    content_type: str


def customer_usage(
    customer_id: str, month: str, wanted: str, reader: UsageReader, prices: PriceTable
) -> UsageReport:
    customer_id = normalize_customer_id(customer_id)
    if not is_customer_id(customer_id):
        raise RequestRejected(400, "invalid_customer_id", CUSTOMER_ID_RULE)
    try:
        check_month(month)
        price_version = prices.for_month(month)
    except InvalidMonth as exc:
        raise RequestRejected(400, "invalid_month", str(exc)) from exc
    if wanted not in FORMATS:
        raise RequestRejected(400, "invalid_format", "format must be json or csv")
    rows = priced_rows(reader.customer_aggregates(customer_id, month), price_version)
    if wanted == "csv":
        return UsageReport(render_csv(rows).decode("utf-8"), FORMATS["csv"])
    document = {
        "customer_id": customer_id,
        "month": month,
        "currency": price_version.currency if price_version else None,
        "price_table_version": price_version.version if price_version else None,
        "totals": totals(rows),
        "rows": [row_document(r) for r in rows],
    }
    return UsageReport(json.dumps(document, sort_keys=True), FORMATS["json"])
