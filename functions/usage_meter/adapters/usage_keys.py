"""The usage table's keys and item shapes: the only module that spells them (single-table design).

- ledger row:  PK ``SOURCE#<product>#<source id>``, SK ``LEDGER``; billable rows only (sparse index
  ``LedgerByMonth``, KEYS_ONLY): LMPK ``LEDGER#<month>#<shard 00-15 of the source id>``,
  LMSK ``<customer>#<billable seconds>[#<input tokens>#<output tokens>]`` (the key is all the
  export's ledger check reads); every row (billable and failed) also in GSI1 for line items:
  GSI1PK ``LEDGER#<month>#<shard 00-15 of the customer>``, GSI1SK ``<customer>#<product>#<source>``.
- session begin: PK ``SESSION#<session id>``, SK ``BEGIN``; while open (sparse index):
  GSI1PK ``OPEN_SESSIONS#<began date>``, GSI1SK ``<began_at>#<session id>``.
- aggregate:   PK ``CUSTOMER#<customer>``, SK ``MONTH#<month>#<product>#<project>#<model>#<dims>``;
  on the KEYS_ONLY ``LedgerByMonth`` index: LMPK ``MONTH#<month>``, LMSK
  ``CUSTOMER#<customer>#<product>#<project>#<model>#<dims>``. Keys only, so the ADD of every usage
  (which never changes those keys) writes nothing to an index: the entry is written once, when
  the aggregate is created (an index projecting ALL was rewritten, 1 WRU, on every usage).
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

- ``<customer>`` in keys is ``customer_key(customer_id)`` (percent-encoded; see there). Key parts
  are bounded in bytes (``bounded_key_part``): an oversized customer or breakdown is a fixed-length
  digest in the key, its readable value in the item's attributes, so whatever is accepted fits
  DynamoDB's key limits.
- Ledger rows are keyed by the usage source alone, so "billed at most once, forever" is one
  conditional put; there is no TTL on them.

The adapters over this table (one port each) are ``usage_ledger`` (ledger rows and aggregates),
``usage_reads`` and ``ledger_pages`` (month reads, paging), ``session_store``,
``quarantine_store``, ``audit_log``, ``reconcile_store``, ``late_marks``; ``table_access`` holds
what they share to call DynamoDB and translate its errors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urlencode

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from usage_meter.models.billing import UsageAggregate
from usage_meter.models.usage import UsageRecord, UsageStatus

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
LEDGER_SK = "LEDGER"
VERDICT_SK = "RECONCILED"  # reconciliation's verdict on a source it does not bill
ADDON_PREFIX = "addon:"
LATE_INDEX_KEY = "EXPORT_LATE"
OPEN_QUARANTINE = "QUARANTINE#open"


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


def tokens(record: UsageRecord) -> tuple[int, int]:
    """(input tokens, output tokens) of a record."""
    return record.input_tokens, record.output_tokens


def ledger_index_keys(record: UsageRecord) -> dict[str, str]:
    """The ``LedgerByMonth`` keys of a billable ledger row (none for a failed one: sparse)."""
    if record.status is not UsageStatus.BILLABLE:
        return {}
    return {
        "LMPK": ledger_partition(record.month, ledger_shard(record.source_id)),
        "LMSK": f"{customer_key(record.customer_id)}#{record.billable_seconds:f}"
        + (f"#{record.input_tokens}#{record.output_tokens}" if tokens(record) != (0, 0) else ""),
    }


def parse_ledger_index_key(value: str) -> tuple[str, str, int, int]:
    """(customer id, billable seconds as a decimal string, input tokens, output tokens) from an
    ``LMSK`` value (``<customer>#<seconds>`` or ``<customer>#<seconds>#<in>#<out>``): the customer
    key part percent-decoded (it never contains ``#``). A customer id too long for a key part
    stays in its digest form (``%%sha256:...``): the check then reports it as a mismatch, loudly."""
    key, seconds, *token_parts = value.split("#")
    input_tokens, output_tokens = (
        (int(token_parts[0]), int(token_parts[1])) if token_parts else (0, 0)
    )
    customer = key if key.startswith(DIGEST_PREFIX) else unquote(key)
    return customer, seconds, input_tokens, output_tokens


def checkpoint_key(project: str) -> dict[str, str]:
    return {"PK": f"RECONCILE#{project}", "SK": "CHECKPOINT"}


def session_key(session_id: str) -> dict[str, str]:
    return {"PK": f"SESSION#{session_id}", "SK": "BEGIN"}


def late_mark_key(month: str) -> dict[str, str]:
    return {"PK": f"EXPORT#{month}", "SK": "LATE"}


def quarantine_key(source_id: str, sort_key: str) -> dict[str, str]:
    return {"PK": f"QUARANTINE#{source_id}", "SK": sort_key}


def quarantine_id(item: dict[str, Any]) -> str:
    """The id people use for a quarantined item: ``<source id>/<sort key>``."""
    return f"{str(item['PK']).removeprefix('QUARANTINE#')}/{item['SK']}"


def parse_quarantine_id(item_id: str) -> dict[str, str]:
    """The key of the quarantined item ``<source id>/<sort key>``."""
    source_id, _, sort_key = item_id.partition("/")
    return quarantine_key(source_id, sort_key)


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


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Python values as a DynamoDB item (None values left out)."""
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as Python values (numbers as Decimal)."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def stored_time(moment: datetime) -> str:
    """A moment as stored: ISO 8601 in UTC."""
    return moment.astimezone(UTC).isoformat()


def ledger_item(record: UsageRecord, recorded_at: datetime) -> dict[str, Any]:
    """The ledger row of ``record`` with its keys and index keys (Python values)."""
    values: dict[str, Any] = record.model_dump(mode="python")
    values.update(
        ledger_key(record.product, record.source_id),
        entity="ledger",
        status=record.status.value,
        features=list(record.features),
        occurred_at=stored_time(record.occurred_at),
        recorded_at=stored_time(recorded_at),
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


def record_from_item(values: dict[str, Any]) -> UsageRecord:
    fields = {k: v for k, v in values.items() if k in UsageRecord.model_fields}
    fields["features"] = tuple(fields.get("features", ()))
    fields["audio_channels"] = int(fields.get("audio_channels", 1))
    return UsageRecord.model_validate(fields)


def emptied(values: dict[str, Any]) -> bool:
    """An aggregate every row of which moved elsewhere (0 count, 0 seconds): never shown."""
    return values.get("usage_count") == 0 and values.get("billable_seconds") == 0


def encode_cursor(key: dict[str, Any]) -> str:
    """An opaque page cursor from a Query's ``LastEvaluatedKey`` (string keys only)."""
    plain = {name: value["S"] for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The ``ExclusiveStartKey`` of a cursor from ``encode_cursor``; ValueError for any other."""
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(plain, dict) or set(plain) != {"PK", "SK", "GSI1PK", "GSI1SK"}:
        raise ValueError("invalid cursor")
    return {name: {"S": str(value)} for name, value in plain.items()}
