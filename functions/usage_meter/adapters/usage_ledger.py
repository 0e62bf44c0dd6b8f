"""The usage ledger over the usage table (port ``logic.ports.UsageLedger``): ledger rows and the
aggregates, summary and late-usage marks that change with them, in one transaction each.

Keys in ``usage_keys``; the items a write changes beside its row in ``ledger_updates``. A
customer's usage for a month is one Query on its partition; the export reads a month's
aggregates with one Query on GSI1 (``usage_reads``). Neither ever Scans.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.ledger_updates import (
    SummaryChange,
    aggregate_update,
    close_session_update,
    late_mark,
    replacement_updates,
    same_aggregate,
    summary,
)
from usage_meter.adapters.quarantine_store import DynamoQuarantine
from usage_meter.adapters.table_access import (
    AWS_ERRORS,
    TableAdapter,
    failure,
    ledger_row_exists,
    new_token,
    raise_if_unstorable,
    transaction_conflict,
)
from usage_meter.adapters.usage_keys import (
    aggregate_breakdown,
    aggregate_key,
    from_item,
    ledger_item,
    ledger_key,
    record_from_item,
    stored_time,
    to_item,
    tokens,
)
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.late_usage import usage_is_late
from usage_meter.models.usage import (
    QuarantineItem,
    RecordOutcome,
    RecordResult,
    UsageRecord,
    UsageStatus,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# In-process retries of a transaction cancelled for a TransactionConflict: 16 attempts, full
# jitter, 20 ms doubling to at most 2 s (~10 s expected at worst, 20 s at the very worst), well
# inside the processor's 120 s timeout for a batch handled side by side.
CONFLICT_ATTEMPTS = 16
CONFLICT_BASE_S = 0.02
CONFLICT_CAP_S = 2.0

UsageChanged = Callable[[str, str], object]


class DynamoUsageLedger(TableAdapter):
    """``on_usage_changed(customer_id, month)`` runs after every write that changed (or, for a
    duplicate, may have changed earlier) a customer's billable usage: the threshold watcher.
    It runs after the transaction; if it raises, so does the write, and the caller's retry finds
    the row and runs it again (``usage_confirmed``, called by ``logic.recording`` for a
    duplicate). ``quarantine`` stores through ``DynamoQuarantine``."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        on_usage_changed: UsageChanged | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        usage_summary: bool = True,
    ) -> None:
        super().__init__(client, table_name)
        self._usage_summary = usage_summary  # off: template parameter Allowances disabled
        self._on_usage_changed = on_usage_changed
        self._sleep = sleep
        self._quarantine = DynamoQuarantine(client, table_name)

    def _usage_changed(self, record: UsageRecord) -> None:
        if self._on_usage_changed is not None and record.status is UsageStatus.BILLABLE:
            self._on_usage_changed(record.customer_id, record.month)

    def usage_confirmed(self, record: UsageRecord) -> None:
        """See ``logic.ports.UsageLedger.usage_confirmed``."""
        self._usage_changed(record)

    def quarantine(self, item: QuarantineItem) -> bool:
        """See ``quarantine_store.DynamoQuarantine.quarantine``."""
        return self._quarantine.quarantine(item)

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> None:
        """TransactWriteItems, retried here when DynamoDB cancels it for a TransactionConflict
        (another transaction on the same item at the same moment, e.g. a busy customer's
        aggregate): up to CONFLICT_ATTEMPTS attempts with full-jitter exponential backoff, so a
        conflict is not handed back to SQS (its 20 s+ backoff and maxReceiveCount). Other errors,
        and the last conflict, are raised as botocore raised them (the callers translate them)."""
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                # a new token per attempt: a cancelled transaction wrote nothing
                self._client.transact_write_items(
                    TransactItems=items, ClientRequestToken=new_token()
                )
                return
            except ClientError as exc:
                if attempt + 1 == CONFLICT_ATTEMPTS or not transaction_conflict(exc):
                    raise
            backoff = min(CONFLICT_CAP_S, CONFLICT_BASE_S * 2**attempt)
            self._sleep(random.uniform(0, backoff))  # noqa: S311 - jitter, not a secret

    def _summary(self, *changes: SummaryChange) -> list[Any]:
        """The customer-month summary's share of a write (``ledger_updates.summary``); nothing
        when the deployment keeps no summary (``usage_summary=False``: Allowances disabled)."""
        return summary(self._table, *changes) if self._usage_summary else []

    # -- writes ---------------------------------------------------------------------------------
    def record(self, record: UsageRecord, *, closes_session: bool = False) -> RecordOutcome:
        """See ``logic.ports.UsageLedger.record``: RECORDED, or EXISTS with the row there (read
        back consistently); whether that is a duplicate or a conflict is ``logic.recording``'s
        to decide. ``on_usage_changed`` runs after a RECORDED billable write."""
        now = datetime.now(UTC)
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_item(ledger_item(record, now)),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        ]
        if record.status is UsageStatus.BILLABLE:
            items.append({"Update": aggregate_update(self._table, record, now)})
            items += self._summary(
                (record, 1, record.billable_seconds, record.addon_seconds(), tokens(record)),
            )
            if usage_is_late(record.month, now):
                items.append({"Update": late_mark(self._table, record.month, now)})
        if closes_session:
            items.append(
                {"Update": close_session_update(self._table, record.source_id, record.origin, now)}
            )
        try:
            self._transact(items)
        except ClientError as exc:
            raise_if_unstorable(exc)
            if not ledger_row_exists(exc):
                raise failure("record usage", exc) from exc
        except BotoCoreError as exc:
            raise failure("record usage", exc) from exc
        else:
            self._usage_changed(record)
            return RecordOutcome(result=RecordResult.RECORDED)
        existing = self.get_record(record.product, record.source_id)
        if existing is None:  # pragma: no cover - the row existed a moment ago and is never deleted
            raise TransientFailure("ledger row vanished after a conditional check failure")
        return RecordOutcome(result=RecordResult.EXISTS, existing=existing)

    def replace_record(self, existing: UsageRecord, replacement: UsageRecord) -> bool:
        """Replace a billed ledger row and move its aggregate contribution, in one transaction,
        only if the row is still ``existing`` (same ``occurred_at`` and ``estimated``). Used for
        an orphan estimate replaced by the real termination, and for a webhook row moved to the
        month of an earlier receipt. False when the row changed meanwhile."""
        now = datetime.now(UTC)
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_item(ledger_item(replacement, now)),
                    "ConditionExpression": "occurred_at = :occurred AND estimated = :estimated",
                    "ExpressionAttributeValues": to_item(
                        {
                            ":occurred": stored_time(existing.occurred_at),
                            ":estimated": existing.estimated,
                        }
                    ),
                }
            }
        ]
        items += replacement_updates(
            self._table, existing, replacement, now, with_summary=self._usage_summary
        )
        try:
            self._transact(items)
        except ClientError as exc:
            raise_if_unstorable(exc)
            if ledger_row_exists(exc):
                return False
            raise failure("replace ledger row", exc) from exc
        except BotoCoreError as exc:
            raise failure("replace ledger row", exc) from exc
        if existing.status is UsageStatus.BILLABLE and not same_aggregate(existing, replacement):
            self._remove_if_empty(existing)
        self._usage_changed(replacement)
        return True

    def _remove_if_empty(self, record: UsageRecord) -> None:
        """Delete the aggregate a row moved out of if nothing is left in it (a row moved to the
        month of its first receipt must not leave a 0-count row behind). Conditional, so a row
        added meanwhile keeps it; best effort, because reads skip emptied aggregates anyway."""
        key = aggregate_key(record.customer_id, record.month, aggregate_breakdown(record))
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=to_item(key),
                ConditionExpression="usage_count = :zero AND billable_seconds = :zero",
                ExpressionAttributeValues=to_item({":zero": 0}),
            )
        except AWS_ERRORS:
            return

    # -- reads ----------------------------------------------------------------------------------
    def get_record(
        self, product: str, source_id: str, *, consistent: bool = True
    ) -> UsageRecord | None:
        """The ledger row of a usage source, or None. ``consistent=False`` halves the read's
        cost where a stale miss is harmless (the write's condition still decides)."""
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=to_item(ledger_key(product, source_id)),
                ConsistentRead=consistent,
            )
        except AWS_ERRORS as exc:
            raise failure("read ledger", exc) from exc
        item = response.get("Item")
        return record_from_item(from_item(item)) if item else None
