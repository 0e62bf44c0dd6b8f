"""Signed usage reports from the application's backend: POST /streaming/sessions/begin and
/streaming/sessions/termination (streaming sessions), /usage/llm-gateway, /usage/voice-agent and
/usage/sync (products with no webhook, ``models/products.py``). One signature check, one body
limit, the same answers: 200 recorded/duplicate, 400 invalid, 401 unsigned, 409 conflict
(quarantined), 413 too large, 503 retry."""

from __future__ import annotations

import base64
import binascii
import json
import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from usage_meter.adapters import aws_clients
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.secrets import CachedSecret, WebhookSecretValues
from usage_meter.adapters.session_store import DynamoSessionStore
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.handlers.limits_wiring import watched_ledger
from usage_meter.handlers.routes import route_key
from usage_meter.logic.errors import PermanentFailure, RequestRejected, TransientFailure
from usage_meter.logic.product_reports import record_product_usage
from usage_meter.logic.request_signing import SignatureScheme, verify_signed_request
from usage_meter.logic.streaming_sessions import (
    check_reported_time,
    record_begin,
    record_termination,
)
from usage_meter.models.identifiers import InvalidIdentifier
from usage_meter.models.products import REPORT_SCHEMAS
from usage_meter.models.streaming import SessionBegin, SessionTermination
from usage_meter.settings import StreamingReportSettings, streaming_report_settings

SETTINGS = StreamingReportSettings
BEGIN_ROUTE = "POST /streaming/sessions/begin"
TERMINATION_ROUTE = "POST /streaming/sessions/termination"
PRODUCT_ROUTES = {f"POST {path}": schema for path, schema in REPORT_SCHEMAS.items()}
logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def _dependencies() -> tuple[
    StreamingReportSettings, WebhookSecretValues, DynamoUsageLedger, DynamoSessionStore
]:
    settings = streaming_report_settings()
    secret = CachedSecret(
        aws_clients.secrets_manager(), settings.signing_secret_id, settings.secrets_cache_seconds
    )
    ledger = watched_ledger(settings, settings.table_name, PowertoolsMetrics(metrics))
    sessions = DynamoSessionStore(aws_clients.dynamodb(), settings.table_name)
    return settings, WebhookSecretValues(secret), ledger, sessions


def _json(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body, separators=(",", ":")),
    }


def _body(event: dict[str, Any], limit: int) -> bytes:
    raw = event.get("body") or ""
    try:
        data = (
            base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
        )
    except (binascii.Error, ValueError) as exc:
        raise RequestRejected(400, "invalid_body", "body is not valid base64") from exc
    if len(data) > limit:
        raise RequestRejected(413, "body_too_large", f"body exceeds {limit} bytes")
    return data


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def _record(
    route: str,
    body: bytes,
    now: float,
    skew: int,
    *,
    ledger: DynamoUsageLedger,
    sessions: DynamoSessionStore,
) -> dict[str, str]:
    """Validate and record one report; the answer's fields (and the log's)."""
    sink = PowertoolsMetrics(metrics)
    if route in PRODUCT_ROUTES:
        usage = PRODUCT_ROUTES[route].model_validate_json(body)
        name, moment = usage.moment
        check_reported_time(moment, name, now, skew)
        outcome = record_product_usage(usage, ledger, sink)
        return {"status": outcome.outcome, "source_id": outcome.source_id}
    report: SessionBegin | SessionTermination
    if route == BEGIN_ROUTE:
        report = SessionBegin.model_validate_json(body)
        check_reported_time(report.began_at, "began_at", now, skew)
        result = record_begin(report, sessions, ledger, sink)
    else:
        report = SessionTermination.model_validate_json(body)
        check_reported_time(report.ended_at, "ended_at", now, skew)
        result = record_termination(report, sessions, ledger, sink)
    return {"status": result.outcome, "session_id": report.session_id}


def handle_report(event: dict[str, Any]) -> dict[str, Any]:
    route = route_key(event)
    if route not in (BEGIN_ROUTE, TERMINATION_ROUTE, *PRODUCT_ROUTES):
        return _json(404, {"error": "not_found", "message": "no such route"})
    settings, secrets, ledger, sessions = _dependencies()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        body = _body(event, settings.max_body_bytes)
        now, skew = time.time(), settings.max_skew_seconds
        if verify_signed_request(headers, body, secrets, now, skew) is SignatureScheme.LEGACY:
            # Deprecated X-Usage-Meter-Signature (docs/decisions.md 2026-11-29): count who is left.
            metrics.add_metric(name="ReportsLegacySignature", unit="Count", value=1)
            logger.warning("report signed with the deprecated X-Usage-Meter-Signature scheme")
        try:
            answer = _record(route, body, now, skew, ledger=ledger, sessions=sessions)
        except ValidationError as exc:
            raise RequestRejected(400, "invalid_report", _validation_message(exc)) from exc
        except InvalidIdentifier as exc:
            raise RequestRejected(400, exc.code, exc.message) from exc
    except RequestRejected as exc:
        metrics.add_metric(name="ReportsRejected", unit="Count", value=1)
        logger.warning("report rejected", extra={"status": exc.status, "code": exc.code})
        return _json(exc.status, {"error": exc.code, "message": exc.message})
    except TransientFailure as exc:
        logger.error("report not stored", extra={"error": str(exc)})
        return _json(503, {"error": "unavailable", "message": "temporarily unavailable, retry"})
    except PermanentFailure as exc:
        # Retrying cannot help (DynamoDB refused the request): say why, never a bare 500.
        metrics.add_metric(name="ReportsUnstorable", unit="Count", value=1)
        logger.error("report cannot be stored", extra={"reason": exc.reason, "error": exc.message})
        return _json(422, {"error": exc.reason, "message": exc.message})
    logger.info("usage report", extra={"route": route, **answer})
    return _json(200, answer)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_report(event)
