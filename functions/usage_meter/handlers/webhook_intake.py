"""POST /webhooks/assemblyai - AssemblyAI's transcript webhook (store-first; never imports the
assemblyai SDK, which would add about half a second to every cold start)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.queues import SqsUsageQueue
from usage_meter.adapters.secrets import CachedSecret, WebhookSecretValues
from usage_meter.logic.errors import RequestRejected, TransientFailure
from usage_meter.logic.webhook_intake import IntakeLimits, WebhookRequest, accept_webhook
from usage_meter.settings import IntakeSettings, intake_settings

SETTINGS = IntakeSettings
logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()


@lru_cache(maxsize=1)
def _dependencies() -> tuple[IntakeLimits, WebhookSecretValues, SqsUsageQueue]:
    settings = intake_settings()
    limits = IntakeLimits(
        auth_header_name=settings.webhook_auth_header_name,
        max_body_bytes=settings.max_body_bytes,
        max_dimensions=settings.max_dimensions,
    )
    secret = CachedSecret(
        aws_clients.secrets_manager(), settings.webhook_secret_id, settings.secrets_cache_seconds
    )
    return (
        limits,
        WebhookSecretValues(secret),
        SqsUsageQueue(aws_clients.sqs(), settings.usage_queue_url),
    )


def _request(event: dict[str, Any]) -> WebhookRequest:
    epoch_ms = (event.get("requestContext") or {}).get("timeEpoch")
    received_at = datetime.fromtimestamp(epoch_ms / 1000, UTC) if epoch_ms else datetime.now(UTC)
    return WebhookRequest(
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        raw_query=event.get("rawQueryString") or "",
        body=event.get("body"),
        body_is_base64=bool(event.get("isBase64Encoded")),
        received_at=received_at,
    )


def _json(status: int, body: dict[str, Any]) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/webhooks/assemblyai")
def receive_webhook() -> Response[Any]:
    result = accept_webhook(_request(app.current_event.raw_event), *_dependencies())
    if result.message is None:
        metrics.add_metric(name="WebhooksIgnored", unit="Count", value=1)
        return _json(200, {"status": "ignored", "reason": result.reason})
    message = result.message
    metrics.add_metric(name="WebhooksAccepted", unit="Count", value=1)
    logger.info(
        "webhook accepted",
        extra={
            "transcript_id": message.transcript_id,
            "customer_id": message.attribution.customer_id,
            "project": message.attribution.project,
            "webhook_status": message.webhook_status,
        },
    )
    return _json(200, {"status": "accepted", "transcript_id": message.transcript_id})


@app.exception_handler(RequestRejected)  # type: ignore[untyped-decorator]
def _rejected(exc: RequestRejected) -> Response[Any]:
    metrics.add_metric(name="WebhooksRejected", unit="Count", value=1)
    logger.warning("webhook rejected", extra={"status": exc.status, "code": exc.code})
    return _json(exc.status, {"error": exc.code, "message": exc.message})


@app.exception_handler(TransientFailure)  # type: ignore[untyped-decorator]
def _unavailable(exc: TransientFailure) -> Response[Any]:
    # 5xx, never 4xx: AssemblyAI retries a 5xx and gives up for good on a 4xx.
    metrics.add_metric(name="WebhookIntakeFailures", unit="Count", value=1)
    logger.error("webhook not stored; AssemblyAI will retry", extra={"error": str(exc)})
    return _json(503, {"error": "unavailable", "message": "temporarily unavailable, retry"})


@app.not_found
def _not_found(_: Exception) -> Response[Any]:
    return _json(404, {"error": "not_found", "message": "no such route"})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
