"""SQS consumer: deliver each notification, signed, to the application's own webhook endpoint.

EventBridge (rule ForwardNotificationsRule) puts every Received event on the forward queue; this
function signs it (Standard Webhooks) and POSTs AssemblyAI's original body. Retries are SQS's
(visibility backoff), the last failure goes to the forwarding DLQ with its reason. It never
touches the books: a slow or failing endpoint changes nothing in the usage table.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.http_delivery import UrllibSender
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.queues import SqsDeadLetterQueue, SqsUsageQueue
from usage_meter.adapters.secrets import CachedSecret, ForwardAuthHeader, WebhookSecretValues
from usage_meter.handlers import correlation
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.forwarding import ForwardDeps, forward_notification
from usage_meter.settings import ForwarderSettings, forwarder_settings

SETTINGS = ForwarderSettings
logger = Logger()
metrics = Metrics()
batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@lru_cache(maxsize=1)
def _dependencies() -> ForwardDeps:
    settings = forwarder_settings()
    sm = aws_clients.secrets_manager()
    ttl = settings.secrets_cache_seconds
    return ForwardDeps(
        endpoint=settings.forward_url,
        sender=UrllibSender(),
        signing=WebhookSecretValues(CachedSecret(sm, settings.signing_secret_id, ttl)),
        auth=ForwardAuthHeader(CachedSecret(sm, settings.auth_secret_id, ttl)),
        retries=SqsUsageQueue(aws_clients.sqs(), settings.forward_queue_url),
        dead_letters=SqsDeadLetterQueue(aws_clients.sqs(), settings.dead_letter_queue_url),
        metrics=PowertoolsMetrics(metrics),
        max_attempts=settings.max_attempts,
        timeout_seconds=settings.timeout_seconds,
    )


def record_handler(record: SQSRecord) -> None:
    """Forward one notification; every line logged for it carries the id of the intake request
    that received it (the Received event's ``correlation_id``)."""
    with correlation.for_record(logger, correlation.from_event_body(record.body)):
        _forward(record)


def _forward(record: SQSRecord) -> None:
    receive_count = int(record.attributes.approximate_receive_count or 1)
    result = forward_notification(
        record.body, record.receipt_handle, receive_count, _dependencies(), int(time.time())
    )
    # The query string and body are the application's: never logged.
    logger.info(
        "notification forwarded" if result.outcome == "delivered" else "forward dead-lettered",
        extra={
            "message_id": record.message_id,
            "receive_count": receive_count,
            "status": result.status,
            "reason": result.reason,
        },
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=batch, context=context
        )
    )
