"""GET /customers/{customer_id}/entitlement?product=async|streaming - may this customer start more
work now, and how much remains. One DynamoDB request (a BatchGetItem of two keys). IAM-authorized
at API Gateway."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.limits_table import DynamoLimits
from usage_meter.adapters.price_table import load_price_table
from usage_meter.handlers.http_api import IAM, JSON, HttpApi, new_router, path_value
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.entitlement import check_entitlement
from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.models.api import error_responses, ok
from usage_meter.models.billing import PriceTable
from usage_meter.models.limits import Entitlement
from usage_meter.settings import EntitlementSettings, entitlement_settings

SETTINGS = EntitlementSettings
logger = Logger()
router = new_router()
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


@router.get(
    "/customers/<customer_id>/entitlement",
    summary="May this customer start more work on a product, and how much remains",
    responses={
        200: ok("The answer and each limit", Entitlement),
        **error_responses(400, 404, 409, 503),
    },
    tags=["Plans and limits (IAM)"],
    security=IAM,
)
def entitlement(
    customer_id: Annotated[str, Path(description="The customer.")],
    # The product rule (which products) is logic's: a missing or unknown one is 400
    # invalid_product, one definition.
    product: Annotated[str, Query(description="async or streaming.")] = "",
) -> Response[str]:
    reader, prices = _dependencies()
    answer = check_entitlement(path_value(customer_id), product, reader, prices)
    return API.answer(200, answer.model_dump_json())


def _allowances_on(event: dict[str, Any]) -> None:
    if not entitlement_settings().allowances:
        raise RequestRejected(Rejection.DISABLED, "allowances_disabled", ALLOWANCES_DISABLED)


API = HttpApi(
    router,
    before=_allowances_on,
    headers={"Content-Type": JSON, "Cache-Control": "no-store"},
    default_route="GET /customers/{customer_id}/entitlement",
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return API.resolve(event, context)
