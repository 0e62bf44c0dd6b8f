"""What happens to one SQS record of the usage queue: process, or retry later, or dead-letter."""

from __future__ import annotations

from dataclasses import dataclass

from usage_meter.logic.errors import PermanentFailure, TransientFailure
from usage_meter.logic.notification_outcome import announce_failure, announce_result
from usage_meter.logic.ports import DeadLetters, EventPublisher, RetryScheduler
from usage_meter.logic.usage_processing import (
    ProcessingResult,
    ProcessorDeps,
    process_usage_message,
)
from usage_meter.models.webhook import InvalidMessage, UsageMessage

BACKOFF_BASE_SECONDS = 20
BACKOFF_MAX_SECONDS = 900


def backoff_seconds(receive_count: int, retry_after: int | None = None) -> int:
    """Exponential backoff by delivery attempt; AssemblyAI's Retry-After wins when it is longer."""
    exponential: int = min(
        BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, receive_count - 1)
    )
    return max(exponential, retry_after or 0)


@dataclass(frozen=True)
class DeliveryDeps:
    processor: ProcessorDeps
    retries: RetryScheduler
    dead_letters: DeadLetters
    events: EventPublisher


def handle_queued_delivery(
    body: str, receipt_handle: str, receive_count: int, deps: DeliveryDeps
) -> ProcessingResult | None:
    """Process one queued delivery.

    Returns the result when the message is done with (recorded, duplicate, quarantined) and its
    Processed event is published, None when it was dead-lettered on purpose (its event says
    ``failed``); re-raises TransientFailure after scheduling the retry, so the
    batch reports it as a failed item and SQS delivers it again (until maxReceiveCount sends it to
    the DLQ).
    """
    try:
        message = UsageMessage.from_json(body)
    except InvalidMessage as exc:
        deps.processor.metrics.count("MessagesDeadLettered")
        deps.dead_letters.send(body, "malformed_message", str(exc))
        return None
    try:
        result = process_usage_message(message, deps.processor)
        announce_result(deps.events, message, result, receive_count)
        return result
    except TransientFailure as exc:
        deps.processor.metrics.count("ProcessingRetried")
        deps.retries.retry_after(
            receipt_handle, backoff_seconds(receive_count, exc.retry_after_seconds)
        )
        raise
    except PermanentFailure as exc:
        deps.processor.metrics.count("MessagesDeadLettered")
        deps.processor.metrics.count(f"DeadLettered_{exc.reason}")
        deps.dead_letters.send(body, exc.reason, exc.message)
        try:
            announce_failure(deps.events, message, exc.reason)
        except TransientFailure:
            # The message is in the DLQ with its reason already; the event is the lesser loss.
            deps.processor.metrics.count("NotificationEventsUnpublished")
        return None
