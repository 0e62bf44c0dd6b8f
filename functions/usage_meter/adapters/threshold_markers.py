"""Threshold markers in the usage table: PK ``CUSTOMER#<customer>``, SK
``THRESHOLD#<month>#<product>:<unit>#<percent 0000>``. A marker is created once by a conditional
put (the exactly-once decision, see logic/thresholds.py), ``pending`` until its event is
published, then ``published``; ``claimed_at`` lets a later evaluation take over a stale claim.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.usage_keys import customer_key, from_item, to_item
from usage_meter.logic.errors import TransientFailure
from usage_meter.models.limits import ThresholdEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PENDING, PUBLISHED = "pending", "published"


def marker_key(customer_id: str, month: str, limit_key: str, percent: int) -> dict[str, str]:
    return {
        "PK": f"CUSTOMER#{customer_key(customer_id)}",
        "SK": f"THRESHOLD#{month}#{limit_key}#{percent:04d}",
    }


def _failed_condition(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


def _transient(action: str, exc: Exception) -> TransientFailure:
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    return TransientFailure(f"DynamoDB could not {action}: {code or type(exc).__name__}")


class ThresholdMarkers:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- threshold markers ------------------------------------------------------------------------
    def threshold_states(self, customer_id: str, month: str) -> dict[str, str]:
        """``<product>:<unit>#<percent>`` -> ``pending`` | ``published`` for the month."""
        prefix = f"THRESHOLD#{month}#"
        try:
            items = self._client.query(
                TableName=self._table,
                KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
                ProjectionExpression="SK, #state",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item(
                    {":pk": f"CUSTOMER#{customer_key(customer_id)}", ":prefix": prefix}
                ),
                ConsistentRead=True,
            ).get("Items", [])
        except (ClientError, BotoCoreError) as exc:
            raise _transient("read threshold markers", exc) from exc
        states = {}
        for raw in items:
            values = from_item(raw)
            limit_key, _, percent = str(values["SK"]).removeprefix(prefix).partition("#")
            states[f"{limit_key}#{int(percent)}"] = str(values["state"])
        return states

    def claim_threshold(
        self, event: ThresholdEvent, stale_before: datetime
    ) -> ThresholdEvent | None:
        """The exactly-once decision. Creates the marker if absent and returns ``event``; returns
        the marker's stored event if it is still pending and its claim is older than
        ``stale_before`` (a publisher died or failed); otherwise None (someone else has it)."""
        key = marker_key(
            event.customer_id, event.month, f"{event.product}:{event.unit}", event.threshold_percent
        )
        now = datetime.now(UTC)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(
                    {
                        **key,
                        "entity": "threshold",
                        "state": PENDING,
                        "claimed_at": int(now.timestamp()),
                        "event": event.model_dump_json(),
                        "customer_id": event.customer_id,
                        "month": event.month,
                    }
                ),
                ConditionExpression="attribute_not_exists(PK)",
            )
            return event
        except ClientError as exc:
            if not _failed_condition(exc):
                raise _transient("claim a threshold", exc) from exc
        except BotoCoreError as exc:
            raise _transient("claim a threshold", exc) from exc
        try:
            stored = self._client.update_item(
                TableName=self._table,
                Key=to_item(key),
                UpdateExpression="SET claimed_at = :now",
                ConditionExpression="#state = :pending AND claimed_at < :stale",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item(
                    {
                        ":now": int(now.timestamp()),
                        ":pending": PENDING,
                        ":stale": int(stale_before.timestamp()),
                    }
                ),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if _failed_condition(exc):
                return None
            raise _transient("re-claim a threshold", exc) from exc
        except BotoCoreError as exc:
            raise _transient("re-claim a threshold", exc) from exc
        return ThresholdEvent.model_validate_json(str(from_item(stored)["event"]))

    def _marker_update(
        self, event: ThresholdEvent, expression: str, values: dict[str, Any]
    ) -> None:
        key = marker_key(
            event.customer_id, event.month, f"{event.product}:{event.unit}", event.threshold_percent
        )
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_item(key),
                UpdateExpression=expression,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item(values),
            )
        except (ClientError, BotoCoreError) as exc:
            raise _transient("update a threshold marker", exc) from exc

    def mark_published(self, event: ThresholdEvent) -> None:
        self._marker_update(
            event,
            "SET #state = :published, published_at = :now",
            {":published": PUBLISHED, ":now": datetime.now(UTC).isoformat()},
        )

    def release_claim(self, event: ThresholdEvent) -> None:
        """After a failed publish: let the next evaluation re-claim at once."""
        self._marker_update(
            event, "SET claimed_at = :zero, #state = :pending", {":zero": 0, ":pending": PENDING}
        )
