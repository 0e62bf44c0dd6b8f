"""The audit trail in the usage table (port ``logic.ports.AuditTrail``): who did what, when, why,
with what outcome; PK ``AUDIT#<month>``, SK ``<time>#<random>``."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC
from typing import Any

from usage_meter.adapters.table_access import AWS_ERRORS, TableAdapter, failure
from usage_meter.adapters.usage_keys import to_item
from usage_meter.logic.operations import AuditEntry
from usage_meter.models.months import usage_month


class DynamoAuditLog(TableAdapter):
    """Append-only audit entries, read back a month at a time."""

    def audit(self, entry: AuditEntry) -> None:
        """Store one entry. Raises TransientFailure/PermanentFailure."""
        at = entry.at.astimezone(UTC)
        values = {
            "PK": f"AUDIT#{usage_month(at)}",
            "SK": f"{at.isoformat()}#{uuid.uuid4().hex[:12]}",
            "entity": "audit",
            **{k: v for k, v in asdict(entry).items() if k != "at"},
            "at": at.isoformat(),
        }
        try:
            self._client.put_item(TableName=self._table, Item=to_item(values))
        except AWS_ERRORS as exc:
            raise failure("write audit entry", exc) from exc

    def audit_log(self, month: str) -> list[dict[str, Any]]:
        """The month's (YYYY-MM) entries in time order."""
        return self._query(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=to_item({":pk": f"AUDIT#{month}"}),
        )
