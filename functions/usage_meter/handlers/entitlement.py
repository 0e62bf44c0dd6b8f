"""GET /customers/{customer_id}/entitlement?product=async|streaming - may this customer start more
work now, and how much remains. One DynamoDB request (a BatchGetItem of two keys). IAM-authorized
at API Gateway."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.limits_table import DynamoLimits
from usage_meter.adapters.price_table import load_price_table
from usage_meter.logic.entitlement import check_entitlement
from usage_meter.logic.errors import RequestRejected, TransientFailure
from usage_meter.models.billing import PriceTable
from usage_meter.settings import EntitlementSettings, entitlement_settings

SETTINGS = EntitlementSettings
logger = Logger()
JSON = {"Content-Type": "application/json", "Cache-Control": "no-store"}

ALLOWANCES_DISABLED = (
    "allowances are off in this deployment (template parameter Allowances=disabled): the meter "
    "keeps no customer-month summary to check them against"
)


@lru_cache(maxsize=1)
def _dependencies() -> tuple[DynamoLimits, PriceTable]:
    settings = entitlement_settings()
    return (
        DynamoLimits(aws_clients.dynamodb(), settings.table_name),
        load_price_table(settings.price_table_path),
    )


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    body = json.dumps({"error": code, "message": message})
    return {"statusCode": status, "headers": JSON, "body": body}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    customer_id = (event.get("pathParameters") or {}).get("customer_id", "")
    product = (event.get("queryStringParameters") or {}).get("product", "")
    if not entitlement_settings().allowances:
        return _error(409, "allowances_disabled", ALLOWANCES_DISABLED)
    reader, prices = _dependencies()
    try:
        answer = check_entitlement(customer_id, product, reader, prices)
    except RequestRejected as exc:
        return _error(exc.status, exc.code, exc.message)
    except TransientFailure:
        logger.exception("entitlement check failed")
        return _error(503, "unavailable", "temporarily unavailable, retry")
    return {"statusCode": 200, "headers": JSON, "body": answer.model_dump_json()}
