"""The rules a ledger write's outcome depends on live in ``logic/`` (issue 10: "the decisions the
adapter makes today move to logic"). The ledger and the session store report facts (RECORDED, or
EXISTS with the row already there); ``logic.recording`` and ``logic.streaming_sessions`` decide
duplicate vs conflict, and that a streaming record closes its session. Tested here through
in-memory ports, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from usage_meter.logic.errors import RequestRejected, TransientFailure
from usage_meter.logic.recording import existing_outcome, record_once
from usage_meter.logic.streaming_sessions import (
    OrphanPolicy,
    record_termination,
    settle_orphans,
    store_begin,
)
from usage_meter.models.streaming import SessionBegin, SessionTermination
from usage_meter.models.usage import (
    QuarantineItem,
    RecordOutcome,
    RecordResult,
    UsageRecord,
    UsageStatus,
)

AT = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _record(seconds: str = "120", customer: str = "acme", product: str = "async") -> UsageRecord:
    return UsageRecord(
        source_id="src-1",
        product=product,  # type: ignore[arg-type]
        status=UsageStatus.BILLABLE,
        customer_id=customer,
        project="default",
        month="2026-11",
        billable_seconds=Decimal(seconds),
        model="universal-3-pro",
        occurred_at=AT,
    )


class MemoryLedger:
    """``ports.UsageLedger`` in memory: reports facts only, like the DynamoDB adapter."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], UsageRecord] = {}
        self.closed_sessions: list[tuple[str, str]] = []
        self.confirmed: list[UsageRecord] = []
        self.held: list[QuarantineItem] = []
        self.hide_existing = False

    def record(self, record: UsageRecord, *, closes_session: bool = False) -> RecordOutcome:
        key = (record.product, record.source_id)
        if key in self.rows:
            existing = None if self.hide_existing else self.rows[key]
            return RecordOutcome(result=RecordResult.EXISTS, existing=existing)
        self.rows[key] = record
        if closes_session:
            self.closed_sessions.append((record.source_id, record.origin))
        return RecordOutcome(result=RecordResult.RECORDED)

    def quarantine(self, item: QuarantineItem) -> bool:
        self.held.append(item)
        return True

    def get_record(
        self, product: str, source_id: str, *, consistent: bool = True
    ) -> UsageRecord | None:
        return self.rows.get((product, source_id))

    def replace_record(self, existing: UsageRecord, replacement: UsageRecord) -> bool:
        self.rows[(existing.product, existing.source_id)] = replacement
        return True

    def usage_confirmed(self, record: UsageRecord) -> None:
        self.confirmed.append(record)


class MemorySessions:
    """``streaming_sessions.SessionStore`` in memory: EXISTS for a begin already stored."""

    def __init__(self, *begins: SessionBegin) -> None:
        self.begins = {b.session_id: b for b in begins}
        self.closed: list[tuple[str, str]] = []

    def put_begin(self, begin: SessionBegin) -> tuple[RecordResult, SessionBegin | None]:
        if begin.session_id in self.begins:
            return RecordResult.EXISTS, self.begins[begin.session_id]
        self.begins[begin.session_id] = begin
        return RecordResult.RECORDED, None

    def get_begin(self, session_id: str) -> SessionBegin | None:
        return self.begins.get(session_id)

    def open_sessions(
        self, began_before: datetime, since: datetime, unreadable: Any = None
    ) -> list[SessionBegin]:
        closed = {s for s, _ in self.closed}
        return [
            b
            for b in self.begins.values()
            if since <= b.began_at < began_before and b.session_id not in closed
        ]

    def close_session(self, session_id: str, reason: str) -> None:
        self.closed.append((session_id, reason))


class Quiet:
    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        return None


def _begin(customer: str = "acme", project: str = "default") -> SessionBegin:
    return SessionBegin(
        session_id="sess-1", customer_id=customer, project=project, model="u3-rt-pro", began_at=AT
    )


def test_the_same_facts_again_are_a_duplicate_and_rerun_what_follows_a_write() -> None:
    ledger = MemoryLedger()
    assert record_once(ledger, _record()).result is RecordResult.RECORDED

    again = record_once(ledger, _record())

    assert again.result is RecordResult.DUPLICATE and again.existing == _record()
    assert ledger.confirmed == [_record()]  # the threshold check a crash may have skipped


def test_different_facts_for_the_same_source_are_a_conflict_and_confirm_nothing() -> None:
    ledger = MemoryLedger()
    record_once(ledger, _record("120"))

    other = record_once(ledger, _record("90"))

    assert other.result is RecordResult.CONFLICT and other.existing == _record("120")
    assert ledger.confirmed == []
    assert existing_outcome(_record("90", customer="other"), _record("90")) is (
        RecordResult.CONFLICT
    )


def test_an_existing_row_the_ledger_could_not_read_is_retried_never_recorded() -> None:
    ledger = MemoryLedger()
    record_once(ledger, _record())
    ledger.hide_existing = True
    with pytest.raises(TransientFailure):
        record_once(ledger, _record())


def test_only_the_streaming_flows_close_a_session_with_their_record() -> None:
    """The adapter closes the session only when logic says so (it used to decide by product)."""
    ledger, sessions = MemoryLedger(), MemorySessions(_begin())
    assert record_once(ledger, _record(product="streaming")).result is RecordResult.RECORDED
    assert ledger.closed_sessions == []  # a plain write never closes anything

    term = SessionTermination(
        session_id="sess-2",
        customer_id="acme",
        model="u3-rt-pro",
        session_duration_seconds=Decimal(60),
        audio_duration_seconds=Decimal(59),
        ended_at=AT,
    )
    assert record_termination(term, sessions, ledger, Quiet()).outcome == "recorded"
    assert ledger.closed_sessions == [("sess-2", "streaming_report")]

    settle_orphans(ledger, sessions, Quiet(), OrphanPolicy.BILL, now=AT.replace(day=16))
    assert ledger.closed_sessions[-1] == ("sess-1", "orphan_estimate")


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        (("acme", "default"), RecordResult.DUPLICATE),
        (("other", "default"), RecordResult.CONFLICT),
        (("acme", "another-project"), RecordResult.CONFLICT),
    ],
)
def test_a_begin_already_stored_is_a_duplicate_only_for_the_same_owner(
    owner: tuple[str, str], expected: RecordResult
) -> None:
    sessions = MemorySessions(_begin())
    result, existing = store_begin(sessions, _begin(*owner))
    assert (result, existing) == (expected, _begin())


def test_a_termination_for_another_owner_is_quarantined_and_refused() -> None:
    ledger, sessions = MemoryLedger(), MemorySessions(_begin())
    term: Any = SessionTermination(
        session_id="sess-1",
        customer_id="other",
        model="u3-rt-pro",
        session_duration_seconds=Decimal(60),
        audio_duration_seconds=Decimal(59),
        ended_at=AT,
    )
    with pytest.raises(RequestRejected):
        record_termination(term, sessions, ledger, Quiet())
    assert [i.reason.value for i in ledger.held] == ["session_conflict"]
    assert ledger.rows == {}
