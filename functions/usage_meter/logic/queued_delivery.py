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
    """Exponential backoff by delivery attempt; AssemblyAI's Retry-After wins when it is longer,
    never beyond ``BACKOFF_MAX_SECONDS``."""
    exponential: int = min(
        BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, min(receive_count, 64) - 1)
    )
    return max(exponential, min(retry_after or 0, BACKOFF_MAX_SECONDS))


RETRIES_EXHAUSTED = "retries_exhausted"


@dataclass(frozen=True)
class DeliveryDeps:
    processor: ProcessorDeps
    retries: RetryScheduler
    dead_letters: DeadLetters
    events: EventPublisher
    max_receive_count: int = 8  # the queue's maxReceiveCount


def handle_queued_delivery(
    body: str, receipt_handle: str, receive_count: int, deps: DeliveryDeps
) -> ProcessingResult | None:
    """Process one queued delivery.

    Returns the result when the message is done with (recorded, duplicate, quarantined) and its
    Processed event is published, None when it was dead-lettered on purpose (its event says
    ``failed``); re-raises TransientFailure after scheduling the retry, so the
    batch reports it as a failed item and SQS delivers it again. The attempt numbered
    ``max_receive_count`` dead-letters a transient failure itself, with its reason (SQS's redrive
    remains the backstop for a function that crashes or times out).
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
        if receive_count >= deps.max_receive_count:
            # The last attempt: dead-letter it with the reason of this failure now; left to SQS's
            # redrive it would reach the DLQ with no reason at all.
            deps.processor.metrics.count("MessagesDeadLettered")
            deps.processor.metrics.count(f"DeadLettered_{RETRIES_EXHAUSTED}")
            deps.dead_letters.send(
                body,
                RETRIES_EXHAUSTED,
                f"{receive_count} attempts; the last failed with: {exc}",
            )
            _announce_failure(deps, message, RETRIES_EXHAUSTED)
            return None
        deps.processor.metrics.count("ProcessingRetried")
        deps.retries.retry_after(
            receipt_handle, backoff_seconds(receive_count, exc.retry_after_seconds)
        )
        raise
    except PermanentFailure as exc:
        deps.processor.metrics.count("MessagesDeadLettered")
        deps.processor.metrics.count(f"DeadLettered_{exc.reason}")
        deps.dead_letters.send(body, exc.reason, exc.message)
        _announce_failure(deps, message, exc.reason)
        return None


def _announce_failure(deps: DeliveryDeps, message: UsageMessage, reason: str) -> None:
    try:
        announce_failure(deps.events, message, reason)
    except TransientFailure:
        # The message is in the DLQ with its reason already; the event is the lesser loss.
        deps.processor.metrics.count("NotificationEventsUnpublished")
