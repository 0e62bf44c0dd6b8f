"""The allowance API (IAM-authorized): versioned, audited changes, like the ops CLI's.

- ``GET /customers/{customer_id}/allowance``: the current allowance and its history;
- ``PUT /customers/{customer_id}/allowance`` ``{"limits": [...] | null, "reason": "..."}``;
- ``PUT /customers/{customer_id}/plan`` ``{"plan": "starter" | null, "reason": "..."}``;
- ``PUT /plans/{plan}/allowance`` ``{"limits": [...], "reason": "..."}``.

The actor in the audit trail is the caller's IAM identity (``requestContext.authorizer.iam``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.audit_log import DynamoAuditLog
from usage_meter.adapters.limits_table import DynamoLimits
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.handlers.http_api import IAM, HttpApi, new_router, path_value
from usage_meter.handlers.limits_wiring import threshold_watcher
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.allowances import (
    AllowanceChange,
    AllowanceDeps,
    assign_plan,
    set_customer_allowance,
    set_plan_allowance,
)
from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.logic.thresholds import ThresholdWatcher
from usage_meter.models.api import (
    CustomerAllowanceChange,
    PlanAllowanceChange,
    PlanChange,
    error_responses,
    ok,
)
from usage_meter.models.limits import AllowanceSet
from usage_meter.settings import AllowanceApiSettings, allowance_api_settings

SETTINGS = AllowanceApiSettings
MAX_BODY_BYTES = 16384
ALLOWANCES_DISABLED = (
    "allowances are off in this deployment (template parameter Allowances=disabled): the meter "
    "keeps no customer-month summary to check them against"
)
logger = Logger()
metrics = Metrics()
router = new_router()
TAGS = ["Plans and limits (IAM)"]
CHANGE = {200: ok("The change, its version and the thresholds it crossed")}
CHANGE_ERRORS = {**CHANGE, **error_responses(400, 404, 409, 413, 503)}
CustomerId = Annotated[str, Path(description="The customer.")]


@lru_cache(maxsize=1)
def _dependencies() -> tuple[DynamoLimits, DynamoAuditLog, ThresholdWatcher]:
    settings = allowance_api_settings()
    return (
        DynamoLimits(aws_clients.dynamodb(), settings.table_name),
        DynamoAuditLog(aws_clients.dynamodb(), settings.table_name),
        threshold_watcher(settings, settings.table_name, PowertoolsMetrics(metrics)),
    )


def _answer(body: dict[str, Any]) -> Response[str]:
    return API.answer(200, json.dumps(body, sort_keys=True, default=str))


def _change(reason: str) -> tuple[AllowanceChange, AllowanceDeps]:
    """Who changes what (the caller's IAM identity, ``requestContext.authorizer.iam``), and the
    stores the change goes through."""
    raw = router.current_event.raw_event
    iam = ((raw.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
    actor = str(iam.get("userArn") or iam.get("userId") or "unknown-iam-caller")
    store, ledger, watcher = _dependencies()
    return AllowanceChange(actor, reason), AllowanceDeps(store, ledger, watcher)


@router.get(
    "/customers/<customer_id>/allowance",
    summary="A customer's current allowance and its history",
    responses={200: ok("current and history"), **error_responses(400, 404, 409, 503)},
    tags=TAGS,
    security=IAM,
)
def get_allowance(customer_id: CustomerId) -> Response[str]:
    store, _, _ = _dependencies()
    customer = path_value(customer_id)
    current = store.customer_allowance(customer)
    return _answer(
        {
            "customer_id": customer,
            "current": json.loads(current.model_dump_json()) if current else None,
            "history": store.allowance_history("customer", customer),
        }
    )


@router.put(
    "/customers/<customer_id>/allowance",
    summary="Set a customer's own limits (null: inherit the plan's again); versioned, audited",
    responses=CHANGE_ERRORS,
    tags=TAGS,
    security=IAM,
)
def put_allowance(
    customer_id: CustomerId, change: Annotated[CustomerAllowanceChange, Body()]
) -> Response[str]:
    limits = None if change.limits is None else AllowanceSet(limits=tuple(change.limits))
    who, deps = _change(change.reason)
    return _answer(set_customer_allowance(path_value(customer_id), limits, who, deps))


@router.put(
    "/customers/<customer_id>/plan",
    summary="Put a customer on a plan (null: none); versioned, audited",
    responses=CHANGE_ERRORS,
    tags=TAGS,
    security=IAM,
)
def put_plan(customer_id: CustomerId, change: Annotated[PlanChange, Body()]) -> Response[str]:
    who, deps = _change(change.reason)
    return _answer(assign_plan(path_value(customer_id), change.plan, who, deps))


@router.put(
    "/plans/<plan>/allowance",
    summary="Set a plan's default limits and bring every member's copy to them",
    responses=CHANGE_ERRORS,
    tags=TAGS,
    security=IAM,
)
def put_plan_allowance(
    plan: Annotated[str, Path(description="The plan.")],
    change: Annotated[PlanAllowanceChange, Body()],
) -> Response[str]:
    limits = AllowanceSet(limits=tuple(change.limits))
    who, deps = _change(change.reason)
    return _answer(set_plan_allowance(path_value(plan), limits, who, deps))


def _invalid_code(errors: list[Any]) -> str:
    """A limit that breaks its rules is ``invalid_limits``; anything else (no body, not JSON, a
    missing field, a plan that is not a string) ``invalid_request``."""
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        if "limits" in loc and error.get("type") != "missing":
            return "invalid_limits"
    return "invalid_request"


def _admissible(event: dict[str, Any]) -> None:
    """Before the body is read: allowances are on in this deployment (else 409), and the body
    is at most MAX_BODY_BYTES."""
    if not allowance_api_settings().allowances:
        raise RequestRejected(Rejection.DISABLED, "allowances_disabled", ALLOWANCES_DISABLED)
    if len(event.get("body") or "") > MAX_BODY_BYTES:
        raise RequestRejected(
            Rejection.TOO_LARGE, "body_too_large", f"body exceeds {MAX_BODY_BYTES} bytes"
        )


API = HttpApi(
    router, invalid_code=_invalid_code, before=_admissible, model_errors_are_requests=True
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return API.resolve(event, context)
