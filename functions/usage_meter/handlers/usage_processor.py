"""SQS consumer: fetch each delivered transcript from AssemblyAI and record its usage once."""

from __future__ import annotations

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
from usage_meter.adapters.assemblyai_api import transcript_source
from usage_meter.adapters.events import EventBridgePublisher
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.queues import SqsDeadLetterQueue, SqsUsageQueue
from usage_meter.handlers.limits_wiring import watched_ledger
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.queued_delivery import DeliveryDeps, handle_queued_delivery
from usage_meter.logic.usage_processing import ProcessorDeps
from usage_meter.settings import ProcessorSettings, processor_settings

SETTINGS = ProcessorSettings
logger = Logger()
metrics = Metrics()
# A batch whose every record failed is reported item by item like any other (not raised): each
# record already chose its own retry delay, and a throttled AssemblyAI is not a function error.
batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@lru_cache(maxsize=1)
def _dependencies() -> DeliveryDeps:
    settings = processor_settings()
    queue = SqsUsageQueue(aws_clients.sqs(), settings.usage_queue_url)
    return DeliveryDeps(
        processor=ProcessorDeps(
            transcripts=transcript_source(settings),
            ledger=watched_ledger(settings, settings.table_name, PowertoolsMetrics(metrics)),
            metrics=PowertoolsMetrics(metrics),
            known_projects=frozenset(settings.projects),
            billing_dimensions=settings.billing_dimensions,
        ),
        retries=queue,
        dead_letters=SqsDeadLetterQueue(aws_clients.sqs(), settings.dead_letter_queue_url),
        events=EventBridgePublisher(aws_clients.events(), settings.event_bus_name),
        max_receive_count=settings.max_receive_count,
    )


def record_handler(record: SQSRecord) -> None:
    receive_count = int(record.attributes.approximate_receive_count or 1)
    try:
        result = handle_queued_delivery(
            record.body, record.receipt_handle, receive_count, _dependencies()
        )
    except TransientFailure as exc:
        # Every failed attempt says why (no secrets or text: messages are built from codes).
        logger.warning(
            "usage message attempt failed; retrying",
            extra={
                "message_id": record.message_id,
                "receive_count": receive_count,
                "reason": str(exc),
                "retry_after_seconds": exc.retry_after_seconds,
            },
        )
        raise
    logger.info(
        "usage message handled",
        extra={
            "message_id": record.message_id,
            "receive_count": receive_count,
            "outcome": result.outcome.value if result else "dead_lettered",
            "reason": result.reason.value if result and result.reason else None,
            "source_id": result.record.source_id if result and result.record else None,
        },
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=batch, context=context
        )
    )
