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
from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.ledger_pages import DynamoLedgerPages
from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.handlers.http_api import IAM, HttpApi, new_router, path_value
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.drill_down import (
    check_range_alone,
    customer_line_items,
    customer_usage_between,
    customers_with_usage,
    page_size,
    parse_range,
)
from usage_meter.logic.usage_report import customer_usage
from usage_meter.models.api import error_responses, ok
from usage_meter.models.months import current_month
from usage_meter.settings import UsageQuerySettings, usage_query_settings

SETTINGS = UsageQuerySettings
logger = Logger()
router = new_router()
ERRORS = error_responses(400, 404, 422, 503)
TAGS = ["Usage API (IAM)"]
# Every parameter is read as the string API Gateway passes; the rules (month format, page size,
# cursor, date range) are logic/'s, one definition each, and answer 400 with their own code.
CustomerId = Annotated[str, Path(description="The customer (URL-encoded as needed).")]
Month = Annotated[str | None, Query(description="YYYY-MM (UTC); default the current month.")]
Limit = Annotated[str | None, Query(description="Page size, 1..1000 (default 100).")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]


@lru_cache(maxsize=1)
def _dependencies() -> tuple[DynamoUsageReader, DynamoLedgerPages, str]:
    settings = usage_query_settings()
    client, table = aws_clients.dynamodb(), settings.table_name
    return (
        DynamoUsageReader(client, table),
        DynamoLedgerPages(client, table),
        settings.price_table_path,
    )


def _month(month: str | None) -> str:
    """The month asked for, the current one when absent (an empty ``month=`` is a bad month)."""
    return current_month() if month is None else month


def _document(document: dict[str, Any]) -> Response[str]:
    return API.answer(200, json.dumps(document, sort_keys=True))


@router.get(
    "/customers/<customer_id>/usage",
    summary="One customer's month (or date range), priced like the monthly export",
    responses={200: ok("The month's rows and totals (X-Next-Page: more)", csv=True), **ERRORS},
    tags=TAGS,
    security=IAM,
)
def usage(
    customer_id: CustomerId,
    *,
    month: Month = None,
    format: Annotated[str | None, Query(description="json (default) or csv.")] = None,
    page: Annotated[str | None, Query(description="X-Next-Page of the previous answer.")] = None,
    from_: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD (UTC).")] = None,
    to: Annotated[str | None, Query(description="YYYY-MM-DD (UTC), inclusive.")] = None,
) -> Response[str]:
    reader, pages, price_path = _dependencies()
    customer = path_value(customer_id)
    if from_ is not None or to is not None:
        check_range_alone({"month": month, "format": format, "page": page})
        first, last = parse_range(from_ or "", to or "")
        prices = load_price_table(price_path)
        return _document(customer_usage_between(customer, first, last, pages, prices))
    report = customer_usage(
        customer,
        _month(month),
        "json" if format is None else format,
        reader,
        load_price_table(price_path),
        page=page,
    )
    extra = {} if report.next_page is None else {"X-Next-Page": report.next_page}
    return API.answer(200, report.body, report.content_type, **extra)


@router.get(
    "/customers/<customer_id>/line-items",
    summary="The ledger rows behind a customer's month, paginated",
    responses={200: ok("line_items and next_cursor"), **ERRORS},
    tags=TAGS,
    security=IAM,
)
def line_items(
    customer_id: CustomerId, month: Month = None, limit: Limit = None, cursor: Cursor = None
) -> Response[str]:
    _, pages, _ = _dependencies()
    document = customer_line_items(
        path_value(customer_id), _month(month), page_size(limit), cursor, pages
    )
    return _document(document)


@router.get(
    "/customers",
    summary="Customers with usage in a month, paginated",
    responses={200: ok("customers and next_cursor"), **ERRORS},
    tags=TAGS,
    security=IAM,
)
def customers(month: Month = None, limit: Limit = None, cursor: Cursor = None) -> Response[str]:
    _, pages, _ = _dependencies()
    return _document(customers_with_usage(_month(month), page_size(limit), cursor, pages))


API = HttpApi(router, default_route="GET /customers/{customer_id}/usage")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return API.resolve(event, context)
