"""Streaming session begins in the usage table (port ``logic.streaming_sessions.SessionStore``):
PK ``SESSION#<session id>``, SK ``BEGIN``; listed in GSI1 (``OPEN_SESSIONS#<began date>``)
while open. The record that bills a session closes it in the ledger's transaction
(``ledger_updates.close_session_update``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.ledger_updates import close_session_update
from usage_meter.adapters.table_access import (
    AWS_ERRORS,
    TableAdapter,
    condition_failed,
    failure,
    new_token,
    own_write,
)
from usage_meter.adapters.unreadable import Unreadable, readable
from usage_meter.adapters.usage_keys import from_item, session_key, to_item
from usage_meter.models.streaming import SessionBegin
from usage_meter.models.usage import RecordResult


def _begin(values: dict[str, object]) -> SessionBegin:
    return SessionBegin.model_validate(
        {k: v for k, v in values.items() if k in SessionBegin.model_fields}
    )


class DynamoSessionStore(TableAdapter):
    """Session begins: stored once, read back, listed while open, closed."""

    def put_begin(self, begin: SessionBegin) -> tuple[RecordResult, SessionBegin | None]:
        """See ``logic.streaming_sessions.SessionStore.put_begin``: (RECORDED, None) or
        (EXISTS, the stored begin). Raises TransientFailure/PermanentFailure."""
        write_id = new_token()
        values = {
            **session_key(begin.session_id),
            "entity": "session",
            "write_id": write_id,
            **json.loads(begin.model_dump_json()),
            "GSI1PK": f"OPEN_SESSIONS#{begin.began_at.astimezone(UTC).date().isoformat()}",
            "GSI1SK": f"{begin.began_at.astimezone(UTC).isoformat()}#{begin.session_id}",
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(values),
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return RecordResult.RECORDED, None
        except ClientError as exc:
            if not condition_failed(exc):
                raise failure("record session begin", exc) from exc
            if own_write(exc, write_id):
                return RecordResult.RECORDED, None
        except BotoCoreError as exc:
            raise failure("record session begin", exc) from exc
        existing = self.get_begin(begin.session_id)
        if existing is None:  # the termination came first and left a stub: fill it in, closed
            skipped = ("GSI1PK", "GSI1SK", "PK", "SK", "write_id")
            stub = {k: v for k, v in values.items() if k not in skipped and v is not None}
            names = {f"#a{i}": k for i, k in enumerate(stub)}
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=to_item(session_key(begin.session_id)),
                    UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(stub))),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=to_item(
                        {f":a{i}": v for i, v in enumerate(stub.values())}
                    ),
                )
            except AWS_ERRORS as exc:
                raise failure("fill in session begin", exc) from exc
            return RecordResult.RECORDED, None
        return RecordResult.EXISTS, existing

    def get_begin(self, session_id: str) -> SessionBegin | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=to_item(session_key(session_id)), ConsistentRead=True
            ).get("Item")
        except AWS_ERRORS as exc:
            raise failure("read session", exc) from exc
        values = from_item(item) if item else {}
        if "customer_id" not in values:
            return None
        return _begin(values)

    def open_sessions(
        self, began_before: datetime, since: datetime, unreadable: Unreadable | None = None
    ) -> list[SessionBegin]:
        """Sessions still open that began in [since, began_before): one Query per day. One that
        cannot be read goes to ``unreadable`` (with its session id) when given."""
        found: list[SessionBegin] = []
        day = since.astimezone(UTC).date()
        while day <= began_before.astimezone(UTC).date():
            rows = self._query(
                IndexName="GSI1",
                KeyConditionExpression="GSI1PK = :pk AND GSI1SK < :cutoff",
                ExpressionAttributeValues=to_item(
                    {
                        ":pk": f"OPEN_SESSIONS#{day.isoformat()}",
                        ":cutoff": began_before.astimezone(UTC).isoformat(),
                    }
                ),
            )
            found.extend(readable(_begin, rows, unreadable, "session_id"))
            day += timedelta(days=1)
        return found

    def close_session(self, session_id: str, reason: str) -> None:
        update = close_session_update(self._table, session_id, reason, datetime.now(UTC))
        try:
            self._client.update_item(**update)
        except AWS_ERRORS as exc:
            raise failure("close session", exc) from exc
