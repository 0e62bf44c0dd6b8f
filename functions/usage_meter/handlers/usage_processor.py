"""SQS consumer: fetch each delivered transcript from AssemblyAI and record its usage once.

The records of a batch are handled side by side (``PROCESSOR_BATCH_CONCURRENCY`` threads): the
function is billed for its wall time, which is mostly waiting on AssemblyAI and DynamoDB, so a
batch of 10 costs about one round trip instead of ten. Every AssemblyAI request still waits for
its slot of the shared request budget. Failed records are reported back to SQS one by one
(partial batch response), exactly as before. Routine outcomes go into one log line per batch; a
line per record only for what a person may need to look at (quarantined, dead-lettered, retried)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.assemblyai_api import transcript_source
from usage_meter.adapters.events import notification_publisher
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.queues import SqsDeadLetterQueue, SqsUsageQueue
from usage_meter.handlers import correlation
from usage_meter.handlers.limits_wiring import watched_ledger
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.queued_delivery import DeliveryDeps, handle_queued_delivery
from usage_meter.logic.usage_processing import Outcome, ProcessorDeps
from usage_meter.settings import ProcessorSettings, processor_settings

SETTINGS = ProcessorSettings
logger = Logger()
metrics = Metrics()
ROUTINE = frozenset({Outcome.RECORDED.value, Outcome.DUPLICATE.value})


@lru_cache(maxsize=1)
def _dependencies() -> DeliveryDeps:
    settings = processor_settings()
    queue = SqsUsageQueue(aws_clients.sqs(), settings.usage_queue_url)
    return DeliveryDeps(
        processor=ProcessorDeps(
            transcripts=transcript_source(settings, settings.table_name),
            ledger=watched_ledger(settings, settings.table_name, PowertoolsMetrics(metrics)),
            metrics=PowertoolsMetrics(metrics),
            known_projects=frozenset(settings.projects),
            billing_dimensions=settings.billing_dimensions,
        ),
        retries=queue,
        dead_letters=SqsDeadLetterQueue(aws_clients.sqs(), settings.dead_letter_queue_url),
        events=notification_publisher(
            settings.notification_events,
            aws_clients.events,
            settings.event_bus_name,
            correlation_id=lambda: correlation.current(logger),  # the record's own
        ),
        max_receive_count=settings.max_receive_count,
    )


def record_handler(record: SQSRecord) -> str:
    """Handle one record; its outcome (``retried`` when SQS must deliver it again)."""
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
    outcome = result.outcome.value if result else "dead_lettered"
    if outcome not in ROUTINE:
        logger.info(
            "usage message handled",
            extra={
                "message_id": record.message_id,
                "outcome": outcome,
                "reason": result.reason.value if result and result.reason else None,
                "source_id": result.record.source_id if result and result.record else None,
            },
        )
    return outcome


def _handle(record: SQSRecord) -> str:
    # Every line logged for this record carries the intake request's id (its message attribute).
    with correlation.for_record(logger, correlation.from_sqs_record(record.raw_event)):
        try:
            return record_handler(record)
        except Exception:  # reported to SQS as this record's failure; the others go on
            logger.exception("usage message failed", extra={"message_id": record.message_id})
            return "retried"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS partial batch response: ``{"batchItemFailures": [{"itemIdentifier": id}, ...]}``.
    A batch whose every record failed is reported item by item like any other (not raised):
    each record already chose its own retry delay."""
    records = [SQSRecord(r) for r in event.get("Records", [])]
    _dependencies()  # built once, before the threads
    with ThreadPoolExecutor(max_workers=processor_settings().batch_concurrency) as pool:
        outcomes = list(pool.map(_handle, records))
    ids = sorted({i for r in records if (i := correlation.from_sqs_record(r.raw_event))})
    logger.info(
        "usage batch handled",
        extra={"outcomes": dict(Counter(outcomes)), "correlation_ids": ids},
    )
    return {
        "batchItemFailures": [
            {"itemIdentifier": r.message_id}
            for r, outcome in zip(records, outcomes, strict=True)
            if outcome == "retried"
        ]
    }
