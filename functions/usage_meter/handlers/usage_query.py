"""The usage API (IAM-authorized at API Gateway), read-only:

- GET /customers/{customer_id}/usage?month=YYYY-MM[&format=csv][&page=N] - one customer's month,
  broken down and priced exactly like the monthly export, in pages that fit Lambda's 6 MB response
  limit; or ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` for a date range (UTC days, inclusive), priced per
  month.
- GET /customers/{customer_id}/line-items?month=YYYY-MM[&limit=N][&cursor=C] - the ledger rows
  behind those figures, paginated (``next_cursor``).
- GET /customers?month=YYYY-MM[&limit=N][&cursor=C] - customers with usage in the month, paginated.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.ledger_pages import DynamoLedgerPages
from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.logic.drill_down import (
    customer_line_items,
    customer_usage_between,
    customers_with_usage,
    page_size,
    parse_range,
)
from usage_meter.logic.errors import PermanentFailure, RequestRejected, TransientFailure
from usage_meter.logic.usage_report import customer_usage
from usage_meter.settings import UsageQuerySettings, usage_query_settings

SETTINGS = UsageQuerySettings
# Every query parameter the API reads (names are case-sensitive, as API Gateway passes them); any
# other is refused with 400 rather than ignored, so ``?Month=2025-01`` never answers another month.
QUERY_PARAMETERS = frozenset({"month", "format", "page", "from", "to"})
PAGED_QUERY_PARAMETERS = frozenset({"month", "limit", "cursor"})  # line items, customers
logger = Logger()
JSON = "application/json"


@lru_cache(maxsize=1)
def _dependencies() -> tuple[DynamoUsageReader, DynamoLedgerPages, str]:
    settings = usage_query_settings()
    client, table = aws_clients.dynamodb(), settings.table_name
    return (
        DynamoUsageReader(client, table),
        DynamoLedgerPages(client, table),
        settings.price_table_path,
    )


def _answer(status: int, body: str, content_type: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": content_type}, "body": body}


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return _answer(status, json.dumps({"error": code, "message": message}), JSON)


def _route(event: dict[str, Any]) -> dict[str, Any]:
    customer_id = (event.get("pathParameters") or {}).get("customer_id", "")
    if "%" in customer_id:  # still percent-encoded; "%" never belongs to a valid id
        customer_id = unquote(customer_id)
    query = event.get("queryStringParameters") or {}
    route = str(event.get("routeKey") or "GET /customers/{customer_id}/usage")
    paged = route.endswith("/line-items") or route == "GET /customers"
    known = PAGED_QUERY_PARAMETERS if paged else QUERY_PARAMETERS
    unknown = sorted(set(query) - known)
    if unknown:
        accepted = ", ".join(sorted(known))
        return _error(
            400,
            "unknown_parameter",
            f"unknown query parameter {unknown[0][:64]!r} (accepted: {accepted})",
        )
    month = query.get("month") or datetime.now(UTC).strftime("%Y-%m")
    reader, pages, price_path = _dependencies()
    if route.endswith("/line-items"):
        limit = page_size(query.get("limit"))
        document = customer_line_items(customer_id, month, limit, query.get("cursor"), pages)
        return _answer(200, json.dumps(document, sort_keys=True), JSON)
    if route == "GET /customers":
        limit = page_size(query.get("limit"))
        document = customers_with_usage(month, limit, query.get("cursor"), pages)
        return _answer(200, json.dumps(document, sort_keys=True), JSON)
    if "from" in query or "to" in query:
        first, last = parse_range(query.get("from", ""), query.get("to", ""))
        prices = load_price_table(price_path)
        document = customer_usage_between(customer_id, first, last, pages, prices)
        return _answer(200, json.dumps(document, sort_keys=True), JSON)
    wanted = query.get("format", "json")
    report = customer_usage(
        customer_id, month, wanted, reader, load_price_table(price_path), page=query.get("page")
    )
    answer = _answer(200, report.body, report.content_type)
    if report.next_page is not None:
        answer["headers"]["X-Next-Page"] = report.next_page
    return answer


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return _route(event)
    except RequestRejected as exc:
        return _error(exc.status, exc.code, exc.message)
    except TransientFailure:
        logger.exception("usage query failed")
        return _error(503, "unavailable", "temporarily unavailable, retry")
    except PermanentFailure as exc:
        logger.error("usage query refused", extra={"reason": exc.reason, "error": exc.message})
        return _error(422, exc.reason, exc.message)
