"""Recording usage once: what a row already in the ledger means.

The ledger (``ports.UsageLedger``) only reports facts: the row was written, or a row for the same
usage source was already there (with its values). The decision is here, one rule for every flow
(webhooks, reconciliation, streaming, product reports): the same billing facts
(``UsageRecord.same_facts_as``) are a duplicate, a retry of usage already billed; different facts
are a conflict, for the caller to quarantine or replace. A duplicate still runs what follows a
billable write (``usage_confirmed``: the allowance threshold check), so a retry after a crash
between the write and that check completes it.
"""

from __future__ import annotations

from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.ports import UsageLedger
from usage_meter.models.usage import RecordOutcome, RecordResult, UsageRecord


def existing_outcome(record: UsageRecord, existing: UsageRecord) -> RecordResult:
    """DUPLICATE when ``existing`` (the row already in the ledger for ``record``'s source)
    agrees on everything that is billed, else CONFLICT."""
    return RecordResult.DUPLICATE if existing.same_facts_as(record) else RecordResult.CONFLICT


def record_once(
    ledger: UsageLedger, record: UsageRecord, *, closes_session: bool = False
) -> RecordOutcome:
    """Record ``record`` once: RECORDED, DUPLICATE or CONFLICT (with the row already there).
    ``closes_session``: see ``ports.UsageLedger.record``. Raises what the ledger raises
    (UnstorableUsage, TransientFailure, PermanentFailure), and TransientFailure when the ledger
    reports an existing row without its values."""
    outcome = ledger.record(record, closes_session=closes_session)
    if outcome.result is not RecordResult.EXISTS:
        return outcome
    existing = outcome.existing
    if existing is None:
        raise TransientFailure(f"ledger row of {record.source_id} exists but could not be read")
    result = existing_outcome(record, existing)
    if result is RecordResult.DUPLICATE:
        ledger.usage_confirmed(existing)
    return RecordOutcome(result=result, existing=existing)
