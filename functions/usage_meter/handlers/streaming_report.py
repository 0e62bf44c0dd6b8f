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
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.secrets import CachedSecret, WebhookSecretValues
from usage_meter.adapters.session_store import DynamoSessionStore
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.handlers.http_api import HttpApi, new_router
from usage_meter.handlers.limits_wiring import watched_ledger
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.logic.product_reports import record_product_usage
from usage_meter.logic.request_signing import SignatureScheme, verify_signed_request
from usage_meter.logic.streaming_sessions import (
    check_reported_time,
    record_begin,
    record_termination,
)
from usage_meter.models.api import ReportAnswer, error_responses, ok
from usage_meter.models.products import REPORT_SCHEMAS, ProductUsage
from usage_meter.models.streaming import SessionBegin, SessionTermination
from usage_meter.settings import StreamingReportSettings, streaming_report_settings

SETTINGS = StreamingReportSettings
BEGIN_ROUTE = "POST /streaming/sessions/begin"
TERMINATION_ROUTE = "POST /streaming/sessions/termination"
PRODUCT_ROUTES = {f"POST {path}": schema for path, schema in REPORT_SCHEMAS.items()}
logger = Logger()
metrics = Metrics()
router = new_router()
ERRORS = {
    200: ok("recorded or duplicate", ReportAnswer),
    **error_responses(400, 401, 404, 409, 413, 422, 503),
}
# Documented for the OpenAPI document; checked by verify_signed_request before the body is read
# (logic/request_signing.py, Standard Webhooks), so an unsigned request never learns the schema.
Signature = Annotated[
    str | None,
    Header(alias="webhook-signature", description="Standard Webhooks signature (v1,...)."),
]
SignatureId = Annotated[str | None, Header(alias="webhook-id", description="Message id.")]
SignatureTime = Annotated[
    str | None, Header(alias="webhook-timestamp", description="Unix seconds.")
]


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


def _body(event: dict[str, Any], limit: int) -> bytes:
    raw = event.get("body") or ""
    try:
        data = (
            base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
        )
    except (binascii.Error, ValueError) as exc:
        raise RequestRejected(
            Rejection.INVALID, "invalid_body", "body is not valid base64"
        ) from exc
    if len(data) > limit:
        raise RequestRejected(Rejection.TOO_LARGE, "body_too_large", f"body exceeds {limit} bytes")
    return data


def authenticate(event: dict[str, Any]) -> None:
    """Before the body is parsed: its size (413), its base64 (400) and its signature (401) over
    the exact bytes sent."""
    settings, secrets, _, _ = _dependencies()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    body = _body(event, settings.max_body_bytes)
    scheme = verify_signed_request(headers, body, secrets, time.time(), settings.max_skew_seconds)
    if scheme is SignatureScheme.LEGACY:
        # Deprecated X-Usage-Meter-Signature (docs/decisions.md 2026-11-29): count who is left.
        metrics.add_metric(name="ReportsLegacySignature", unit="Count", value=1)
        logger.warning("report signed with the deprecated X-Usage-Meter-Signature scheme")


def _recorded(route: str, answer: dict[str, str]) -> Response[str]:
    logger.info("usage report", extra={"route": route, **answer})
    return API.answer(200, json.dumps(answer, separators=(",", ":")))


@router.post(
    "/streaming/sessions/begin",
    summary="A streaming session began (AssemblyAI's Begin, with the customer)",
    responses=ERRORS,
    tags=["Signed usage reports"],
)
def begin(
    report: Annotated[SessionBegin, Body()],
    signature: Signature = None,
    signature_id: SignatureId = None,
    signature_time: SignatureTime = None,
) -> Response[str]:
    settings, _, ledger, sessions = _dependencies()
    check_reported_time(report.began_at, "began_at", time.time(), settings.max_skew_seconds)
    result = record_begin(report, sessions, ledger, PowertoolsMetrics(metrics))
    return _recorded(BEGIN_ROUTE, {"status": result.outcome, "session_id": report.session_id})


@router.post(
    "/streaming/sessions/termination",
    summary="A streaming session ended (AssemblyAI's Termination durations): billed",
    responses=ERRORS,
    tags=["Signed usage reports"],
)
def termination(
    report: Annotated[SessionTermination, Body()],
    signature: Signature = None,
    signature_id: SignatureId = None,
    signature_time: SignatureTime = None,
) -> Response[str]:
    settings, _, ledger, sessions = _dependencies()
    check_reported_time(report.ended_at, "ended_at", time.time(), settings.max_skew_seconds)
    result = record_termination(report, sessions, ledger, PowertoolsMetrics(metrics))
    return _recorded(TERMINATION_ROUTE, {"status": result.outcome, "session_id": report.session_id})


def _record_product(route: str, usage: ProductUsage) -> Response[str]:
    settings, _, ledger, _ = _dependencies()
    name, moment = usage.moment
    check_reported_time(moment, name, time.time(), settings.max_skew_seconds)
    outcome = record_product_usage(usage, ledger, PowertoolsMetrics(metrics))
    return _recorded(route, {"status": outcome.outcome, "source_id": outcome.source_id})


def _product_route(path: str, schema: type[ProductUsage]) -> None:
    """``POST path``: one product's usage report, validated against ``schema``."""

    def report(usage: ProductUsage) -> Response[str]:
        return _record_product(f"POST {path}", usage)

    # The body's model is this route's schema (annotations given as objects, not strings).
    report.__annotations__ = {"usage": Annotated[schema, Body()], "return": Response[str]}
    report.__name__ = f"report_{path.rsplit('/', 1)[-1].replace('-', '_')}"
    summary = f"{schema.__name__}: usage of a product AssemblyAI sends no webhook for"
    router.post(path, summary=summary, responses=ERRORS, tags=["Signed usage reports"])(report)


for _path, _schema in REPORT_SCHEMAS.items():
    _product_route(_path, _schema)


def _count(status: int, code: str) -> None:
    if status == 422:  # retrying cannot help (DynamoDB refused the request)
        metrics.add_metric(name="ReportsUnstorable", unit="Count", value=1)
    elif 400 <= status < 500 and code != "not_found":
        metrics.add_metric(name="ReportsRejected", unit="Count", value=1)


API = HttpApi(
    router,
    invalid_code="invalid_report",
    on_error=_count,
    before=authenticate,
    model_errors_are_requests=True,
)


def handle_report(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """One signed report's answer: 200 recorded/duplicate, 400 invalid, 401 unsigned, 404 no
    such route, 409 conflict (quarantined), 413 too large, 422 unstorable, 503 retry."""
    return API.resolve(event, context)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_report(event, context)
