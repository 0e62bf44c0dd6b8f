"""Rendering billing rows as files: RFC 4180 CSV for finance, JSON Lines for machines.

Both are deterministic (sorted rows, fixed column order, exact decimals as plain strings, no
timestamps), so the same data always gives byte-identical files. In the CSV an empty cell is a
missing value and booleans are ``true``/``false``; in the JSON Lines counts are numbers, booleans
are booleans, decimals are strings and a missing value (no cost, no price, no add-ons, no unpriced
reason, no price version) is ``null`` (``NULLABLE_TEXT``). Text cells that a spreadsheet would
treat as a formula (``=``, ``+``, ``-``, ``@`` first, also after leading whitespace or a line
break, or a leading tab, carriage return or line feed) are prefixed with an apostrophe in the CSV
(OWASP's CSV injection advice); the JSON Lines copy keeps the raw values.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from usage_meter.models.billing import ExportRow

COLUMNS = tuple(ExportRow.model_fields)
TEXT_COLUMNS = frozenset(
    {
        "customer_id",
        "project",
        "model",
        "region",
        "dimensions",
        "add_on_seconds",
        "add_on_prices",
        "unpriced",
        "price_version",
    }
)
# Text columns whose empty value means "none": null in the JSON Lines and the usage API.
NULLABLE_TEXT = frozenset(
    {"region", "add_on_seconds", "add_on_prices", "currency", "price_version", "unpriced"}
)
FORMULA_PREFIXES = ("=", "+", "-", "@")
LEADING_CONTROLS = ("\t", "\r", "\n")


def row_sort_key(row: ExportRow) -> tuple[str, ...]:
    """A row's identity: measured and estimated usage of one breakdown are two rows, and so are
    the regions of a product priced by region."""
    estimated = "estimated" if row.estimated else ""
    return (
        row.customer_id,
        row.product,
        row.project,
        row.model,
        row.dimensions,
        estimated,
        row.region,
    )


def guard_formula(value: str) -> str:
    """``value`` made inert for spreadsheets: an apostrophe first when it could start a formula,
    even behind leading whitespace or a line break (``" =1+1"``, ``"\n@SUM(A1)"``)."""
    risky = value.startswith(LEADING_CONTROLS) or value.lstrip().startswith(FORMULA_PREFIXES)
    return f"'{value}" if risky else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def render_csv(rows: list[ExportRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    for row in rows:
        values = row.model_dump()
        writer.writerow(
            guard_formula(_cell(values[c])) if c in TEXT_COLUMNS else _cell(values[c])
            for c in COLUMNS
        )
    return buffer.getvalue().encode("utf-8")


def row_document(row: ExportRow) -> dict[str, Any]:
    """A row as JSON: counts as numbers, booleans as booleans, decimals as exact strings,
    missing values as null."""
    document: dict[str, Any] = {}
    for column, value in row.model_dump().items():
        if value is None or isinstance(value, int):  # bool is an int
            document[column] = value
        elif column in NULLABLE_TEXT and value == "":
            document[column] = None
        else:
            document[column] = _cell(value)
    return document


def render_jsonl(rows: list[ExportRow]) -> bytes:
    return "".join(
        json.dumps(row_document(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        + "\n"
        for row in rows
    ).encode("utf-8")
