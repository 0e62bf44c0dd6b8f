"""The Processed event: what the processor did with one notification's usage.

One event per usage message the processor finished with. ``recorded`` is announced for at most
one delivery of a transcript: any other delivery is ``duplicate``. When publishing fails after the
ledger write, the message is retried (TransientFailure); the retry finds its own row (same receipt
time and origin, receive count > 1) and announces ``recorded`` again, never a second transcript.
"""

from __future__ import annotations

from usage_meter.logic.ports import EventPublisher
from usage_meter.logic.usage_processing import Outcome as ProcessingOutcome
from usage_meter.logic.usage_processing import ProcessingResult
from usage_meter.models.notification_event import (
    PROCESSED_DETAIL_TYPE,
    Outcome,
    processed_detail,
)
from usage_meter.models.webhook import UsageMessage


def _is_own_row(message: UsageMessage, result: ProcessingResult, receive_count: int) -> bool:
    """Whether a duplicate is this very delivery's row, written by an earlier attempt whose
    announcement failed."""
    record = result.record
    return (
        receive_count > 1
        and record is not None
        and record.occurred_at == message.received_at
        and record.origin == message.origin
        and (message.attribution is None or record.customer_id == message.attribution.customer_id)
    )


def _who(
    message: UsageMessage, result: ProcessingResult | None
) -> tuple[str | None, str | None, dict[str, str]]:
    """(customer, project, dimensions): the recorded row's, else the delivery's, else unknown
    (a delivery whose attribution broke a rule and was not billed)."""
    record = result.record if result else None
    if record is not None:
        return record.customer_id, record.project, dict(record.dimensions)
    if message.attribution is not None:
        a = message.attribution
        return a.customer_id, a.project, dict(a.dimensions)
    return None, None, {}


def announce_result(
    events: EventPublisher, message: UsageMessage, result: ProcessingResult, receive_count: int
) -> Outcome:
    """Publish the Processed event for a finished message; returns the outcome announced.
    Raises TransientFailure when the event was not taken (the caller retries the message)."""
    outcome: Outcome
    if result.outcome is ProcessingOutcome.QUARANTINED:
        outcome = "quarantined"
    elif result.outcome is ProcessingOutcome.RECORDED or _is_own_row(
        message, result, receive_count
    ):
        outcome = "recorded"
    else:
        outcome = "duplicate"
    _publish(events, message, outcome, result.reason.value if result.reason else None, result)
    return outcome


def announce_failure(events: EventPublisher, message: UsageMessage, reason: str) -> None:
    """Publish the Processed event of a dead-lettered message (TransientFailure if not taken)."""
    _publish(events, message, "failed", reason, None)


def _publish(
    events: EventPublisher,
    message: UsageMessage,
    outcome: Outcome,
    reason: str | None,
    result: ProcessingResult | None,
) -> None:
    """The one Processed event: who (``_who``), and the billed figures of a row it recorded."""
    record = result.record if result and outcome != "quarantined" else None
    customer_id, project, dimensions = _who(message, result)
    events.publish(
        PROCESSED_DETAIL_TYPE,
        processed_detail(
            transcript_id=message.transcript_id,
            webhook_status=message.webhook_status,
            received_at=message.received_at,
            outcome=outcome,
            reason=reason,
            customer_id=customer_id,
            project=project,
            dimensions=dimensions,
            billable_seconds=str(record.billable_seconds) if record else None,
            model=record.model if record else None,
            usage_month=record.month if record else None,
        ),
    )
