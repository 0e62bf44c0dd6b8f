"""POST /webhooks/assemblyai - AssemblyAI's transcript webhook (store-first).

Cold start matters here (AssemblyAI gives us 10 s): this module never imports the assemblyai SDK,
uses botocore without boto3, maps its one route without Powertools' HTTP resolver (API Gateway
already routes; see docs/decisions.md) and builds only its own settings model (settings_base.py,
not the other functions' in settings.py). The benchmark in benchmarks/ keeps it honest.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.events import (
    EventBridgePublisher,
    NoConsumerPublisher,
    notification_publisher,
)
from usage_meter.adapters.queues import SqsUsageQueue
from usage_meter.adapters.secrets import CachedSecret, WebhookSecretValues
from usage_meter.handlers import correlation
from usage_meter.handlers.http_errors import rejection_status
from usage_meter.handlers.routes import route_key
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.errors import RequestRejected, TransientFailure
from usage_meter.logic.webhook_intake import (
    IntakeLimits,
    NotificationNotPublished,
    WebhookRequest,
    accept_webhook,
)
from usage_meter.settings_base import IntakeSettings, intake_settings

SETTINGS = IntakeSettings
ROUTE_KEY = "POST /webhooks/assemblyai"
logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def _dependencies() -> tuple[
    IntakeLimits, WebhookSecretValues, SqsUsageQueue, EventBridgePublisher | NoConsumerPublisher
]:
    settings = intake_settings()
    limits = IntakeLimits(
        auth_header_name=settings.webhook_auth_header_name,
        max_body_bytes=settings.max_body_bytes,
        billing_dimensions=settings.billing_dimensions,
    )
    secret = CachedSecret(
        aws_clients.secrets_manager(), settings.webhook_secret_id, settings.secrets_cache_seconds
    )
    # The API request's id goes with the message and the event (handlers/correlation.py).
    request_id = logger.get_correlation_id
    queue = SqsUsageQueue(aws_clients.sqs(), settings.usage_queue_url, correlation_id=request_id)
    events = notification_publisher(
        settings.notification_events,
        aws_clients.events,
        settings.event_bus_name,
        correlation_id=request_id,
    )
    return limits, WebhookSecretValues(secret), queue, events


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


def _json(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def receive_webhook(event: dict[str, Any]) -> dict[str, Any]:
    """Map the one route's outcomes and domain errors to HTTP answers, in one place."""
    if route_key(event) != ROUTE_KEY:
        return _json(404, {"error": "not_found", "message": "no such route"})
    try:
        result = accept_webhook(_request(event), *_dependencies())
    except RequestRejected as exc:
        _count("WebhooksRejected")
        status = rejection_status(exc)
        logger.warning("webhook rejected", extra={"status": status, "code": exc.code})
        return _json(status, {"error": exc.code, "message": exc.message})
    except NotificationNotPublished as exc:
        # The usage is queued; the event is not. 503 makes AssemblyAI send it again (the usage is
        # then queued twice and billed once), so forwarding gets another chance.
        _count("NotificationPublishFailures")
        logger.error("notification event not published; answering 503", extra={"error": str(exc)})
        return _json(503, {"error": "unavailable", "message": "temporarily unavailable, retry"})
    except TransientFailure as exc:
        # 5xx, never 4xx: AssemblyAI retries a 5xx and gives up for good on a 4xx.
        _count("WebhookIntakeFailures")
        logger.error("webhook not stored; AssemblyAI will retry", extra={"error": str(exc)})
        return _json(503, {"error": "unavailable", "message": "temporarily unavailable, retry"})
    if result.message is None:
        _count("WebhooksIgnored")
        return _json(200, {"status": "ignored", "reason": result.reason})
    message = result.message
    _count("WebhooksAccepted")
    if message.attribution is None:
        _count("WebhooksAttributionInvalid")
    logger.info(
        "webhook accepted",
        extra={
            "transcript_id": message.transcript_id,
            "customer_id": message.attribution.customer_id if message.attribution else None,
            "project": message.project,
            "attribution_problem": message.attribution_problem,
            "webhook_status": message.webhook_status,
        },
    )
    return _json(200, {"status": "accepted", "transcript_id": message.transcript_id})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.set_correlation_id(correlation.from_api_event(event))
    return receive_webhook(event)
