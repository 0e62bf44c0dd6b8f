"""Quarantined usage in the usage table (ports ``logic.ports.QuarantineStore`` and
``logic.operations.QuarantineDesk``): held for a person with the reason, listed while open,
closed with the resolution. Keys in ``usage_keys``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.table_access import (
    AWS_ERRORS,
    TableAdapter,
    condition_failed,
    failure,
    new_token,
    own_write,
)
from usage_meter.adapters.usage_keys import (
    OPEN_QUARANTINE,
    from_item,
    parse_quarantine_id,
    quarantine_id,
    quarantine_key,
    to_item,
)
from usage_meter.logic.operations import OperationRefused
from usage_meter.models.usage import QuarantineItem


class DynamoQuarantine(TableAdapter):
    """The quarantine: one item per (source, reason, message digest)."""

    quarantine_id = staticmethod(quarantine_id)

    def quarantine(self, item: QuarantineItem) -> bool:
        """Store the item; False when the same item was already quarantined (True when the item
        there is this call's own earlier attempt). Raises TransientFailure/PermanentFailure."""
        digest = hashlib.sha256(
            json.dumps(item.message, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        values = {
            **quarantine_key(item.source_id, f"{item.reason.value}#{digest}"),
            "entity": "quarantine",
            "source_id": item.source_id,
            "reason": item.reason.value,
            "detail": item.detail,
            "message": json.dumps(item.message, sort_keys=True, default=str),
            "state": "open",
            "quarantined_at": item.quarantined_at.astimezone(UTC).isoformat(),
            "GSI1PK": OPEN_QUARANTINE,
            "GSI1SK": f"{item.quarantined_at.astimezone(UTC).isoformat()}#{item.source_id}",
            "write_id": new_token(),
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(values),
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return own_write(exc, values["write_id"])
            raise failure("quarantine", exc) from exc
        except BotoCoreError as exc:
            raise failure("quarantine", exc) from exc
        return True

    def quarantined(self, item_id: str) -> dict[str, Any] | None:
        """The open item ``<source id>/<sort key>``, or None (no such item, or resolved)."""
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key=to_item(parse_quarantine_id(item_id)),
                ConsistentRead=True,
            ).get("Item")
        except AWS_ERRORS as exc:
            raise failure("read quarantine", exc) from exc
        values = from_item(item) if item else None
        return values if values and values.get("state") == "open" else None

    def close_quarantine(self, item_id: str, resolution: dict[str, Any]) -> None:
        """Mark an open item resolved. Raises OperationRefused when it is no longer open (someone
        else resolved it meanwhile), TransientFailure/PermanentFailure for DynamoDB errors."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_item(parse_quarantine_id(item_id)),
                UpdateExpression=(
                    "SET #state = :resolved, resolution = :resolution, GSI1PK = :closed"
                ),
                ConditionExpression="#state = :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item(
                    {
                        ":resolved": "resolved",
                        ":open": "open",
                        ":resolution": resolution,
                        ":closed": "QUARANTINE#resolved",
                    }
                ),
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise OperationRefused(f"{item_id} is no longer open (resolved meanwhile)") from exc
            raise failure("close quarantined item", exc) from exc
        except BotoCoreError as exc:
            raise failure("close quarantined item", exc) from exc

    def open_quarantine(self) -> list[dict[str, Any]]:
        """Every open item, oldest first."""
        return self._query(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues=to_item({":pk": OPEN_QUARANTINE}),
        )
