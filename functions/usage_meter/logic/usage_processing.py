"""Turning one queued webhook delivery into exactly one usage record.

Every message ends in exactly one of: recorded (or recognised as a duplicate), quarantined with a
reason, dead-lettered with a reason, or retried later (TransientFailure, bounded by the queue's
maxReceiveCount, after which SQS moves it to the DLQ). Nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from usage_meter.logic.errors import (
    NotReady,
    TranscriptNotFound,
    TransientFailure,
    UnstorableUsage,
)
from usage_meter.logic.ports import TranscriptSource, UsageLedger, UsageMetrics
from usage_meter.logic.quarantine import quarantine_item
from usage_meter.logic.recording import record_once
from usage_meter.models.identifiers import MAX_DIMENSIONS, InvalidIdentifier, normalize_customer_id
from usage_meter.models.transcript import TranscriptFacts
from usage_meter.models.usage import (
    UNKNOWN_MODEL,
    QuarantineItem,
    QuarantineReason,
    RecordResult,
    UsageRecord,
    UsageStatus,
)
from usage_meter.models.webhook import (
    Attribution,
    UsageMessage,
    attribution_from_query,
)

PENDING_STATUSES = frozenset({"queued", "processing"})
MAX_ERROR_MESSAGE = 1000
ATTRIBUTION_METRIC = "AttributionQuarantined"  # alarmed: usage held for a bad attribution
DELETED_NOTE = (
    "transcript_deleted: deleted at AssemblyAI before it was read; billed from the authenticated "
    "delivery's attribution"
)


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
    # The BillingDimensions allow-list, for attributions read from a webhook_url; by default
    # none (the application's parameters are never billed).
    billing_dimensions: frozenset[str] = frozenset()


def build_usage_record(
    message: UsageMessage, facts: TranscriptFacts, note: str | None = None
) -> UsageRecord:
    """The ledger row for a finished transcript (completed: billable; error: billed 0)."""
    attribution = message.attribution
    if attribution is None:
        raise ValueError("a message without a valid attribution cannot be recorded")
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
        "note": note,
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
    deps: ProcessorDeps,
    message: UsageMessage,
    reason: QuarantineReason,
    detail: str,
    metric: str | None = None,
) -> ProcessingResult:
    """Quarantine the delivery; ``metric`` is counted too when the item is new."""
    new = quarantine_item(
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
    if new and metric:
        deps.metrics.count(metric)
    return ProcessingResult(Outcome.QUARANTINED, reason=reason)


def _earlier_receipt(record: UsageRecord, existing: UsageRecord) -> bool:
    """Whether ``record`` is a webhook delivery received before the one that was recorded (a
    webhook's usage belongs to the month of its first receipt)."""
    return (
        record.origin == existing.origin == "webhook" and record.occurred_at < existing.occurred_at
    )


def _unbillable(facts: TranscriptFacts) -> tuple[QuarantineReason, str] | None:
    """Why a finished transcript cannot be billed as it stands, or None."""
    if facts.status not in {"completed", "error"} or (
        facts.status == "completed" and facts.audio_duration is None
    ):
        return (
            QuarantineReason.UNBILLABLE_TRANSCRIPT,
            f"transcript status '{facts.status}' with audio_duration {facts.audio_duration}",
        )
    implausible = facts.implausibility()
    if implausible is not None:
        return QuarantineReason.IMPLAUSIBLE_TRANSCRIPT, implausible
    return None


def webhook_url_attribution(
    facts: TranscriptFacts, billing_dimensions: frozenset[str]
) -> Attribution:
    """The attribution in the transcript's own ``webhook_url`` (the same rule as the intake's).
    Raises InvalidIdentifier when it has none or it breaks a rule."""
    if not facts.webhook_url or facts.deleted:
        raise InvalidIdentifier("no_webhook_url", "the transcript has no webhook_url to read")
    return attribution_from_query(
        urlsplit(facts.webhook_url).query, MAX_DIMENSIONS, billing_dimensions
    )


def _attribution_problem(
    deps: ProcessorDeps, message: UsageMessage, detail: str
) -> ProcessingResult:
    return _quarantine(
        deps, message, QuarantineReason.INVALID_ATTRIBUTION, detail, ATTRIBUTION_METRIC
    )


def _fetch_facts(
    deps: ProcessorDeps, message: UsageMessage, prefetched: dict[str, Any] | None
) -> TranscriptFacts | ProcessingResult:
    project = message.project
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
        return TranscriptFacts.from_api(payload)
    except ValidationError as exc:
        return _quarantine(
            deps,
            message,
            QuarantineReason.UNBILLABLE_TRANSCRIPT,
            f"transcript billing fields unreadable: {exc.error_count()} error(s)",
        )
    finally:
        del payload  # the text goes no further than this function


def _owner_check(
    deps: ProcessorDeps, message: UsageMessage, facts: TranscriptFacts
) -> tuple[UsageMessage, str | None] | ProcessingResult:
    """Whom the usage is billed to: (the message to record, a note), or a quarantine.

    - The delivery's attribution broke a rule: the transcript's own webhook_url decides (billed
      when valid, else quarantined as ``invalid_attribution`` with both problems).
    - The transcript was deleted (its webhook_url is gone): the authenticated delivery decides.
    - Otherwise the delivery must name the webhook_url's customer (``customer_mismatch``).
    """
    if message.attribution is None:
        if facts.deleted:
            return _quarantine(
                deps,
                message,
                QuarantineReason.TRANSCRIPT_DELETED,
                f"delivery attribution invalid ({message.attribution_problem}) and the transcript "
                "was deleted at AssemblyAI: no attribution to bill it by",
                ATTRIBUTION_METRIC,
            )
        try:
            owner = webhook_url_attribution(facts, deps.billing_dimensions)
        except InvalidIdentifier as exc:
            return _attribution_problem(
                deps,
                message,
                f"delivery: {message.attribution_problem}; "
                f"transcript webhook_url: {exc.code}: {exc.message}",
            )
        if owner.project != message.project:
            return _attribution_problem(
                deps,
                message,
                f"delivery: {message.attribution_problem}; transcript webhook_url names project "
                f"'{owner.project}', read with project '{message.project}'",
            )
        deps.metrics.count("AttributionFromWebhookUrl")
        return replace(message, attribution=owner, attribution_problem=None, query=None), None
    if facts.deleted and message.origin == "webhook":
        deps.metrics.count("TranscriptDeletedBilled")
        return message, DELETED_NOTE
    if message.origin != "operator":
        named = facts.webhook_customer_id()
        owner_id = normalize_customer_id(named) if named else None
        if owner_id != message.attribution.customer_id:
            return _quarantine(
                deps,
                message,
                QuarantineReason.CUSTOMER_MISMATCH,
                "delivery names a customer other than the transcript's own webhook_url"
                if owner_id
                else "transcript's webhook_url names no single customer_id",
            )
    return message, None


def _settle_known(message: UsageMessage, deps: ProcessorDeps) -> ProcessingResult | None:
    """A redelivered or duplicate message whose transcript is already in the ledger under the
    same customer and project is settled from the ledger alone: zero AssemblyAI requests (the
    meter spends the account's shared request budget only on transcripts it has not recorded).
    None when the ledger has no row, or a row with another attribution (then the transcript is
    fetched and the usual checks quarantine the conflict or mismatch)."""
    # Eventually consistent (half the read units): a stale miss costs one fetch, nothing else.
    existing = deps.ledger.get_record("async", message.transcript_id, consistent=False)
    attribution = message.attribution
    if (
        attribution is None
        or existing is None
        or (existing.customer_id, existing.project)
        != (
            attribution.customer_id,
            attribution.project,
        )
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
        deps.ledger.usage_confirmed(moved)
        return ProcessingResult(Outcome.DUPLICATE, record=moved)
    deps.ledger.usage_confirmed(existing)
    return ProcessingResult(Outcome.DUPLICATE, record=existing)


def process_usage_message(
    message: UsageMessage, deps: ProcessorDeps, prefetched: dict[str, Any] | None = None
) -> ProcessingResult:
    """Fetch the transcript, decide whom it belongs to, record its usage once.

    Raises TransientFailure (retry later) and PermanentFailure (dead-letter with the reason).
    ``prefetched`` is the transcript JSON when the caller (reconciliation) already has it.
    """
    project = message.project
    if project not in deps.known_projects:
        if message.attribution is None:
            return _attribution_problem(
                deps,
                message,
                f"delivery: {message.attribution_problem}; project '{project}' is not "
                "configured, so the transcript could not be read",
            )
        return _quarantine(
            deps,
            message,
            QuarantineReason.UNKNOWN_PROJECT,
            f"project '{project}' is not configured (ASSEMBLYAI_PROJECTS)",
        )
    if prefetched is None and message.attribution is not None:
        known = _settle_known(message, deps)  # a redelivery: no AssemblyAI request
        if known is not None:
            return known
    facts = _fetch_facts(deps, message, prefetched)
    if isinstance(facts, ProcessingResult):
        return facts

    if facts.status in PENDING_STATUSES:
        deps.metrics.count("TranscriptNotReady")
        raise NotReady(f"transcript is {facts.status}; retrying later")

    decided = _owner_check(deps, message, facts)
    if isinstance(decided, ProcessingResult):
        return decided
    message, note = decided
    unbillable = _unbillable(facts)
    if unbillable is not None:
        return _quarantine(deps, message, *unbillable)

    record = build_usage_record(message, facts, note)
    try:
        return _record(message, record, deps)
    except UnstorableUsage as exc:
        return _quarantine(deps, message, QuarantineReason.UNSTORABLE, exc.message)


def _record(message: UsageMessage, record: UsageRecord, deps: ProcessorDeps) -> ProcessingResult:
    """Record the usage once; a conflict is quarantined, a duplicate recognised."""
    outcome = record_once(deps.ledger, record)
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
