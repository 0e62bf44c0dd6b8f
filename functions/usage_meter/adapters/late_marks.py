"""Late-usage marks in the usage table (port ``logic.late_usage.LateUsageMarks``): months that
changed after they ended, written by the ledger's transactions (``ledger_updates.late_mark``),
read and cleared by the export of late usage."""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.table_access import TableAdapter, condition_failed, failure
from usage_meter.adapters.usage_keys import LATE_INDEX_KEY, late_mark_key, to_item


class DynamoLateUsageMarks(TableAdapter):
    """The pending late-usage marks (GSI1 ``EXPORT_LATE``)."""

    def late_months(self) -> list[tuple[str, int]]:
        """Months marked as changed after they ended: (month, marks seen), oldest first."""
        rows = self._query(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pending",
            ExpressionAttributeValues=to_item({":pending": LATE_INDEX_KEY}),
        )
        return [(str(r["month"]), int(r["late_records"])) for r in rows]

    def clear_late_month(self, month: str, seen: int) -> bool:
        """Take ``month`` out of the pending index if no mark came after ``seen`` (False: one did,
        it stays pending for the next run)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_item(late_mark_key(month)),
                UpdateExpression="REMOVE GSI1PK, GSI1SK SET exported_at = :now",
                ConditionExpression="late_records = :seen",
                ExpressionAttributeValues=to_item(
                    {":seen": seen, ":now": datetime.now(UTC).isoformat()}
                ),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise failure("clear late usage mark", exc) from exc
        except BotoCoreError as exc:
            raise failure("clear late usage mark", exc) from exc
        return True
