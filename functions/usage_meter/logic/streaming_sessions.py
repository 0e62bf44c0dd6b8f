"""Streaming usage: session begin/termination reports and orphaned sessions.

AssemblyAI bills a streaming session on ``session_duration_seconds`` (the whole time the socket is
open), reported in a ``Termination`` message only the application sees; a session never closed is
closed by AssemblyAI after 3 hours (or earlier, at the cap its temporary token set) and billed
until then. The application reports both ends to us, with the session's billable add-ons.

- A termination is billed once (ledger key: the session id) with the same one-transaction ledger +
  aggregate write as transcripts; duplicates are no-ops; different numbers are a conflict.
- A begin with no termination after the 3-hour limit is an orphan: billed at its own bound (3 h,
  or the token's ``max_session_duration_seconds`` / the Begin's ``expires_at`` when sooner),
  marked ``estimated``, with the begin's add-ons; or only flagged, per configuration. A real
  termination arriving later replaces the estimate in one transaction, so the record ends as the
  real figure, never both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from usage_meter.logic.errors import Rejection, RequestRejected, TransientFailure, UnstorableUsage
from usage_meter.logic.ports import UsageLedger, UsageMetrics
from usage_meter.logic.quarantine import quarantine_item
from usage_meter.logic.recording import record_once
from usage_meter.models.months import usage_month
from usage_meter.models.rules import ORPHAN_LOOKBACK_DAYS, OrphanPolicy
from usage_meter.models.streaming import SESSION_LIMIT_SECONDS, SessionBegin, SessionTermination
from usage_meter.models.usage import (
    UNKNOWN_MODEL,
    QuarantineItem,
    QuarantineReason,
    RecordOutcome,
    RecordResult,
    UsageRecord,
    UsageStatus,
)


class SessionStore(Protocol):
    """Streaming session begins (``adapters.session_store``); their usage goes to the ledger."""

    def put_begin(self, begin: SessionBegin) -> tuple[RecordResult, SessionBegin | None]:
        """Store the begin once: (RECORDED, None), or (EXISTS, the begin already stored); a begin
        after its termination fills in the closed session (RECORDED). ``store_begin`` decides
        what an existing begin means."""
        ...

    def get_begin(self, session_id: str) -> SessionBegin | None: ...

    def open_sessions(
        self,
        began_before: datetime,
        since: datetime,
        unreadable: Callable[[str, str], object] | None = None,
    ) -> list[SessionBegin]:
        """Open sessions that began in [since, began_before); with ``unreadable``, one that
        cannot be read is reported there as (session id, reason) instead of raising."""
        ...

    def close_session(self, session_id: str, reason: str) -> None: ...


@dataclass(frozen=True)
class ReportResult:
    outcome: Literal["recorded", "duplicate", "replaced_estimate", "quarantined"]


def _conflict(
    store: UsageLedger,
    metrics: UsageMetrics,
    source_id: str,
    detail: str,
    report: SessionBegin | SessionTermination,
) -> RequestRejected:
    quarantine_item(
        store,
        metrics,
        QuarantineItem(
            source_id=source_id,
            reason=QuarantineReason.SESSION_CONFLICT,
            detail=detail,
            message=json.loads(report.model_dump_json()),
            quarantined_at=datetime.now(UTC),
        ),
    )
    metrics.count("UsageConflict")
    return RequestRejected(Rejection.CONFLICT, "conflict", detail)


def check_reported_time(moment: datetime, name: str, now: float, max_skew_seconds: int) -> None:
    """A reported begin or end may not lie in the future beyond the clock skew the signature
    allows: it would bill a month that has not started, or hide a session from the sweep."""
    if moment.timestamp() > now + max_skew_seconds:
        raise RequestRejected(
            Rejection.INVALID,
            "invalid_report",
            f"{name}: is more than {max_skew_seconds} s in the future",
        )


def same_session_owner(stored: SessionBegin, report: SessionBegin | SessionTermination) -> bool:
    """A session belongs to one customer and project: a report of it for another is a conflict."""
    return (stored.customer_id, stored.project) == (report.customer_id, report.project)


def store_begin(
    sessions: SessionStore, begin: SessionBegin
) -> tuple[RecordResult, SessionBegin | None]:
    """Store a begin once: RECORDED, DUPLICATE (the same session began for the same owner) or
    CONFLICT (it began for another customer or project), with the begin already stored."""
    result, existing = sessions.put_begin(begin)
    if result is not RecordResult.EXISTS:
        return result, existing
    if existing is None:
        raise TransientFailure(f"session {begin.session_id} exists but could not be read")
    same = same_session_owner(existing, begin)
    return (RecordResult.DUPLICATE if same else RecordResult.CONFLICT), existing


def record_begin(
    begin: SessionBegin, sessions: SessionStore, ledger: UsageLedger, metrics: UsageMetrics
) -> ReportResult:
    result, _existing = store_begin(sessions, begin)
    if result is RecordResult.CONFLICT:
        raise _conflict(
            ledger,
            metrics,
            begin.session_id,
            f"session {begin.session_id} already began for another customer or project",
            begin,
        )
    metrics.count(
        "StreamingSessionsBegun" if result is RecordResult.RECORDED else "DuplicateReport"
    )
    return ReportResult("recorded" if result is RecordResult.RECORDED else "duplicate")


def termination_record(term: SessionTermination, begin: SessionBegin | None) -> UsageRecord:
    return UsageRecord(
        source_id=term.session_id,
        product="streaming",
        status=UsageStatus.BILLABLE,
        customer_id=term.customer_id,
        project=term.project,
        month=usage_month(term.ended_at),
        billable_seconds=term.session_duration_seconds,
        audio_duration_seconds=term.audio_duration_seconds,
        model=term.model or (begin.model if begin else UNKNOWN_MODEL),
        dimensions=term.dimensions or (begin.dimensions if begin else {}),
        features=term.add_ons or (begin.add_ons if begin else ()),
        occurred_at=term.ended_at,
        origin="streaming_report",
    )


def record_termination(
    term: SessionTermination, sessions: SessionStore, ledger: UsageLedger, metrics: UsageMetrics
) -> ReportResult:
    begin = sessions.get_begin(term.session_id)
    if begin is not None and not same_session_owner(begin, term):
        raise _conflict(
            ledger,
            metrics,
            term.session_id,
            f"session {term.session_id} began for another customer or project",
            term,
        )
    record = termination_record(term, begin)
    try:
        outcome: RecordOutcome = record_once(ledger, record, closes_session=True)
    except UnstorableUsage as exc:
        _hold_unstorable(ledger, metrics, term.session_id, exc, json.loads(term.model_dump_json()))
        return ReportResult("quarantined")
    if outcome.result is RecordResult.RECORDED:
        metrics.count("StreamingSessionsRecorded")
        metrics.count("UsageSecondsRecorded", float(record.billable_seconds), "Seconds")
        return ReportResult("recorded")
    if outcome.result is RecordResult.DUPLICATE:
        metrics.count("DuplicateReport")
        return ReportResult("duplicate")
    existing = outcome.existing
    if existing is not None and existing.estimated and ledger.replace_record(existing, record):
        metrics.count("OrphanEstimateReplaced")
        return ReportResult("replaced_estimate")
    raise _conflict(
        ledger,
        metrics,
        term.session_id,
        f"session {term.session_id} was already terminated with different figures: "
        f"({existing.describe_facts() if existing else '?'}) vs ({record.describe_facts()})",
        term,
    )


def _hold_unstorable(
    store: UsageLedger,
    metrics: UsageMetrics,
    session_id: str,
    exc: UnstorableUsage,
    message: dict[str, Any],
) -> None:
    """Quarantine a session's usage that DynamoDB refuses, with DynamoDB's reason."""
    quarantine_item(
        store,
        metrics,
        QuarantineItem(
            source_id=session_id,
            reason=QuarantineReason.UNSTORABLE,
            detail=exc.message,
            message=message,
            quarantined_at=datetime.now(UTC),
        ),
    )


@dataclass(frozen=True)
class OrphanReport:
    found: int
    billed: int
    flagged: int
    already_terminated: int
    unstorable: int = 0  # quarantined with the reason; the sweep went on
    unreadable: int = 0  # stored sessions the code cannot read: quarantined and closed


def settle_orphans(
    ledger: UsageLedger,
    sessions: SessionStore,
    metrics: UsageMetrics,
    policy: OrphanPolicy,
    *,
    now: datetime,
    limit_seconds: Decimal = SESSION_LIMIT_SECONDS,
    lookback: timedelta = timedelta(days=ORPHAN_LOOKBACK_DAYS),
) -> OrphanReport:
    """Bill or flag every session that began more than ``limit_seconds`` ago without a
    termination. A billed orphan is billed at its own bound (``SessionBegin.bound_seconds``: at
    most ``limit_seconds``), in the month it ended, with its begin's add-ons."""
    limit = timedelta(seconds=float(limit_seconds))
    unreadable: dict[str, str] = {}
    orphans = sessions.open_sessions(
        began_before=now - limit, since=now - lookback, unreadable=unreadable.setdefault
    )
    held = _hold_unreadable(ledger, sessions, metrics, unreadable, now)
    billed = flagged = already = unstorable = 0
    for begin in orphans:
        if policy is OrphanPolicy.FLAG:
            quarantine_item(
                ledger,
                metrics,
                QuarantineItem(
                    source_id=begin.session_id,
                    reason=QuarantineReason.ORPHANED_SESSION,
                    detail=f"no termination reported {limit} after it began at {begin.began_at}",
                    message=json.loads(begin.model_dump_json()),
                    quarantined_at=now,
                ),
            )
            sessions.close_session(begin.session_id, "orphan_flagged")
            flagged += 1
            continue
        bound = min(begin.bound_seconds(), limit_seconds)
        ended = begin.began_at + timedelta(seconds=float(bound))
        estimate = UsageRecord(
            source_id=begin.session_id,
            product="streaming",
            status=UsageStatus.BILLABLE,
            customer_id=begin.customer_id,
            project=begin.project,
            month=usage_month(ended),
            billable_seconds=bound,
            model=begin.model,
            dimensions=begin.dimensions,
            features=begin.add_ons,
            occurred_at=ended,
            origin="orphan_estimate",
            estimated=True,
        )
        try:
            outcome = record_once(ledger, estimate, closes_session=True)
        except UnstorableUsage as exc:  # one bad session never stops the sweep
            _hold_unstorable(
                ledger, metrics, begin.session_id, exc, json.loads(begin.model_dump_json())
            )
            sessions.close_session(begin.session_id, "orphan_unstorable")
            unstorable += 1
            continue
        if outcome.result is RecordResult.RECORDED:
            billed += 1
        else:  # a real termination got there first: it wins
            sessions.close_session(begin.session_id, "terminated")
            already += 1
    metrics.count("OrphanedSessions", len(orphans))
    if billed:
        metrics.count("OrphanedSessionsBilled", billed)
    return OrphanReport(len(orphans), billed, flagged, already, unstorable, held)


def _hold_unreadable(
    ledger: UsageLedger,
    sessions: SessionStore,
    metrics: UsageMetrics,
    unreadable: dict[str, str],
    now: datetime,
) -> int:
    """Quarantine (``unreadable_session``) and close each stored open session the code cannot
    read, so one never stops the sweep and the next sweep does not meet it again. One without a
    session id cannot be closed: it is counted (``OrphanedSessionsUnreadable``) every sweep."""
    for session_id, why in unreadable.items():
        metrics.count("OrphanedSessionsUnreadable")
        if not session_id:
            continue
        quarantine_item(
            ledger,
            metrics,
            QuarantineItem(
                source_id=session_id,
                reason=QuarantineReason.UNREADABLE_SESSION,
                detail=why,
                message={"session_id": session_id},
                quarantined_at=now,
            ),
        )
        sessions.close_session(session_id, "orphan_unreadable")
    return len(unreadable)
