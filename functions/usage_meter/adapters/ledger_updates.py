"""The items a ledger write changes beside its row, as TransactWriteItems ``Update`` requests:
the aggregate, the customer-month summary, the late-usage mark of an ended month, the streaming
session a record closes, and what a replaced row moves. Pure builders (no I/O); keys from
``usage_keys``."""

from __future__ import annotations

from datetime import datetime
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
from usage_meter.adapters.usage_keys import tokens as record_tokens
from usage_meter.adapters.usage_summary import summary_updates
from usage_meter.logic.late_usage import usage_is_late
from usage_meter.models.usage import UsageRecord, UsageStatus

SummaryChange = tuple[UsageRecord, int, Decimal, dict[str, Decimal], tuple[int, int]]
"""(record, count delta, seconds delta, add-on seconds deltas, (input, output) token deltas)"""


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


def same_aggregate(existing: UsageRecord, replacement: UsageRecord) -> bool:
    """Whether both rows count in the same aggregate item (month and breakdown)."""
    return (existing.month, aggregate_breakdown(existing)) == (
        replacement.month,
        aggregate_breakdown(replacement),
    )


def replacement_updates(
    table: str,
    existing: UsageRecord,
    replacement: UsageRecord,
    now: datetime,
    *,
    with_summary: bool = True,
) -> list[Any]:
    """What replacing the ledger row ``existing`` by ``replacement`` changes beside the row: its
    contribution moves between aggregates and (``with_summary``: the deployment keeps one)
    summaries (one ADD of the difference when both count in the same aggregate: an item may
    appear once per transaction), and every ended month it touches is marked late."""
    billable = UsageStatus.BILLABLE
    items: list[Any] = []
    if (
        same_aggregate(existing, replacement)
        and existing.status is billable
        and replacement.status is billable
    ):
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
        update = aggregate_update(
            table,
            replacement,
            now,
            count=0,
            seconds=delta,
            addon_seconds=addon_delta,
            tokens=token_delta,
        )
        items.append({"Update": update})
        if with_summary:
            items += summary(table, (replacement, 0, delta, addon_delta, token_delta))
    else:
        moved: list[SummaryChange] = []
        if existing.status is billable:
            negated = {name: -value for name, value in existing.addon_seconds().items()}
            back = (-existing.input_tokens, -existing.output_tokens)
            update = aggregate_update(
                table,
                existing,
                now,
                count=-1,
                seconds=-existing.billable_seconds,
                addon_seconds=negated,
                tokens=back,
            )
            items.append({"Update": update})
            moved.append((existing, -1, -existing.billable_seconds, negated, back))
        if replacement.status is billable:
            items.append({"Update": aggregate_update(table, replacement, now)})
            added = replacement.addon_seconds()
            moved.append(
                (replacement, 1, replacement.billable_seconds, added, record_tokens(replacement))
            )
        if with_summary:
            items += summary(table, *moved)
    touched = {r.month for r in (existing, replacement) if r.status is billable}
    items.extend(
        {"Update": late_mark(table, m, now)} for m in sorted(touched) if usage_is_late(m, now)
    )
    return items
