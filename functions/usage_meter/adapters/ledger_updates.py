"""The items a ledger write changes beside its row, as TransactWriteItems ``Update`` requests:
the aggregate, the customer-month summary, the late-usage mark of an ended month, and the
streaming session a record closes. Pure builders (no I/O); keys from ``usage_keys``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from usage_meter.adapters.usage_keys import (
    ADDON_PREFIX,
    LATE_INDEX_KEY,
    aggregate_breakdown,
    aggregate_key,
    customer_key,
    late_mark_key,
    readable_breakdown,
    session_key,
    to_item,
)
from usage_meter.adapters.usage_summary import summary_updates
from usage_meter.models.usage import UsageRecord

SummaryChange = tuple[UsageRecord, int, Decimal, dict[str, Decimal], tuple[int, int]]
"""(record, count delta, seconds delta, add-on seconds deltas, (input, output) token deltas)"""


def ended(month: str, now: datetime) -> bool:
    """Whether ``month`` (YYYY-MM) is before the current UTC month."""
    return month < now.astimezone(UTC).strftime("%Y-%m")


def aggregate_update(
    table: str,
    record: UsageRecord,
    now: datetime,
    *,
    count: int = 1,
    seconds: Decimal | None = None,
    addon_seconds: dict[str, Decimal] | None = None,
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
        "LMPK": f"MONTH#{record.month}",
        "LMSK": f"CUSTOMER#{customer_key(record.customer_id)}#{breakdown}",
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
        "TableName": table,
        "Key": to_item(aggregate_key(record.customer_id, record.month, breakdown)),
        "UpdateExpression": (
            "ADD usage_count :one, billable_seconds :seconds, input_tokens :in, "
            f"output_tokens :out{additions} SET {assignments}"
        ),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_item(
            {":one": count, ":seconds": seconds, ":in": tokens[0], ":out": tokens[1], **values}
        ),
    }


def summary(table: str, *changes: SummaryChange) -> list[Any]:
    """The customer-month summary's share of a write: the same count, seconds and add-on
    seconds the aggregates get (see usage_summary.py)."""
    return summary_updates(
        table,
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


def late_mark(table: str, month: str, now: datetime) -> Any:
    """Mark an ended month as changed since its export (see ``usage_keys``)."""
    return {
        "TableName": table,
        "Key": to_item(late_mark_key(month)),
        "UpdateExpression": (
            "ADD late_records :one SET entity = :entity, #m = :month, "
            "GSI1PK = :pending, GSI1SK = :month, marked_at = :now"
        ),
        "ExpressionAttributeNames": {"#m": "month"},
        "ExpressionAttributeValues": to_item(
            {
                ":one": 1,
                ":entity": "late_usage",
                ":month": month,
                ":pending": LATE_INDEX_KEY,
                ":now": now.isoformat(),
            }
        ),
    }


def close_session_update(table: str, session_id: str, reason: str, now: datetime) -> Any:
    """Take a session out of the open-sessions index (creates a stub if no begin came)."""
    return {
        "TableName": table,
        "Key": to_item(session_key(session_id)),
        "UpdateExpression": "REMOVE GSI1PK, GSI1SK SET closed_by = :reason, closed_at = :now",
        "ExpressionAttributeValues": to_item({":reason": reason, ":now": now.isoformat()}),
    }
