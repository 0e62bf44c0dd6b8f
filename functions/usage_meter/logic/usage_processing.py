"""Turning one queued webhook delivery into exactly one usage record.

Every message ends in exactly one of: recorded (or recognised as a duplicate), quarantined with a
reason, dead-lettered with a reason, or retried later (TransientFailure, bounded by the queue's
maxReceiveCount, after which SQS moves it to the DLQ). Nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from usage_meter.logic.errors import NotReady, TranscriptNotFound, TransientFailure
from usage_meter.logic.ports import TranscriptSource, UsageLedger, UsageMetrics
from usage_meter.logic.quarantine import quarantine_item
from usage_meter.models.transcript import TranscriptFacts
from usage_meter.models.usage import (
    UNKNOWN_MODEL,
    QuarantineItem,
    QuarantineReason,
    RecordResult,
    UsageRecord,
    UsageStatus,
)
from usage_meter.models.webhook import UsageMessage

PENDING_STATUSES = frozenset({"queued", "processing"})
MAX_ERROR_MESSAGE = 1000


class Outcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class ProcessingResult:
    outcome: Outcome
    record: UsageRecord | None = None
    reason: QuarantineReason | None = None


@dataclass(frozen=True)
class ProcessorDeps:
    transcripts: TranscriptSource
    ledger: UsageLedger
    metrics: UsageMetrics
    known_projects: frozenset[str]


def build_usage_record(message: UsageMessage, facts: TranscriptFacts) -> UsageRecord:
    """The ledger row for a finished transcript (completed: billable; error: billed 0)."""
    attribution = message.attribution
    common = {
        "source_id": message.transcript_id,
        "product": "async",
        "customer_id": attribution.customer_id,
        "project": attribution.project,
        "month": message.month,
        "dimensions": attribution.dimensions,
        "occurred_at": message.received_at,
        "origin": message.origin,
        "model": facts.speech_model_used or UNKNOWN_MODEL,
        "language_code": facts.language_code,
        "features": facts.features,
    }
    if facts.status == "error":
        return UsageRecord(
            status=UsageStatus.FAILED,
            billable_seconds=0,
            error_message=(facts.error or "transcription failed")[:MAX_ERROR_MESSAGE],
            **common,
        )
    return UsageRecord(
        status=UsageStatus.BILLABLE,
        billable_seconds=facts.billable_seconds,
        audio_duration_seconds=facts.audio_duration,
        audio_channels=facts.channels,
        **common,
    )


def _quarantine(
    deps: ProcessorDeps, message: UsageMessage, reason: QuarantineReason, detail: str
) -> ProcessingResult:
    quarantine_item(
        deps.ledger,
        deps.metrics,
        QuarantineItem(
            source_id=message.transcript_id,
            reason=reason,
            detail=detail,
            message=json.loads(message.to_json()),
            quarantined_at=datetime.now(UTC),
        ),
    )
    return ProcessingResult(Outcome.QUARANTINED, reason=reason)


def _earlier_receipt(record: UsageRecord, existing: UsageRecord) -> bool:
    """Whether ``record`` is a webhook delivery received before the one that was recorded (a
    webhook's usage belongs to the month of its first receipt)."""
    return (
        record.origin == existing.origin == "webhook" and record.occurred_at < existing.occurred_at
    )


def _settle_known(message: UsageMessage, deps: ProcessorDeps) -> ProcessingResult | None:
    """A redelivered or duplicate message whose transcript is already in the ledger under the
    same customer and project is settled from the ledger alone: zero AssemblyAI requests (the
    meter spends the account's shared request budget only on transcripts it has not recorded).
    None when the ledger has no row, or a row with another attribution (then the transcript is
    fetched and the usual checks quarantine the conflict or mismatch)."""
    # Eventually consistent (half the read units): a stale miss costs one fetch, nothing else.
    existing = deps.ledger.get_record("async", message.transcript_id, consistent=False)
    attribution = message.attribution
    if existing is None or (existing.customer_id, existing.project) != (
        attribution.customer_id,
        attribution.project,
    ):
        return None
    deps.metrics.count("DuplicateDelivery")
    if (
        message.origin == existing.origin == "webhook"
        and message.received_at < existing.occurred_at
    ):
        # SQS does not keep order: the row moves to the month of the first receipt, once.
        moved = existing.model_copy(
            update={"occurred_at": message.received_at, "month": message.month}
        )
        if not deps.ledger.replace_record(existing, moved):
            raise TransientFailure("ledger row changed while moving it; retrying")
        deps.metrics.count("UsageMovedToFirstReceipt")
        return ProcessingResult(Outcome.DUPLICATE, record=moved)
    return ProcessingResult(Outcome.DUPLICATE, record=existing)


def _before_fetching(
    message: UsageMessage, deps: ProcessorDeps, prefetched: dict[str, Any] | None
) -> ProcessingResult | None:
    """What can be settled without asking AssemblyAI: an unknown project, a known row."""
    project = message.attribution.project
    if project not in deps.known_projects:
        return _quarantine(
            deps,
            message,
            QuarantineReason.UNKNOWN_PROJECT,
            f"project '{project}' is not configured (ASSEMBLYAI_PROJECTS)",
        )
    return _settle_known(message, deps) if prefetched is None else None


def process_usage_message(
    message: UsageMessage, deps: ProcessorDeps, prefetched: dict[str, Any] | None = None
) -> ProcessingResult:
    """Fetch the transcript, check it belongs to the named customer, record its usage once.

    Raises TransientFailure (retry later) and PermanentFailure (dead-letter with the reason).
    ``prefetched`` is the transcript JSON when the caller (reconciliation) already has it.
    """
    project = message.attribution.project
    if (early := _before_fetching(message, deps, prefetched)) is not None:
        return early
    try:
        payload = prefetched or deps.transcripts.fetch(project, message.transcript_id)
    except TranscriptNotFound:
        return _quarantine(
            deps,
            message,
            QuarantineReason.TRANSCRIPT_NOT_FOUND,
            f"AssemblyAI has no transcript {message.transcript_id} in project '{project}'",
        )
    try:
        facts = TranscriptFacts.from_api(payload)
    except ValidationError as exc:
        return _quarantine(
            deps,
            message,
            QuarantineReason.UNBILLABLE_TRANSCRIPT,
            f"transcript billing fields unreadable: {exc.error_count()} error(s)",
        )
    finally:
        del payload  # the text goes no further than this function

    if facts.status in PENDING_STATUSES:
        deps.metrics.count("TranscriptNotReady")
        raise NotReady(f"transcript is {facts.status}; retrying later")

    owner = facts.webhook_customer_id()
    if message.origin != "operator" and owner != message.attribution.customer_id:
        return _quarantine(
            deps,
            message,
            QuarantineReason.CUSTOMER_MISMATCH,
            "delivery names a customer other than the transcript's own webhook_url"
            if owner
            else "transcript's webhook_url names no single customer_id",
        )
    if facts.status not in {"completed", "error"} or (
        facts.status == "completed" and facts.audio_duration is None
    ):
        return _quarantine(
            deps,
            message,
            QuarantineReason.UNBILLABLE_TRANSCRIPT,
            f"transcript status '{facts.status}' with audio_duration {facts.audio_duration}",
        )

    record = build_usage_record(message, facts)
    outcome = deps.ledger.record(record)
    if outcome.result is RecordResult.CONFLICT:
        recorded = outcome.existing.describe_facts() if outcome.existing else "?"
        deps.metrics.count("UsageConflict")
        return _quarantine(
            deps,
            message,
            QuarantineReason.CONFLICT,
            f"already recorded with different facts: ({recorded}) vs ({record.describe_facts()})",
        )
    if outcome.result is RecordResult.DUPLICATE:
        deps.metrics.count("DuplicateDelivery")
        existing = outcome.existing
        if existing is not None and _earlier_receipt(record, existing):
            # SQS does not keep order: a copy received earlier (maybe in the previous month)
            # can be processed later. The row moves to the first receipt, exactly once.
            if not deps.ledger.replace_record(existing, record):
                raise TransientFailure("ledger row changed while moving it; retrying")
            deps.metrics.count("UsageMovedToFirstReceipt")
            return ProcessingResult(Outcome.DUPLICATE, record=record)
        return ProcessingResult(Outcome.DUPLICATE, record=existing)
    deps.metrics.count("TranscriptsRecorded")
    if record.status is UsageStatus.BILLABLE:
        deps.metrics.count("UsageSecondsRecorded", float(record.billable_seconds), "Seconds")
    return ProcessingResult(Outcome.RECORDED, record=record)
