"""Reconciliation's state in the usage table (port ``logic.reconciliation.ReconcileStore``):
checkpoints per project, verdicts on sources it will not bill, uncovered transcripts. Keys in
``usage_keys``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.table_access import AWS_ERRORS, TableAdapter, condition_failed, failure
from usage_meter.adapters.usage_keys import (
    LEDGER_SK,
    VERDICT_SK,
    checkpoint_key,
    from_item,
    ledger_key,
    stored_time,
    to_item,
)
from usage_meter.models.coverage import UncoveredTranscript
from usage_meter.models.reconciliation import Checkpoint, ReconcileCounts


class DynamoReconcileStore(TableAdapter):
    """What reconciliation remembers between runs."""

    def has_usage(self, product: str, source_id: str) -> bool:
        """Whether a ledger row exists for the source (consistent read of its key only)."""
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=to_item(ledger_key(product, source_id)),
                ProjectionExpression="PK",
                ConsistentRead=True,
            )
        except AWS_ERRORS as exc:
            raise failure("read ledger", exc) from exc
        return "Item" in response

    def source_state(self, product: str, source_id: str) -> str | None:
        """``"recorded"`` (a ledger row exists), a reconciliation verdict kept for the source
        (``"not_ours"``, ``"held"``), or None when reconciliation has never seen it. One
        consistent Query on the source's partition: the ledger row and the verdict share it."""
        rows = self._query(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=to_item({":pk": ledger_key(product, source_id)["PK"]}),
            ProjectionExpression="SK, verdict",
            ConsistentRead=True,
        )
        if any(r.get("SK") == LEDGER_SK for r in rows):
            return "recorded"
        verdicts = [str(r["verdict"]) for r in rows if r.get("SK") == VERDICT_SK]
        return verdicts[0] if verdicts else None

    def source_states(self, product: str, source_ids: list[str]) -> dict[str, str]:
        """``source_state`` of many sources at once: {source id: state} for those with one (no
        entry: never seen). One consistent BatchGetItem per 50 sources (their ledger row and
        verdict keys, 100 keys a request): a 200-transcript page in 4 requests, not 200 Queries."""
        keys = [
            {"PK": ledger_key(product, source_id)["PK"], "SK": sk}
            for source_id in dict.fromkeys(source_ids)
            for sk in (LEDGER_SK, VERDICT_SK)
        ]
        states: dict[str, str] = {}
        prefix = ledger_key(product, "")["PK"]
        for item in self._batch_get(keys, "verdict", consistent=True):
            source_id = str(item["PK"]).removeprefix(prefix)
            if item["SK"] == LEDGER_SK:
                states[source_id] = "recorded"
            elif states.get(source_id) != "recorded":
                states[source_id] = str(item["verdict"])
        return states

    def remember_verdict(self, product: str, source_id: str, verdict: str, detail: str) -> None:
        """Keep what reconciliation decided about a source it will not bill (``not_ours``,
        ``held``), so later runs do not fetch it again."""
        values = {
            "PK": ledger_key(product, source_id)["PK"],
            "SK": VERDICT_SK,
            "entity": "reconcile_verdict",
            "verdict": verdict,
            "detail": detail,
            "at": datetime.now(UTC).isoformat(),
        }
        try:
            self._client.put_item(TableName=self._table, Item=to_item(values))
        except AWS_ERRORS as exc:
            raise failure("remember reconciliation verdict", exc) from exc

    def load_checkpoint(self, project: str) -> Checkpoint | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=to_item(checkpoint_key(project)), ConsistentRead=True
            ).get("Item")
        except AWS_ERRORS as exc:
            raise failure("read checkpoint", exc) from exc
        if not item:
            return None
        values = from_item(item)
        moments = {
            name: datetime.fromisoformat(str(values[name])) if values.get(name) else None
            for name in ("watermark", "pass_newest", "pass_floor")
        }
        return Checkpoint(
            horizon=datetime.fromisoformat(values["horizon"]),
            before_id=values.get("before_id"),
            counts=ReconcileCounts.from_stored(values.get("counts", {})),
            **moments,
        )

    def save_checkpoint(self, project: str, checkpoint: Checkpoint) -> None:
        values = {
            **checkpoint_key(project),
            "entity": "checkpoint",
            "horizon": checkpoint.horizon.isoformat(),
            "before_id": checkpoint.before_id,
            "counts": asdict(checkpoint.counts),
            **{
                name: moment.isoformat() if moment else None
                for name, moment in (
                    ("watermark", checkpoint.watermark),
                    ("pass_newest", checkpoint.pass_newest),
                    ("pass_floor", checkpoint.pass_floor),
                )
            },
            "saved_at": datetime.now(UTC).isoformat(),
        }
        try:
            self._client.put_item(TableName=self._table, Item=to_item(values))
        except AWS_ERRORS as exc:
            raise failure("save checkpoint", exc) from exc

    def clear_checkpoint(self, project: str) -> None:
        try:
            self._client.delete_item(TableName=self._table, Key=to_item(checkpoint_key(project)))
        except AWS_ERRORS as exc:
            raise failure("clear checkpoint", exc) from exc

    def record_uncovered(self, item: UncoveredTranscript) -> bool:
        """Store a transcript no customer is billed for, once (False if already stored)."""
        values = {
            "PK": f"COVERAGE#{item.month}",
            "SK": f"{item.project}#{item.transcript_id}",
            "entity": "uncovered",
            "transcript_id": item.transcript_id,
            "project": item.project,
            "month": item.month,
            "completed_at": stored_time(item.completed_at),
            "billable_seconds": item.billable_seconds,
            "model": item.model,
            "features": list(item.features),
            "reason": item.reason.value,
            "recorded_at": stored_time(datetime.now(UTC)),
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(values),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise failure("record uncovered transcript", exc) from exc
        except BotoCoreError as exc:
            raise failure("record uncovered transcript", exc) from exc
        return True
