"""The interfaces the domain logic needs from the outside world (implemented in ``adapters``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: the webhook intake must not import pydantic models
    from usage_meter.logic.operations import AuditEntry
    from usage_meter.models.usage import QuarantineItem, RecordOutcome, UsageRecord
    from usage_meter.models.webhook import UsageMessage


class SecretValues(Protocol):
    def accepted_values(self, *, refresh: bool = False) -> Sequence[str]:
        """The secret values currently accepted (current and, during rotation, previous)."""
        ...


class UsageQueue(Protocol):
    def enqueue(self, message: UsageMessage) -> None: ...


class TranscriptSource(Protocol):
    def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
        """The raw transcript JSON. Raises TransientFailure, PermanentFailure or
        TranscriptNotFound; the caller must drop the text before storing anything."""
        ...


class UsageLedger(Protocol):
    def record(self, record: UsageRecord, *, closes_session: bool = False) -> RecordOutcome:
        """Write the ledger row and its aggregate in one transaction, only if the row is new;
        with ``closes_session``, the same transaction takes the streaming session
        ``record.source_id`` out of the open sessions (closed by ``record.origin``). RECORDED, or
        EXISTS with the row already there: a fact, which ``logic.recording.record_once`` turns
        into DUPLICATE or CONFLICT. Raises UnstorableUsage, TransientFailure, PermanentFailure."""
        ...

    def quarantine(self, item: QuarantineItem) -> bool:
        """Store the item; False when the same item was already quarantined."""
        ...

    def get_record(
        self, product: str, source_id: str, *, consistent: bool = True
    ) -> UsageRecord | None:
        """The ledger row of a usage source, or None."""
        ...

    def replace_record(self, existing: UsageRecord, replacement: UsageRecord) -> bool:
        """Replace a ledger row and move its aggregate contribution in one transaction, only if
        the row is still ``existing``; False when it changed meanwhile."""
        ...

    def usage_confirmed(self, record: UsageRecord) -> None:
        """A delivery found ``record`` already in the ledger: run what follows a billable write
        (the allowance threshold check), so a retry after a crash between the write and that
        check still completes it. Raises what the check raises (the caller retries)."""
        ...


class UsageMetrics(Protocol):
    def count(self, name: str, value: float = 1, unit: str = "Count") -> None: ...


class RetryScheduler(Protocol):
    def retry_after(self, receipt_handle: str, seconds: int) -> None: ...


class DeadLetters(Protocol):
    def send(self, body: str, reason: str, detail: str) -> None: ...


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Publish one event on the meter's bus; TransientFailure when it was not taken."""
        ...


class AuditTrail(Protocol):
    def audit(self, entry: AuditEntry) -> None:
        """Store who did what, when, why and with what outcome; raises TransientFailure or
        PermanentFailure when it could not (the action then reports the failure)."""
        ...
