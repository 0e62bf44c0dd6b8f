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
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from usage_meter.adapters import aws_clients
from usage_meter.adapters.audit_log import DynamoAuditLog
from usage_meter.adapters.limits_table import DynamoLimits
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.handlers.limits_wiring import threshold_watcher
from usage_meter.logic.allowances import (
    AllowanceChange,
    AllowanceDeps,
    assign_plan,
    set_customer_allowance,
    set_plan_allowance,
)
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.operations import OperationRefused
from usage_meter.logic.thresholds import ThresholdWatcher
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


@lru_cache(maxsize=1)
def _dependencies() -> tuple[DynamoLimits, DynamoAuditLog, ThresholdWatcher]:
    settings = allowance_api_settings()
    return (
        DynamoLimits(aws_clients.dynamodb(), settings.table_name),
        DynamoAuditLog(aws_clients.dynamodb(), settings.table_name),
        threshold_watcher(settings, settings.table_name, PowertoolsMetrics(metrics)),
    )


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body, sort_keys=True, default=str),
    }


def _actor(event: dict[str, Any]) -> str:
    iam = ((event.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
    return str(iam.get("userArn") or iam.get("userId") or "unknown-iam-caller")


def _body(event: dict[str, Any]) -> dict[str, Any]:
    raw = event.get("body") or ""
    if len(raw) > MAX_BODY_BYTES:
        raise ValueError("body too large")
    if event.get("isBase64Encoded"):
        import base64

        raw = base64.b64decode(raw).decode()
    body = json.loads(raw or "{}")
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _limits(body: dict[str, Any], *, nullable: bool) -> AllowanceSet | None:
    if "limits" not in body:
        raise ValueError("limits is required")
    if body["limits"] is None and nullable:
        return None
    return AllowanceSet.model_validate({"limits": body["limits"]})


def _route(event: dict[str, Any]) -> dict[str, Any]:
    store, ledger, watcher = _dependencies()
    route = str(event.get("routeKey", ""))
    params = event.get("pathParameters") or {}
    if route == "GET /customers/{customer_id}/allowance":
        customer = params.get("customer_id", "")
        current = store.customer_allowance(customer)
        return {
            "customer_id": customer,
            "current": json.loads(current.model_dump_json()) if current else None,
            "history": store.allowance_history("customer", customer),
        }
    body = _body(event)
    change = AllowanceChange(_actor(event), str(body.get("reason", "")))
    deps = AllowanceDeps(store, ledger, watcher)
    if route == "PUT /customers/{customer_id}/allowance":
        limits = _limits(body, nullable=True)
        return set_customer_allowance(params.get("customer_id", ""), limits, change, deps)
    if route == "PUT /customers/{customer_id}/plan":
        plan = body.get("plan")
        if plan is not None and not isinstance(plan, str):
            raise ValueError("plan must be a string or null")
        return assign_plan(params.get("customer_id", ""), plan, change, deps)
    if route == "PUT /plans/{plan}/allowance":
        limits = _limits(body, nullable=False)
        assert limits is not None  # nullable=False
        return set_plan_allowance(params.get("plan", ""), limits, change, deps)
    raise LookupError(route)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not allowance_api_settings().allowances:
        return _answer(409, {"error": "allowances_disabled", "message": ALLOWANCES_DISABLED})
    try:
        return _answer(200, _route(event))
    except ValidationError as exc:
        return _answer(400, {"error": "invalid_limits", "message": str(exc.errors()[0]["msg"])})
    except ValueError as exc:
        return _answer(400, {"error": "invalid_request", "message": str(exc)})
    except OperationRefused as exc:
        return _answer(409, {"error": "refused", "message": str(exc)})
    except LookupError:
        return _answer(404, {"error": "not_found", "message": "no such route"})
    except TransientFailure:
        logger.exception("allowance change failed")
        return _answer(503, {"error": "unavailable", "message": "temporarily unavailable, retry"})
