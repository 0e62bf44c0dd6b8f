"""The customer-month summary holds exactly what the aggregates hold: applying its ADDs and
reading it back gives the aggregates, whatever the dimensions' characters, add-ons, estimates and
rows moved away (count and seconds back to zero)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from usage_meter.adapters.usage_keys import customer_key, readable_breakdown
from usage_meter.adapters.usage_summary import aggregates_from_summary, summary_updates
from usage_meter.models.usage import UsageRecord, UsageStatus


def _record(**overrides: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "source_id": "s1",
        "product": "async",
        "status": UsageStatus.BILLABLE,
        "customer_id": "acme",
        "project": "eu",
        "month": "2026-11",
        "billable_seconds": Decimal("754.5"),
        "model": "universal-3-pro",
        "features": ("speaker_labels", "domain:medical-v1"),
        "dimensions": {"plan": "pro&x=y", "team": "a#b|c d"},
        "occurred_at": datetime(2026, 11, 3, tzinfo=UTC),
    }
    return UsageRecord(**(values | overrides))


def _apply(changes: list[Any]) -> dict[str, Any]:
    """What DynamoDB's ADD does to the item, from the Update the transaction would carry."""
    item: dict[str, Any] = {}
    deserialize = TypeDeserializer().deserialize
    for update in summary_updates("t", changes):
        u = update["Update"]
        names, values = u["ExpressionAttributeNames"], u["ExpressionAttributeValues"]
        adds = u["UpdateExpression"].removeprefix("ADD ").split(" SET ")[0].split(", ")
        for add in adds:
            name, value = add.split(" ")
            item[names[name]] = item.get(names[name], Decimal(0)) + deserialize(values[value])
        item |= {"customer_id": deserialize(values[":c"]), "month": deserialize(values[":m"])}
    return item


def _change(record: UsageRecord, count: int, sign: int = 1) -> Any:
    addons = {k: sign * v for k, v in record.addon_seconds().items()}
    return (
        record.customer_id,
        customer_key(record.customer_id),
        record.month,
        readable_breakdown(record),
        addons,
        count,
        sign * record.billable_seconds,
        (sign * record.input_tokens, sign * record.output_tokens),
    )


def test_summary_reads_back_as_the_aggregates() -> None:
    first = _record()
    second = _record(source_id="s2", billable_seconds=Decimal(60))
    estimate = _record(
        source_id="s3",
        product="streaming",
        model="u3-rt-pro",
        features=(),
        estimated=True,
        billable_seconds=Decimal(10800),
        dimensions={},
    )
    [async_row, streaming_row] = aggregates_from_summary(
        _apply([_change(first, 1), _change(second, 1), _change(estimate, 1)])
    )
    assert (async_row.usage_count, async_row.billable_seconds) == (2, Decimal("814.5"))
    assert async_row.dimensions == {"plan": "pro&x=y", "team": "a#b|c d"}
    assert async_row.addon_seconds == {
        "speaker_labels": Decimal("814.5"),
        "domain:medical-v1": Decimal("814.5"),
    }
    assert (async_row.project, async_row.model, async_row.estimated) == (
        "eu",
        "universal-3-pro",
        False,
    )
    assert (streaming_row.product, streaming_row.estimated, streaming_row.billable_seconds) == (
        "streaming",
        True,
        Decimal(10800),
    )


def test_a_row_moved_away_leaves_no_aggregate() -> None:
    record = _record()
    assert aggregates_from_summary(_apply([_change(record, 1), _change(record, -1, -1)])) == []
