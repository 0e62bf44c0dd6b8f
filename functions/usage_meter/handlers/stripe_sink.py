"""Stripe sink (SQS, optional): each message is one DynamoDB stream record of a billable ledger row,
forwarded by an EventBridge pipe; its usage is sent to Stripe Billing as a meter event, once.

Transient failures (Stripe or AWS unavailable, 429) are retried through SQS (partial batch
failures); a refusal (unmapped customer, too old, changed after sent, Stripe rejected it) goes to
the Stripe DLQ with its reason, alarmed; nothing is dropped silently.
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
from usage_meter.adapters.queues import SqsDeadLetterQueue
from usage_meter.adapters.secrets import CachedSecret, api_key_from_secret
from usage_meter.adapters.stripe_meter import DynamoSinkStore, StripeMeterEvents
from usage_meter.adapters.usage_keys import from_item, record_from_item
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.stripe_sink import MeterEvent, SinkRefused, deliver
from usage_meter.settings import StripeSinkSettings, stripe_sink_settings

SETTINGS = StripeSinkSettings
logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def _dependencies() -> tuple[DynamoSinkStore, CachedSecret, SqsDeadLetterQueue]:
    settings = stripe_sink_settings()
    secret = CachedSecret(
        aws_clients.secrets_manager(), settings.secret_id, settings.secrets_cache_seconds
    )
    return (
        DynamoSinkStore(aws_clients.dynamodb(), settings.table_name),
        secret,
        SqsDeadLetterQueue(aws_clients.sqs(), settings.dead_letter_queue_url),
    )


class _LazyMeter:
    """The Stripe client, built (and its key read) only when an event must be sent: a batch of
    refusals or already-sent rows never needs the secret."""

    def __init__(self, secret: CachedSecret, base_url: str | None) -> None:
        self._secret = secret
        self._base_url = base_url
        self._meter: StripeMeterEvents | None = None

    def send(self, event: MeterEvent) -> None:
        if self._meter is None:
            api_key = api_key_from_secret(self._secret.value())
            self._meter = StripeMeterEvents(api_key, self._base_url)
        self._meter.send(event)


def _ledger_row(body: str) -> Any:
    """The ledger row in a stream record (as the pipe forwards it: ``dynamodb.NewImage``)."""
    image = json.loads(body)["dynamodb"]["NewImage"]
    return record_from_item(from_item(image))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = stripe_sink_settings()
    store, secret, dead_letters = _dependencies()
    meter = _LazyMeter(secret, settings.api_base_override)
    failures: list[dict[str, str]] = []
    for message in event.get("Records", []):
        body = message["body"]
        try:
            try:
                record = _ledger_row(body)
            except (KeyError, TypeError, ValueError) as exc:
                raise SinkRefused("malformed_message", type(exc).__name__) from exc
            outcome = deliver(
                record,
                event_name=settings.event_name,
                unit=settings.value_unit,
                meter=meter,
                store=store,
                now=datetime.now(UTC),
            )
            name = f"StripeMeterEvent_{outcome.value}"
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        except SinkRefused as exc:
            refusal = {"reason": exc.reason, "detail": exc.detail}
            logger.warning("stripe sink refused", extra=refusal)
            try:
                dead_letters.send(body, exc.reason, exc.detail)
                metrics.add_metric(name="StripeMeterEventRefused", unit=MetricUnit.Count, value=1)
            except TransientFailure:
                failures.append({"itemIdentifier": message["messageId"]})
        except TransientFailure as exc:
            logger.warning("stripe sink will retry", extra={"error": str(exc)})
            failures.append({"itemIdentifier": message["messageId"]})
    return {"batchItemFailures": failures}
