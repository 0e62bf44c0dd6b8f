"""The usage table (single-table DynamoDB design). The only module that knows its keys.

- ledger row:  PK ``SOURCE#<product>#<source id>``, SK ``LEDGER``; billable rows only (sparse index
  ``LedgerByMonth``, KEYS_ONLY): LMPK ``LEDGER#<month>#<shard 00-15 of the source id>``,
  LMSK ``<customer>#<billable seconds>[#<input tokens>#<output tokens>]`` (the key is all the
  export's ledger check reads); every row (billable and failed) also in GSI1 for line items:
  GSI1PK ``LEDGER#<month>#<shard 00-15 of the customer>``, GSI1SK ``<customer>#<product>#<source>``.
- session begin: PK ``SESSION#<session id>``, SK ``BEGIN``; while open (sparse index):
  GSI1PK ``OPEN_SESSIONS#<began date>``, GSI1SK ``<began_at>#<session id>``.
- aggregate:   PK ``CUSTOMER#<customer>``, SK ``MONTH#<month>#<product>#<project>#<model>#<dims>``;
  GSI1PK ``MONTH#<month>``, GSI1SK ``CUSTOMER#<customer>#<product>#<project>#<model>#<dims>``.
- reconciliation checkpoint: PK ``RECONCILE#<project>``, SK ``CHECKPOINT``.
- audit entry: PK ``AUDIT#<month>``, SK ``<time>#<random>`` (who, what, why, outcome).
- uncovered transcript (coverage report): PK ``COVERAGE#<month>``, SK ``<project>#<transcript>``.
- reconciliation verdict: PK ``SOURCE#async#<transcript id>``, SK ``RECONCILED`` (not ours, held).
- late usage mark: PK ``EXPORT#<month>``, SK ``LATE`` (``late_records``); while pending:
  GSI1PK ``EXPORT_LATE``, GSI1SK ``<month>``. Written in the same transaction as billable usage
  recorded into a month that has ended (only then: no hot key), so a published export of that
  month is republished with the change (``logic.monthly_export.export_late_usage``).
- quarantine:  PK ``QUARANTINE#<source id>``, SK ``<reason>#<digest of the message>``;
  GSI1PK ``QUARANTINE#open``, GSI1SK ``<time>#<source id>``.

- Retries that already committed: boto3 retries a call whose answer was lost, so every write is
  idempotent for its caller. Transactions carry a ``ClientRequestToken`` (one per call, reused by
  the SDK's retries: DynamoDB applies it once and answers the retry with success). A conditional
  put carries a ``write_id`` (one per call) and asks for the item on a failed condition
  (``ReturnValuesOnConditionCheckFailure=ALL_OLD``): when the item there is its own write, the
  retry's outcome is the first attempt's (recorded, quarantined), never a duplicate or conflict.
- ``<customer>`` in keys is ``customer_key(customer_id)`` (percent-encoded; see there). Key parts
  are bounded in bytes (``bounded_key_part``): an oversized customer or breakdown is a fixed-length
  digest in the key, its readable value in the item's attributes, so whatever is accepted fits
  DynamoDB's key limits.
- Ledger rows are keyed by the usage source alone, so "billed at most once, forever" is one
  conditional put; there is no TTL on them.
- A customer's usage for a month is one Query on its partition (PK + SK prefix); the export reads a
  month's aggregates with one Query on GSI1. Neither ever Scans, and both grow with customers x
  breakdowns, not with events. The export's ledger check reads a month's billable ledger rows from
  the 16 shards of ``LedgerByMonth`` (``adapters/ledger_index.py``), one page at a time.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import random
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.unreadable import Unreadable, readable
from usage_meter.adapters.usage_summary import summary_updates
from usage_meter.logic.errors import (
    STORAGE_REFUSED,
    PermanentFailure,
    TransientFailure,
    UnstorableUsage,
)
from usage_meter.logic.operations import AuditEntry, OperationRefused
from usage_meter.models.billing import LedgerTotals, UsageAggregate
from usage_meter.models.coverage import UncoveredReason, UncoveredTranscript
from usage_meter.models.reconciliation import Checkpoint, ReconcileCounts
from usage_meter.models.streaming import SessionBegin
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

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
LEDGER_SK = "LEDGER"
VERDICT_SK = "RECONCILED"  # reconciliation's verdict on a source it does not bill
ADDON_PREFIX = "addon:"
LATE_INDEX_KEY = "EXPORT_LATE"


def _ended(month: str, now: datetime) -> bool:
    """Whether ``month`` (YYYY-MM) is before the current UTC month."""
    return month < now.astimezone(UTC).strftime("%Y-%m")


def _component(value: str) -> str:
    return quote(value, safe="._:@-")


# DynamoDB limits a partition key to 2,048 bytes and a sort key to 1,024 (index keys alike; AWS
# DynamoDB Developer Guide, "Quotas"), and percent-encoding turns one non-ASCII character into up
# to 12 bytes. A key part longer than its budget is stored as a fixed-length digest instead; the
# readable value is always in the item's attributes (customer_id, project, model, dimensions).
# "%%" never appears in percent-encoded text, so a digest cannot equal any readable key part.
CUSTOMER_KEY_MAX_BYTES = 256
BREAKDOWN_KEY_MAX_BYTES = 640  # MONTH#<month># + this, and CUSTOMER#<256>#+ this, stay < 1,024
DIGEST_PREFIX = "%%sha256:"


def bounded_key_part(encoded: str, max_bytes: int) -> str:
    """``encoded`` (already percent-encoded) when it fits ``max_bytes``, else ``%%sha256:`` and 40
    hex digits of its SHA-256 (49 bytes): the same input always gives the same key part."""
    if len(encoded.encode()) <= max_bytes:
        return encoded
    return DIGEST_PREFIX + hashlib.sha256(encoded.encode()).hexdigest()[:40]


def customer_key(customer_id: str) -> str:
    """A customer id as it appears inside keys: percent-encoded (``acme corp`` -> ``acme%20corp``,
    ``müller`` -> ``m%C3%BCller``), so any valid id is safe next to ``#`` separators; ids of
    ASCII letters, digits and ``._:@-`` are unchanged; bounded to ``CUSTOMER_KEY_MAX_BYTES``.
    The one place keys spell a customer."""
    return bounded_key_part(_component(customer_id), CUSTOMER_KEY_MAX_BYTES)


def aggregate_key(customer_id: str, month: str, breakdown: str) -> dict[str, str]:
    return {"PK": f"CUSTOMER#{customer_key(customer_id)}", "SK": f"MONTH#{month}#{breakdown}"}


def dimensions_key(dimensions: dict[str, str]) -> str:
    return _component(urlencode(sorted(dimensions.items()))) if dimensions else "-"


def ledger_key(product: str, source_id: str) -> dict[str, str]:
    """Transcript ids and streaming session ids are separate namespaces."""
    return {"PK": f"SOURCE#{product}#{source_id}", "SK": LEDGER_SK}


LEDGER_SHARDS = 16
LEDGER_INDEX = "LedgerByMonth"
# In-process retries of a transaction cancelled for a TransactionConflict: 16 attempts, full
# jitter, 20 ms doubling to at most 2 s (~10 s expected at worst, 20 s at the very worst), well
# inside the processor's 120 s timeout for a batch handled side by side.
CONFLICT_ATTEMPTS = 16
CONFLICT_BASE_S = 0.02
CONFLICT_CAP_S = 2.0


def ledger_shard(source_id: str) -> int:
    """Spreads a month's ledger rows evenly over 16 index partitions by usage source (one big
    customer cannot make a hot or long shard), so the export reads the month in 16 Queries that
    run side by side."""
    return zlib.crc32(source_id.encode()) % LEDGER_SHARDS


def customer_ledger_shard(customer_id: str) -> int:
    """The GSI1 shard of a customer's ledger rows (``LEDGER#<month>#<shard>``): a customer's rows
    of a month sit in one shard, in (customer, product, source) order, so its line items are one
    Query and the month's line items are 16 Queries merged in customer order."""
    return zlib.crc32(customer_id.encode()) % LEDGER_SHARDS


def ledger_line_item_keys(record: UsageRecord) -> dict[str, str]:
    """The GSI1 keys of a ledger row (billable and failed): what the line items read."""
    return {
        "GSI1PK": f"LEDGER#{record.month}#{customer_ledger_shard(record.customer_id):02d}",
        "GSI1SK": f"{customer_key(record.customer_id)}#{record.product}#{record.source_id}",
    }


def ledger_partition(month: str, shard: int) -> str:
    return f"LEDGER#{month}#{shard:02d}"


def ledger_index_keys(record: UsageRecord) -> dict[str, str]:
    """The ``LedgerByMonth`` keys of a billable ledger row (none for a failed one: sparse)."""
    if record.status is not UsageStatus.BILLABLE:
        return {}
    return {
        "LMPK": ledger_partition(record.month, ledger_shard(record.source_id)),
        "LMSK": f"{customer_key(record.customer_id)}#{record.billable_seconds:f}"
        + (f"#{record.input_tokens}#{record.output_tokens}" if _tokens(record) != (0, 0) else ""),
    }


def parse_ledger_index_key(value: str) -> tuple[str, str, int, int]:
    """(customer id, billable seconds as a decimal string, input tokens, output tokens) from an
    ``LMSK`` value (``<customer>#<seconds>`` or ``<customer>#<seconds>#<in>#<out>``): the customer
    key part percent-decoded (it never contains ``#``). A customer id too long for a key part
    stays in its digest form (``%%sha256:...``): the check then reports it as a mismatch, loudly."""
    key, seconds, *tokens = value.split("#")
    input_tokens, output_tokens = (int(tokens[0]), int(tokens[1])) if tokens else (0, 0)
    customer = key if key.startswith(DIGEST_PREFIX) else unquote(key)
    return customer, seconds, input_tokens, output_tokens


def checkpoint_key(project: str) -> dict[str, str]:
    return {"PK": f"RECONCILE#{project}", "SK": "CHECKPOINT"}


def session_key(session_id: str) -> dict[str, str]:
    return {"PK": f"SESSION#{session_id}", "SK": "BEGIN"}


ESTIMATED_SUFFIX = "estimated"


def readable_breakdown(record: UsageRecord) -> str:
    """product#project#model#dimensions, plus ``#region=<r>`` for usage priced by region (LLM
    Gateway) and ``#estimated`` for estimated usage (an orphan estimate is its own aggregate and
    export row; replacing it moves it to the measured one), each part percent-encoded, never
    digested (the usage summary's attribute names use it). Keys of usage with no region are
    unchanged from before regions existed."""
    parts = [
        record.product,
        _component(record.project),
        _component(record.model),
        dimensions_key(record.dimensions),
    ]
    if record.region:
        parts.append(f"region={_component(record.region)}")
    return "#".join([*parts, ESTIMATED_SUFFIX] if record.estimated else parts)


def aggregate_breakdown(record: UsageRecord) -> str:
    """The readable breakdown as a key part bounded to ``BREAKDOWN_KEY_MAX_BYTES``."""
    return bounded_key_part(readable_breakdown(record), BREAKDOWN_KEY_MAX_BYTES)


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def _stored_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def ledger_item(record: UsageRecord, recorded_at: datetime) -> dict[str, Any]:
    values: dict[str, Any] = record.model_dump(mode="python")
    values.update(
        ledger_key(record.product, record.source_id),
        entity="ledger",
        status=record.status.value,
        features=list(record.features),
        occurred_at=_stored_time(record.occurred_at),
        recorded_at=_stored_time(recorded_at),
        **ledger_index_keys(record),
        **ledger_line_item_keys(record),
    )
    return values


def aggregate_from_item(values: dict[str, Any]) -> UsageAggregate:
    addons = {
        k.removeprefix(ADDON_PREFIX): Decimal(v)
        for k, v in values.items()
        if k.startswith(ADDON_PREFIX) and Decimal(v) != 0  # 0: moved away by a replacement
    }
    fields = {k: v for k, v in values.items() if k in UsageAggregate.model_fields}
    return UsageAggregate.model_validate({**fields, "addon_seconds": addons})


def _begin_from_item(values: dict[str, Any]) -> SessionBegin:
    return SessionBegin.model_validate(
        {k: v for k, v in values.items() if k in SessionBegin.model_fields}
    )


def record_from_item(values: dict[str, Any]) -> UsageRecord:
    fields = {k: v for k, v in values.items() if k in UsageRecord.model_fields}
    fields["features"] = tuple(fields.get("features", ()))
    fields["audio_channels"] = int(fields.get("audio_channels", 1))
    return UsageRecord.model_validate(fields)


UsageChanged = Callable[[str, str], object]
SummaryChange = tuple[UsageRecord, int, Decimal, dict[str, Decimal], tuple[int, int]]
"""(record, count delta, seconds delta, add-on seconds deltas, (input, output) token deltas)"""


def _tokens(record: UsageRecord) -> tuple[int, int]:
    return record.input_tokens, record.output_tokens


class DynamoUsageLedger:
    """``on_usage_changed(customer_id, month)`` runs after every write that changed (or, for a
    duplicate, may have changed earlier) a customer's billable usage: the threshold watcher.
    It runs after the transaction; if it raises, so does the write, and the caller's retry finds
    a duplicate and runs it again.

    ``ledger_workers`` and ``client_factory`` (a fresh client per worker process) only matter to
    the export's ledger check (``month_ledger_totals``)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        on_usage_changed: UsageChanged | None = None,
        *,
        ledger_workers: int = 1,
        client_factory: Callable[[], DynamoDBClient] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._on_usage_changed = on_usage_changed
        self._ledger_workers = ledger_workers
        self._client_factory = client_factory
        self._sleep = sleep

    def _usage_changed(self, record: UsageRecord) -> None:
        if self._on_usage_changed is not None and record.status is UsageStatus.BILLABLE:
            self._on_usage_changed(record.customer_id, record.month)

    def usage_confirmed(self, record: UsageRecord) -> None:
        """See ``logic.ports.UsageLedger.usage_confirmed``."""
        self._usage_changed(record)

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> None:
        """TransactWriteItems, retried here when DynamoDB cancels it for a TransactionConflict
        (another transaction on the same item at the same moment, e.g. a busy customer's
        aggregate): up to CONFLICT_ATTEMPTS attempts with full-jitter exponential backoff, so a
        conflict is not handed back to SQS (its 20 s+ backoff and maxReceiveCount). Other errors,
        and the last conflict, are raised as botocore raised them."""
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                # a new token per attempt: a cancelled transaction wrote nothing
                self._client.transact_write_items(TransactItems=items, ClientRequestToken=_token())
                return
            except ClientError as exc:
                if attempt + 1 == CONFLICT_ATTEMPTS or not _transaction_conflict(exc):
                    raise
            backoff = min(CONFLICT_CAP_S, CONFLICT_BASE_S * 2**attempt)
            self._sleep(random.uniform(0, backoff))  # noqa: S311 - jitter, not a secret

    # -- writes ---------------------------------------------------------------------------------
    def record(self, record: UsageRecord) -> RecordOutcome:
        now = datetime.now(UTC)
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _to_item(ledger_item(record, now)),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        ]
        if record.status is UsageStatus.BILLABLE:
            items.append({"Update": self._aggregate_update(record, now)})
            items += self._summary(
                (record, 1, record.billable_seconds, record.addon_seconds(), _tokens(record))
            )
            if _ended(record.month, now):
                items.append({"Update": self._late_mark(record.month, now)})
        if record.product == "streaming":
            items.append(
                {"Update": self._close_session_update(record.source_id, record.origin, now)}
            )
        try:
            self._transact(items)
        except ClientError as exc:
            _raise_if_unstorable(exc)
            if not _ledger_row_exists(exc):
                raise _failure("record usage", exc) from exc
        except BotoCoreError as exc:
            raise _failure("record usage", exc) from exc
        else:
            self._usage_changed(record)
            return RecordOutcome(result=RecordResult.RECORDED)
        existing = self.get_record(record.product, record.source_id)
        if existing is None:  # pragma: no cover - the row existed a moment ago and is never deleted
            raise TransientFailure("ledger row vanished after a conditional check failure")
        same = existing.same_facts_as(record)
        if same:
            self._usage_changed(existing)
        return RecordOutcome(
            result=RecordResult.DUPLICATE if same else RecordResult.CONFLICT, existing=existing
        )

    def _aggregate_update(
        self,
        record: UsageRecord,
        now: datetime,
        count: int = 1,
        seconds: Decimal | None = None,
        addon_seconds: dict[str, Decimal] | None = None,
        *,
        tokens: tuple[int, int] | None = None,
    ) -> Any:
        """ADD ``count``, ``seconds``, ``tokens`` (input, output) and ``addon_seconds`` (default:
        the record's) to the record's aggregate."""
        seconds = record.billable_seconds if seconds is None else seconds
        tokens = (record.input_tokens, record.output_tokens) if tokens is None else tokens
        addon_seconds = record.addon_seconds() if addon_seconds is None else addon_seconds
        breakdown = aggregate_breakdown(record)
        attributes = {
            "entity": "aggregate",
            "customer_id": record.customer_id,
            "month": record.month,
            "product": record.product,
            "project": record.project,
            "model": record.model,
            "dimensions": record.dimensions,
            "estimated": record.estimated,
            "region": record.region,
            "GSI1PK": f"MONTH#{record.month}",
            "GSI1SK": f"CUSTOMER#{customer_key(record.customer_id)}#{breakdown}",
            "updated_at": now.isoformat(),
        }
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        values = {f":a{i}": value for i, value in enumerate(attributes.values())}
        assignments = ", ".join(f"#a{i} = :a{i}" for i in range(len(attributes)))
        # Seconds per add-on (e.g. "addon:speaker_labels"), so the export can price them.
        addons = {f"#f{i}": f"{ADDON_PREFIX}{f}" for i, f in enumerate(addon_seconds)}
        names.update(addons)
        values.update({f":f{i}": value for i, value in enumerate(addon_seconds.values())})
        additions = "".join(f", #f{i} :f{i}" for i in range(len(addons)))
        return {
            "TableName": self._table,
            "Key": _to_item(aggregate_key(record.customer_id, record.month, breakdown)),
            "UpdateExpression": (
                "ADD usage_count :one, billable_seconds :seconds, input_tokens :in, "
                f"output_tokens :out{additions} SET {assignments}"
            ),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _to_item(
                {
                    ":one": count,
                    ":seconds": seconds,
                    ":in": tokens[0],
                    ":out": tokens[1],
                    **values,
                }
            ),
        }

    def _summary(self, *changes: SummaryChange) -> list[Any]:
        """The customer-month summary's share of a write: the same count, seconds and add-on
        seconds the aggregates get (see usage_summary.py)."""
        return summary_updates(
            self._table,
            [
                (
                    r.customer_id,
                    customer_key(r.customer_id),
                    r.month,
                    readable_breakdown(r),
                    addons,
                    count,
                    seconds,
                    tokens,
                )
                for r, count, seconds, addons, tokens in changes
            ],
        )

    def _late_mark(self, month: str, now: datetime) -> Any:
        """Mark an ended month as changed since its export (see the module docstring)."""
        return {
            "TableName": self._table,
            "Key": _to_item({"PK": f"EXPORT#{month}", "SK": "LATE"}),
            "UpdateExpression": (
                "ADD late_records :one SET entity = :entity, #m = :month, "
                "GSI1PK = :pending, GSI1SK = :month, marked_at = :now"
            ),
            "ExpressionAttributeNames": {"#m": "month"},
            "ExpressionAttributeValues": _to_item(
                {
                    ":one": 1,
                    ":entity": "late_usage",
                    ":month": month,
                    ":pending": LATE_INDEX_KEY,
                    ":now": now.isoformat(),
                }
            ),
        }

    def late_months(self) -> list[tuple[str, int]]:
        """Months marked as changed after they ended: (month, marks seen), oldest first."""
        rows = self._query(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pending",
            ExpressionAttributeValues=_to_item({":pending": LATE_INDEX_KEY}),
        )
        return [(str(r["month"]), int(r["late_records"])) for r in rows]

    def clear_late_month(self, month: str, seen: int) -> bool:
        """Take ``month`` out of the pending index if no mark came after ``seen`` (False: one did,
        it stays pending for the next run)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_to_item({"PK": f"EXPORT#{month}", "SK": "LATE"}),
                UpdateExpression="REMOVE GSI1PK, GSI1SK SET exported_at = :now",
                ConditionExpression="late_records = :seen",
                ExpressionAttributeValues=_to_item(
                    {":seen": seen, ":now": datetime.now(UTC).isoformat()}
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _failure("clear late usage mark", exc) from exc
        except BotoCoreError as exc:
            raise _failure("clear late usage mark", exc) from exc
        return True

    # -- streaming sessions ---------------------------------------------------------------------
    def _close_session_update(self, session_id: str, reason: str, now: datetime) -> Any:
        """Take a session out of the open-sessions index (creates a stub if no begin came)."""
        return {
            "TableName": self._table,
            "Key": _to_item(session_key(session_id)),
            "UpdateExpression": "REMOVE GSI1PK, GSI1SK SET closed_by = :reason, closed_at = :now",
            "ExpressionAttributeValues": _to_item({":reason": reason, ":now": now.isoformat()}),
        }

    def put_begin(self, begin: SessionBegin) -> tuple[RecordResult, SessionBegin | None]:
        write_id = _token()
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
                Item=_to_item(values),
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return RecordResult.RECORDED, None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _failure("record session begin", exc) from exc
            if _own_write(exc, write_id):
                return RecordResult.RECORDED, None
        except BotoCoreError as exc:
            raise _failure("record session begin", exc) from exc
        existing = self.get_begin(begin.session_id)
        if existing is None:  # the termination came first and left a stub: fill it in, closed
            skipped = ("GSI1PK", "GSI1SK", "PK", "SK", "write_id")
            stub = {k: v for k, v in values.items() if k not in skipped and v is not None}
            names = {f"#a{i}": k for i, k in enumerate(stub)}
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=_to_item(session_key(begin.session_id)),
                    UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(stub))),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=_to_item(
                        {f":a{i}": v for i, v in enumerate(stub.values())}
                    ),
                )
            except (ClientError, BotoCoreError) as exc:
                raise _failure("fill in session begin", exc) from exc
            return RecordResult.RECORDED, None
        same = (existing.customer_id, existing.project) == (begin.customer_id, begin.project)
        return (RecordResult.DUPLICATE if same else RecordResult.CONFLICT), existing

    def get_begin(self, session_id: str) -> SessionBegin | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=_to_item(session_key(session_id)), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise _failure("read session", exc) from exc
        values = _from_item(item) if item else {}
        if "customer_id" not in values:
            return None
        return SessionBegin.model_validate(
            {k: v for k, v in values.items() if k in SessionBegin.model_fields}
        )

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
                ExpressionAttributeValues=_to_item(
                    {
                        ":pk": f"OPEN_SESSIONS#{day.isoformat()}",
                        ":cutoff": began_before.astimezone(UTC).isoformat(),
                    }
                ),
            )
            found.extend(readable(_begin_from_item, rows, unreadable, "session_id"))
            day += timedelta(days=1)
        return found

    def close_session(self, session_id: str, reason: str) -> None:
        update = self._close_session_update(session_id, reason, datetime.now(UTC))
        try:
            self._client.update_item(**update)
        except (ClientError, BotoCoreError) as exc:
            raise _failure("close session", exc) from exc

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
                    "Item": _to_item(ledger_item(replacement, now)),
                    "ConditionExpression": "occurred_at = :occurred AND estimated = :estimated",
                    "ExpressionAttributeValues": _to_item(
                        {
                            ":occurred": _stored_time(existing.occurred_at),
                            ":estimated": existing.estimated,
                        }
                    ),
                }
            }
        ]
        billable = UsageStatus.BILLABLE
        same_aggregate = (existing.month, aggregate_breakdown(existing)) == (
            replacement.month,
            aggregate_breakdown(replacement),
        )
        if same_aggregate and existing.status is billable and replacement.status is billable:
            # One item may appear once per transaction: a single ADD of the difference.
            delta = replacement.billable_seconds - existing.billable_seconds
            before, after = existing.addon_seconds(), replacement.addon_seconds()
            addon_delta = {
                name: after.get(name, Decimal(0)) - before.get(name, Decimal(0))
                for name in sorted(before.keys() | after.keys())
            }
            token_delta = (
                replacement.input_tokens - existing.input_tokens,
                replacement.output_tokens - existing.output_tokens,
            )
            items.append(
                {
                    "Update": self._aggregate_update(
                        replacement, now, 0, delta, addon_delta, tokens=token_delta
                    )
                }
            )
            items += self._summary((replacement, 0, delta, addon_delta, token_delta))
        else:
            if existing.status is billable:
                negated = {name: -value for name, value in existing.addon_seconds().items()}
                items.append(
                    {
                        "Update": self._aggregate_update(
                            existing,
                            now,
                            -1,
                            -existing.billable_seconds,
                            negated,
                            tokens=(-existing.input_tokens, -existing.output_tokens),
                        )
                    }
                )
            if replacement.status is billable:
                items.append({"Update": self._aggregate_update(replacement, now)})
            moved = []
            if existing.status is billable:
                negated = {name: -value for name, value in existing.addon_seconds().items()}
                moved.append(
                    (
                        existing,
                        -1,
                        -existing.billable_seconds,
                        negated,
                        (-existing.input_tokens, -existing.output_tokens),
                    )
                )
            if replacement.status is billable:
                moved.append(
                    (
                        replacement,
                        1,
                        replacement.billable_seconds,
                        replacement.addon_seconds(),
                        _tokens(replacement),
                    )
                )
            items += self._summary(*moved)
        touched = {r.month for r in (existing, replacement) if r.status is billable}
        items.extend({"Update": self._late_mark(m, now)} for m in sorted(touched) if _ended(m, now))
        try:
            self._transact(items)
        except ClientError as exc:
            _raise_if_unstorable(exc)
            if _ledger_row_exists(exc):
                return False
            raise _failure("replace ledger row", exc) from exc
        except BotoCoreError as exc:
            raise _failure("replace ledger row", exc) from exc
        if existing.status is billable and not same_aggregate:
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
                Key=_to_item(key),
                ConditionExpression="usage_count = :zero AND billable_seconds = :zero",
                ExpressionAttributeValues=_to_item({":zero": 0}),
            )
        except (ClientError, BotoCoreError):
            return

    # -- reconciliation ---------------------------------------------------------------------------
    def has_usage(self, product: str, source_id: str) -> bool:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=_to_item(ledger_key(product, source_id)),
                ProjectionExpression="PK",
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _failure("read ledger", exc) from exc
        return "Item" in response

    def source_state(self, product: str, source_id: str) -> str | None:
        """``"recorded"`` (a ledger row exists), a reconciliation verdict kept for the source
        (``"not_ours"``, ``"held"``), or None when reconciliation has never seen it. One
        consistent Query on the source's partition: the ledger row and the verdict share it."""
        rows = self._query(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=_to_item({":pk": ledger_key(product, source_id)["PK"]}),
            ProjectionExpression="SK, verdict",
            ConsistentRead=True,
        )
        if any(r.get("SK") == LEDGER_SK for r in rows):
            return "recorded"
        verdicts = [str(r["verdict"]) for r in rows if r.get("SK") == VERDICT_SK]
        return verdicts[0] if verdicts else None

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
            self._client.put_item(TableName=self._table, Item=_to_item(values))
        except (ClientError, BotoCoreError) as exc:
            raise _failure("remember reconciliation verdict", exc) from exc

    def load_checkpoint(self, project: str) -> Checkpoint | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=_to_item(checkpoint_key(project)), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise _failure("read checkpoint", exc) from exc
        if not item:
            return None
        values = _from_item(item)
        return Checkpoint(
            horizon=datetime.fromisoformat(values["horizon"]),
            before_id=values.get("before_id"),
            counts=ReconcileCounts.from_stored(values.get("counts", {})),
        )

    def save_checkpoint(self, project: str, checkpoint: Checkpoint) -> None:
        values = {
            **checkpoint_key(project),
            "entity": "checkpoint",
            "horizon": checkpoint.horizon.isoformat(),
            "before_id": checkpoint.before_id,
            "counts": asdict(checkpoint.counts),
            "saved_at": datetime.now(UTC).isoformat(),
        }
        try:
            self._client.put_item(TableName=self._table, Item=_to_item(values))
        except (ClientError, BotoCoreError) as exc:
            raise _failure("save checkpoint", exc) from exc

    def clear_checkpoint(self, project: str) -> None:
        try:
            self._client.delete_item(TableName=self._table, Key=_to_item(checkpoint_key(project)))
        except (ClientError, BotoCoreError) as exc:
            raise _failure("clear checkpoint", exc) from exc

    def record_uncovered(self, item: UncoveredTranscript) -> bool:
        """Store a transcript no customer is billed for, once (False if already stored)."""
        values = {
            "PK": f"COVERAGE#{item.month}",
            "SK": f"{item.project}#{item.transcript_id}",
            "entity": "uncovered",
            "transcript_id": item.transcript_id,
            "project": item.project,
            "month": item.month,
            "completed_at": _stored_time(item.completed_at),
            "billable_seconds": item.billable_seconds,
            "model": item.model,
            "features": list(item.features),
            "reason": item.reason.value,
            "recorded_at": _stored_time(datetime.now(UTC)),
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_to_item(values),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _failure("record uncovered transcript", exc) from exc
        except BotoCoreError as exc:
            raise _failure("record uncovered transcript", exc) from exc
        return True

    def month_uncovered(self, month: str) -> Iterator[UncoveredTranscript]:
        """The month's uncovered transcripts, ordered by (project, transcript id), page by page."""
        for values in self._pages(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=_to_item({":pk": f"COVERAGE#{month}"}),
        ):
            yield UncoveredTranscript(
                transcript_id=str(values["transcript_id"]),
                project=str(values["project"]),
                month=str(values["month"]),
                completed_at=datetime.fromisoformat(str(values["completed_at"])),
                billable_seconds=Decimal(values["billable_seconds"]),
                model=str(values["model"]),
                features=tuple(str(f) for f in values.get("features", ())),
                reason=UncoveredReason(str(values["reason"])),
            )

    def quarantine(self, item: QuarantineItem) -> bool:
        digest = hashlib.sha256(
            json.dumps(item.message, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        values = {
            "PK": f"QUARANTINE#{item.source_id}",
            "SK": f"{item.reason.value}#{digest}",
            "entity": "quarantine",
            "source_id": item.source_id,
            "reason": item.reason.value,
            "detail": item.detail,
            "message": json.dumps(item.message, sort_keys=True, default=str),
            "state": "open",
            "quarantined_at": item.quarantined_at.astimezone(UTC).isoformat(),
            "GSI1PK": "QUARANTINE#open",
            "GSI1SK": f"{item.quarantined_at.astimezone(UTC).isoformat()}#{item.source_id}",
            "write_id": _token(),
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_to_item(values),
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return _own_write(exc, values["write_id"])
            raise _failure("quarantine", exc) from exc
        except BotoCoreError as exc:
            raise _failure("quarantine", exc) from exc
        return True

    # -- reads ----------------------------------------------------------------------------------
    def get_record(
        self, product: str, source_id: str, *, consistent: bool = True
    ) -> UsageRecord | None:
        """The ledger row of a usage source, or None. ``consistent=False`` halves the read's
        cost where a stale miss is harmless (the write's condition still decides)."""
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=_to_item(ledger_key(product, source_id)),
                ConsistentRead=consistent,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _failure("read ledger", exc) from exc
        item = response.get("Item")
        return record_from_item(_from_item(item)) if item else None

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("query")
        try:
            for page in paginator.paginate(TableName=self._table, **kwargs):
                items.extend(_from_item(i) for i in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise _failure("query", exc) from exc
        return items

    def customer_aggregates(self, customer_id: str, month: str) -> list[UsageAggregate]:
        rows = self._query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues=_to_item(
                {":pk": f"CUSTOMER#{customer_key(customer_id)}", ":prefix": f"MONTH#{month}#"}
            ),
            ConsistentRead=True,
        )
        return [aggregate_from_item(r) for r in rows if not _emptied(r)]

    def month_aggregates(
        self, month: str, unreadable: Unreadable | None = None
    ) -> list[UsageAggregate]:
        """The month's aggregates; one that cannot be read goes to ``unreadable`` when given."""
        rows = self._query(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues=_to_item({":pk": f"MONTH#{month}"}),
        )
        return list(readable(aggregate_from_item, (r for r in rows if not _emptied(r)), unreadable))

    def month_ledger_pages(self, month: str) -> Iterator[list[Any]]:
        """The month's billable ledger rows, one page of ``ledger_index.LedgerEntry`` (customer,
        seconds) at a time, shard after shard: memory is one page whatever the month's size."""
        from usage_meter.adapters import ledger_index

        for shard in range(LEDGER_SHARDS):
            yield from ledger_index.ledger_pages(self._client, self._table, month, shard)

    def month_ledger_totals(self, month: str) -> dict[str, LedgerTotals]:
        """Count, seconds and tokens of billable ledger rows per customer in a month, summed page
        by page over the 16 ``LedgerByMonth`` shards side by side (``adapters/ledger_index.py``)."""
        from usage_meter.adapters import ledger_index  # it builds on this module's keys

        return ledger_index.month_ledger_totals(
            self._client,
            self._table,
            month,
            workers=self._ledger_workers,
            client_factory=self._client_factory,
        )

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The items of a Query, one page at a time (memory: one page, at most 1 MB)."""
        paginator = self._client.get_paginator("query")
        try:
            for page in paginator.paginate(TableName=self._table, **kwargs):
                for item in page.get("Items", []):
                    yield _from_item(item)
        except (ClientError, BotoCoreError) as exc:
            raise _failure("query", exc) from exc

    def month_ledger_rows(
        self, month: str, unreadable: Unreadable | None = None
    ) -> Iterator[UsageRecord]:
        """Every ledger row of a month (billable and failed), ordered by (customer, product,
        source id): the 16 shard Queries are read page by page and merged lazily, so memory
        holds one page per shard whatever the month's size; a row that cannot be read goes to
        ``unreadable`` when given (``adapters/unreadable.py``). ``GSI1SK`` is
        ``<customer key>#<product>#<source>`` and ``#`` sorts below every character of a
        (percent-encoded) customer key, so the index order is that tuple order."""
        shards = [
            self._pages(
                IndexName="GSI1",
                KeyConditionExpression="GSI1PK = :pk",
                ExpressionAttributeValues=_to_item({":pk": f"LEDGER#{month}#{shard:02d}"}),
            )
            for shard in range(LEDGER_SHARDS)
        ]
        merged = heapq.merge(*shards, key=lambda i: str(i["GSI1SK"]))
        yield from readable(record_from_item, merged, unreadable)

    def customer_ledger_page(
        self, customer_id: str, month: str, limit: int, cursor: str | None = None
    ) -> tuple[list[UsageRecord], str | None]:
        """One page (at most ``limit`` rows) of a customer's ledger rows in a month, ordered by
        (product, source id), and the opaque cursor of the next page (None on the last). One
        Query on the customer's ledger shard; raises ValueError for a cursor it did not issue."""
        kwargs: dict[str, Any] = {
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk AND begins_with(GSI1SK, :customer)",
            "ExpressionAttributeValues": _to_item(
                {
                    ":pk": f"LEDGER#{month}#{customer_ledger_shard(customer_id):02d}",
                    ":customer": f"{customer_key(customer_id)}#",
                }
            ),
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = _decode_cursor(cursor)
        try:
            response = self._client.query(TableName=self._table, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _failure("query", exc) from exc
        rows = [record_from_item(_from_item(i)) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return rows, (_encode_cursor(last) if last else None)

    def customers_page(
        self, month: str, limit: int, after: str | None = None
    ) -> tuple[list[str], str | None]:
        """Customers with billed usage in ``month``, in id order, at most ``limit``, starting after
        customer ``after``; and the customer to continue after (None on the last page). Reads the
        month's aggregates on GSI1 (a customer has one item per breakdown), never the ledger."""
        start = f"CUSTOMER#{customer_key(after)}#\U0010ffff" if after else "CUSTOMER#"
        found: list[str] = []
        for item in self._pages(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk AND GSI1SK > :start",
            ExpressionAttributeValues=_to_item({":pk": f"MONTH#{month}", ":start": start}),
            ProjectionExpression="customer_id, usage_count",
        ):
            if int(item.get("usage_count", 0)) <= 0:
                continue  # an aggregate emptied by a row that moved month
            customer = str(item["customer_id"])
            if found and found[-1] == customer:
                continue
            if len(found) == limit:
                return found, found[-1]
            found.append(customer)
        return found, None

    def customer_ledger_rows(self, customer_id: str, month: str) -> Iterator[UsageRecord]:
        """All of a customer's ledger rows in a month, page by page (one Query on its shard)."""
        for item in self._pages(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk AND begins_with(GSI1SK, :customer)",
            ExpressionAttributeValues=_to_item(
                {
                    ":pk": f"LEDGER#{month}#{customer_ledger_shard(customer_id):02d}",
                    ":customer": f"{customer_key(customer_id)}#",
                }
            ),
        ):
            yield record_from_item(item)

    # -- operations -------------------------------------------------------------------------------
    @staticmethod
    def quarantine_id(item: dict[str, Any]) -> str:
        return f"{str(item['PK']).removeprefix('QUARANTINE#')}/{item['SK']}"

    def quarantined(self, item_id: str) -> dict[str, Any] | None:
        source_id, _, sort_key = item_id.partition("/")
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key=_to_item({"PK": f"QUARANTINE#{source_id}", "SK": sort_key}),
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise _failure("read quarantine", exc) from exc
        values = _from_item(item) if item else None
        return values if values and values.get("state") == "open" else None

    def close_quarantine(self, item_id: str, resolution: dict[str, Any]) -> None:
        """Mark an open item resolved. Raises OperationRefused when it is no longer open (someone
        else resolved it meanwhile), TransientFailure/PermanentFailure for DynamoDB errors."""
        source_id, _, sort_key = item_id.partition("/")
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_to_item({"PK": f"QUARANTINE#{source_id}", "SK": sort_key}),
                UpdateExpression=(
                    "SET #state = :resolved, resolution = :resolution, GSI1PK = :closed"
                ),
                ConditionExpression="#state = :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=_to_item(
                    {
                        ":resolved": "resolved",
                        ":open": "open",
                        ":resolution": resolution,
                        ":closed": "QUARANTINE#resolved",
                    }
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise OperationRefused(f"{item_id} is no longer open (resolved meanwhile)") from exc
            raise _failure("close quarantined item", exc) from exc
        except BotoCoreError as exc:
            raise _failure("close quarantined item", exc) from exc

    def audit(self, entry: AuditEntry) -> None:
        at = entry.at.astimezone(UTC)
        values = {
            "PK": f"AUDIT#{at:%Y-%m}",
            "SK": f"{at.isoformat()}#{uuid.uuid4().hex[:12]}",
            "entity": "audit",
            **{k: v for k, v in asdict(entry).items() if k != "at"},
            "at": at.isoformat(),
        }
        try:
            self._client.put_item(TableName=self._table, Item=_to_item(values))
        except (ClientError, BotoCoreError) as exc:
            raise _failure("write audit entry", exc) from exc

    def audit_log(self, month: str) -> list[dict[str, Any]]:
        return self._query(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=_to_item({":pk": f"AUDIT#{month}"}),
        )

    def open_quarantine(self) -> list[dict[str, Any]]:
        return self._query(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues=_to_item({":pk": "QUARANTINE#open"}),
        )


def _encode_cursor(key: dict[str, Any]) -> str:
    plain = {name: value["S"] for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, sort_keys=True).encode()).decode()


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(plain, dict) or set(plain) != {"PK", "SK", "GSI1PK", "GSI1SK"}:
        raise ValueError("invalid cursor")
    return {name: {"S": str(value)} for name, value in plain.items()}


def _token() -> str:
    """One idempotency token per logical write (36 characters: ClientRequestToken's maximum)."""
    return str(uuid.uuid4())


def _own_write(exc: ClientError, write_id: str) -> bool:
    """Whether a failed ``attribute_not_exists`` put found its own earlier attempt's item (the
    first attempt committed, its answer was lost and the SDK retried)."""
    old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
    stored = old.get("write_id")
    return isinstance(stored, dict) and stored.get("S") == write_id


def _raise_if_unstorable(exc: ClientError) -> None:
    """A ValidationException can never succeed on a retry: UnstorableUsage, with DynamoDB's
    reason (it names limits, never the values)."""
    error = exc.response.get("Error", {})
    reasons = exc.response.get("CancellationReasons") or []
    invalid = any(r.get("Code") == "ValidationError" for r in reasons)
    if error.get("Code") == "ValidationException" or invalid:
        code = error.get("Code", "")
        raise UnstorableUsage(
            f"DynamoDB refused the usage ({code}): {error.get('Message', '')}"[:500]
        ) from exc


def _emptied(values: dict[str, Any]) -> bool:
    """An aggregate every row of which moved elsewhere (0 count, 0 seconds): never shown."""
    return values.get("usage_count") == 0 and values.get("billable_seconds") == 0


def _ledger_row_exists(exc: ClientError) -> bool:
    """True when a transaction was cancelled only because the ledger row already exists."""
    error = exc.response.get("Error", {})
    if error.get("Code") != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    if reasons:
        return reasons[0].get("Code") == "ConditionalCheckFailed"
    return "ConditionalCheckFailed" in str(error.get("Message", ""))


def _transaction_conflict(exc: ClientError) -> bool:
    """True when a transaction was cancelled for a conflict with another one (nothing was
    written; retrying is safe) and not because the ledger row exists."""
    error = exc.response.get("Error", {})
    if error.get("Code") != "TransactionCanceledException" or _ledger_row_exists(exc):
        return False
    reasons = exc.response.get("CancellationReasons") or []
    if reasons:
        return any(r.get("Code") == "TransactionConflict" for r in reasons)
    return "TransactionConflict" in str(error.get("Message", ""))


PERMANENT_DYNAMODB_ERRORS = frozenset({"ValidationException"})


def _failure(action: str, exc: Exception) -> TransientFailure | PermanentFailure:
    """A DynamoDB error as a domain error: PermanentFailure (reason ``dynamodb_validation``) when
    the request itself is invalid, which no retry can fix (a ValidationException, or a
    transaction cancelled for a ValidationError); TransientFailure for everything else
    (throttling, 5xx, network, a condition that may pass later)."""
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    text = f"DynamoDB could not {action}: {code or type(exc).__name__}: {exc}"
    if isinstance(exc, ClientError):
        reasons = exc.response.get("CancellationReasons") or []
        invalid = any(r.get("Code") == "ValidationError" for r in reasons)
        if code in PERMANENT_DYNAMODB_ERRORS or invalid:
            return PermanentFailure(STORAGE_REFUSED, text)
    return TransientFailure(text)
