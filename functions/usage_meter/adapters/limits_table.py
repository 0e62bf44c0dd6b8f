"""Allowances, plan membership and threshold markers in the usage table (its keys live here).

- customer allowance: PK ``CUSTOMER#<customer>``, SK ``ALLOWANCE``: the customer's own set, its
  plan and a copy of the plan's set; GSI1PK ``PLAN_MEMBERS#<plan>``, GSI1SK ``<customer>`` while
  on a plan. The entitlement check reads it and the month's usage summary (usage_summary.py)
  with one BatchGetItem.
- plan allowance: PK ``PLAN#<plan>``, SK ``ALLOWANCE``.
- history: PK ``ALLOWANCE#customer#<customer>`` or ``ALLOWANCE#plan#<plan>``, SK ``V#<000001>``:
  every version, who set it, why and when (never overwritten: conditional put).
- threshold marker: PK ``CUSTOMER#<customer>``, SK
  ``THRESHOLD#<month>#<product>:<unit>#<percent 0000>``: created once by a conditional put (the
  exactly-once decision), ``pending`` until the event is published, then ``published``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.threshold_markers import (
    ThresholdMarkers,
    _failed_condition,
    _transient,
)
from usage_meter.adapters.usage_keys import customer_key as key_part
from usage_meter.adapters.usage_keys import from_item, to_item
from usage_meter.adapters.usage_summary import aggregates_from_summary, summary_key
from usage_meter.logic.errors import TransientFailure
from usage_meter.models.billing import UsageAggregate
from usage_meter.models.limits import AllowanceSet, CustomerAllowance

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ALLOWANCE_SK = "ALLOWANCE"


def customer_key(customer_id: str) -> dict[str, str]:
    return {"PK": f"CUSTOMER#{key_part(customer_id)}", "SK": ALLOWANCE_SK}


def plan_key(plan: str) -> dict[str, str]:
    return {"PK": f"PLAN#{plan}", "SK": "ALLOWANCE"}


def history_key(kind: str, name: str, version: int) -> dict[str, str]:
    return {"PK": f"ALLOWANCE#{kind}#{key_part(name)}", "SK": f"V#{version:06d}"}


def _set_json(limits: AllowanceSet | None) -> str | None:
    return None if limits is None else limits.model_dump_json()


def _set(raw: Any) -> AllowanceSet | None:
    return None if raw is None else AllowanceSet.model_validate_json(raw)


def allowance_from_item(values: dict[str, Any]) -> CustomerAllowance:
    return CustomerAllowance(
        customer_id=values["customer_id"],
        plan=values.get("plan"),
        own=_set(values.get("own")),
        own_version=int(values.get("own_version", 0)),
        plan_limits=_set(values.get("plan_limits")),
        plan_version=int(values.get("plan_version", 0)),
    )


class DynamoLimits(ThresholdMarkers):
    """Allowance and threshold storage. Reads for the check are one BatchGetItem; every change of an
    allowance is a transaction of the new current item and its history version."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        super().__init__(client, table_name)

    # -- the entitlement check's one request ------------------------------------------------------
    def entitlement_state(
        self, customer_id: str, month: str, *, consistent: bool = True
    ) -> tuple[CustomerAllowance | None, list[UsageAggregate]]:
        """The customer's allowance and its month's aggregates (from the month's summary item):
        one BatchGetItem of two keys (a retry only for keys DynamoDB left unprocessed)."""
        keys = [
            to_item(customer_key(customer_id)),
            to_item(summary_key(key_part(customer_id), month)),
        ]
        allowance: CustomerAllowance | None = None
        aggregates: list[UsageAggregate] = []
        try:
            for _ in range(5):
                answer = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": keys, "ConsistentRead": consistent}}
                )
                for raw in answer.get("Responses", {}).get(self._table, []):
                    values = from_item(raw)
                    if values.get("entity") == "allowance":
                        allowance = allowance_from_item(values)
                    elif values.get("entity") == "usage_summary":
                        aggregates = aggregates_from_summary(values)
                unprocessed: dict[str, Any] = dict(answer.get("UnprocessedKeys") or {})
                left = list((unprocessed.get(self._table) or {}).get("Keys") or [])
                if not left:
                    return allowance, aggregates
                keys = left
        except (ClientError, BotoCoreError) as exc:
            raise _transient("read the entitlement state", exc) from exc
        raise TransientFailure("DynamoDB left the entitlement state unprocessed; retry")

    # -- allowances -----------------------------------------------------------------------------
    def customer_allowance(self, customer_id: str) -> CustomerAllowance | None:
        item = self._get(customer_key(customer_id))
        return allowance_from_item(item) if item else None

    def plan_allowance(self, plan: str) -> tuple[AllowanceSet | None, int]:
        item = self._get(plan_key(plan))
        if not item:
            return None, 0
        return _set(item.get("limits")), int(item["version"])

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=to_item(key), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise _transient("read an allowance", exc) from exc
        return from_item(item) if item else None

    def _history_put(self, kind: str, name: str, version: int, change: dict[str, Any]) -> Any:
        return {
            "Put": {
                "TableName": self._table,
                "Item": to_item(
                    {
                        **history_key(kind, name, version),
                        "entity": "allowance_version",
                        "version": version,
                        **{k: v for k, v in change.items() if v is not None},
                    }
                ),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    def _transact(self, items: list[Any], action: str) -> bool:
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise _transient(action, exc) from exc
        except BotoCoreError as exc:
            raise _transient(action, exc) from exc
        return True

    def put_customer_change(
        self,
        customer_id: str,
        *,
        expected_version: int,
        own: AllowanceSet | None,
        plan: str | None,
        plan_limits: AllowanceSet | None,
        plan_version: int,
        change: dict[str, Any],
    ) -> bool:
        """Write version ``expected_version + 1`` of the customer's allowance (own set and plan)
        with its history entry; False when another change got there first."""
        version = expected_version + 1
        values: dict[str, Any] = {
            "entity": "allowance",
            "customer_id": customer_id,
            "own_version": version,
            "plan_version": plan_version,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        optional = {
            "own": _set_json(own),
            "plan": plan,
            "plan_limits": _set_json(plan_limits),
            "GSI1PK": f"PLAN_MEMBERS#{plan}" if plan else None,
            "GSI1SK": customer_id if plan else None,
        }
        values.update({k: v for k, v in optional.items() if v is not None})
        removed = [k for k, v in optional.items() if v is None]
        names = {f"#a{i}": k for i, k in enumerate([*values, *removed])}
        sets = ", ".join(f"#a{i} = :a{i}" for i in range(len(values)))
        removes = ", ".join(f"#a{i}" for i in range(len(values), len(names)))
        update = {
            "Update": {
                "TableName": self._table,
                "Key": to_item(customer_key(customer_id)),
                "UpdateExpression": f"SET {sets}" + (f" REMOVE {removes}" if removes else ""),
                "ConditionExpression": "attribute_not_exists(own_version) OR own_version = :prev",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": to_item(
                    {":prev": expected_version}
                    | {f":a{i}": v for i, v in enumerate(values.values())}
                ),
            }
        }
        change = {**change, "customer_id": customer_id, "own": _set_json(own), "plan": plan}
        history = self._history_put("customer", customer_id, version, change)
        return self._transact([history, update], "change a customer allowance")

    def put_plan_change(
        self, plan: str, *, expected_version: int, limits: AllowanceSet, change: dict[str, Any]
    ) -> bool:
        version = expected_version + 1
        update = {
            "Update": {
                "TableName": self._table,
                "Key": to_item(plan_key(plan)),
                "UpdateExpression": "SET #e = :e, #p = :p, #l = :l, #v = :v, #u = :now",
                "ConditionExpression": "attribute_not_exists(#v) OR #v = :prev",
                "ExpressionAttributeNames": {
                    "#e": "entity",
                    "#p": "plan",
                    "#l": "limits",
                    "#v": "version",
                    "#u": "updated_at",
                },
                "ExpressionAttributeValues": to_item(
                    {
                        ":e": "plan_allowance",
                        ":p": plan,
                        ":l": limits.model_dump_json(),
                        ":v": version,
                        ":prev": expected_version,
                        ":now": datetime.now(UTC).isoformat(),
                    }
                ),
            }
        }
        change = {**change, "plan": plan, "limits": limits.model_dump_json()}
        history = self._history_put("plan", plan, version, change)
        return self._transact([history, update], "change a plan allowance")

    def plan_members(self, plan: str) -> list[str]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": to_item({":pk": f"PLAN_MEMBERS#{plan}"}),
            "ProjectionExpression": "customer_id",
        }
        members: list[str] = []
        try:
            for page in self._client.get_paginator("query").paginate(**kwargs):
                members.extend(str(from_item(i)["customer_id"]) for i in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise _transient("list plan members", exc) from exc
        return members

    def refresh_plan_copy(
        self, customer_id: str, plan: str, limits: AllowanceSet, version: int
    ) -> bool:
        """Bring a member's copy of its plan's set to ``version`` (never backwards); False when
        the customer is no longer on the plan or already has that version."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_item(customer_key(customer_id)),
                UpdateExpression="SET plan_limits = :l, plan_version = :v",
                ConditionExpression="#plan = :p AND plan_version < :v",
                ExpressionAttributeNames={"#plan": "plan"},
                ExpressionAttributeValues=to_item(
                    {":l": limits.model_dump_json(), ":v": version, ":p": plan}
                ),
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise _transient("refresh a plan copy", exc) from exc
        except BotoCoreError as exc:
            raise _transient("refresh a plan copy", exc) from exc
        return True

    def allowance_history(self, kind: str, name: str) -> list[dict[str, Any]]:
        try:
            items = self._client.query(
                TableName=self._table,
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues=to_item({":pk": f"ALLOWANCE#{kind}#{key_part(name)}"}),
                ConsistentRead=True,
            ).get("Items", [])
        except (ClientError, BotoCoreError) as exc:
            raise _transient("read allowance history", exc) from exc
        history = []
        for raw in items:
            values = from_item(raw)
            history.append(
                {k: v for k, v in values.items() if k not in ("PK", "SK", "entity")}
                | {"version": int(values["version"])}
            )
        return history
