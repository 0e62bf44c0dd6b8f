"""The customer-month summary holds the aggregates grouped by price class: applying its ADDs and
reading it back gives each class's count, seconds, tokens and add-on seconds, whatever the
dimensions' characters, projects, estimates and rows moved away. Its size is bounded by the price
classes a customer used, not by its breakdowns: DynamoDB refuses items over 400 KB, attribute
names included (AWS DynamoDB Developer Guide, "Constraints in Amazon DynamoDB", Items), and a
customer with 10,000 teams in a month has 10,000 breakdowns."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.usage_keys import customer_key, readable_breakdown
from usage_meter.adapters.usage_summary import (
    ADD_ON_BYTES,
    CLASS_BYTES,
    aggregates_from_summary,
    summary_updates,
)
from usage_meter.logic.entitlement import check_entitlement
from usage_meter.logic.pricing import exact_cost
from usage_meter.models.billing import UsageAggregate
from usage_meter.models.limits import AllowanceSet, CustomerAllowance, Limit
from usage_meter.models.usage import UsageRecord, UsageStatus

SHIPPED = load_price_table("usage_meter/config/prices.json")
DYNAMODB_ITEM_LIMIT = 400 * 1024


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


def _apply(changes: list[Any], item: dict[str, Any] | None = None) -> dict[str, Any]:
    """What DynamoDB's ADD does to the item, from the Update the transaction would carry."""
    item = {} if item is None else item
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


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size (AWS DynamoDB Developer Guide, "DynamoDB item sizes and formats"):
    attribute name UTF-8 bytes plus, for a string, its UTF-8 bytes; for a number, 1 byte per two
    significant digits plus 1 (an upper bound: sign and exponent ignored)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, Decimal):
            digits = len(value.normalize().as_tuple().digits)
            size += (digits + 1) // 2 + 1
        else:
            size += len(str(value).encode())
    return size


def test_summary_reads_back_as_the_aggregates_grouped_by_price_class() -> None:
    first = _record()
    other_project = _record(source_id="s2", project="us", billable_seconds=Decimal(60))
    other_model = _record(source_id="s3", model="universal-2", features=(), dimensions={})
    estimate = _record(
        source_id="s4",
        product="streaming",
        model="u3-rt-pro",
        features=(),
        estimated=True,
        billable_seconds=Decimal(10800),
        dimensions={},
    )
    streaming = _record(
        source_id="s5", product="streaming", model="u3-rt-pro", features=(), dimensions={}
    )
    item = _apply([_change(r, 1) for r in (first, other_project, other_model, estimate)])
    item = _apply([_change(streaming, 1)], item)
    [universal_2, universal_3, realtime] = aggregates_from_summary(item)
    # projects and dimensions do not change a price: one class per product, model and region
    assert (universal_3.usage_count, universal_3.billable_seconds) == (2, Decimal("814.5"))
    assert universal_3.addon_seconds == {
        "speaker_labels": Decimal("814.5"),
        "domain:medical-v1": Decimal("814.5"),
    }
    assert (universal_2.model, universal_2.usage_count, universal_2.addon_seconds) == (
        "universal-2",
        1,
        {},
    )
    # an estimate is priced like measured usage of its model
    assert (realtime.product, realtime.usage_count, realtime.billable_seconds) == (
        "streaming",
        2,
        Decimal("11554.5"),
    )


def test_a_row_moved_away_leaves_no_aggregate() -> None:
    record = _record()
    assert aggregates_from_summary(_apply([_change(record, 1), _change(record, -1, -1)])) == []


def test_a_summary_written_per_breakdown_reads_as_its_classes() -> None:
    """Items written before price classes (one entry per breakdown) fold into their classes."""
    item = {
        "customer_id": "acme",
        "month": "2026-11",
        "n|async#eu#universal-3-pro#team=a": Decimal(1),
        "s|async#eu#universal-3-pro#team=a": Decimal(100),
        "a|async#eu#universal-3-pro#team=a|speaker_labels": Decimal(100),
        "n|async#us#universal-3-pro#-#estimated": Decimal(2),
        "s|async#us#universal-3-pro#-#estimated": Decimal(50),
        "n|llm_gateway#default#claude#-#region=eu": Decimal(1),
        "s|llm_gateway#default#claude#-#region=eu": Decimal(0),
        "i|llm_gateway#default#claude#-#region=eu": Decimal(1000),
        "n|async#universal-3-pro": Decimal(1),
        "s|async#universal-3-pro": Decimal(7),
    }
    [universal, claude] = aggregates_from_summary(item)
    assert (universal.usage_count, universal.billable_seconds) == (4, Decimal(157))
    assert universal.addon_seconds == {"speaker_labels": Decimal(100)}
    assert (claude.region, claude.input_tokens, claude.output_tokens) == ("eu", 1000, 0)


def test_10000_breakdowns_stay_a_small_item_and_the_check_stays_exact() -> None:
    """Given one customer with 10,000 distinct breakdowns in a month (a long non-ASCII team name
    each, three projects, three async models with add-ons, streaming and an estimate); then the
    summary item is a few KB (the per-breakdown item was ~4 MB, ten times DynamoDB's limit), and
    the check's used seconds equal the aggregates' exactly and its cost equals the exact cost of
    the 10,000 aggregates priced one by one like the usage API prices them."""
    models = ("universal-3-pro", "universal-2", "best")
    records = []
    for i in range(10_000):
        streaming = i % 10 == 9
        records.append(
            _record(
                source_id=f"t{i}",
                product="streaming" if streaming else "async",
                model="u3-rt-pro" if streaming else models[i % 3],
                project=("eu", "us", "default")[i % 3],
                features=() if streaming else (("speaker_labels",) if i % 2 else ()),
                dimensions={"team": f"営業部{i:05d}" * 8},
                estimated=streaming and i % 20 == 19,
                billable_seconds=Decimal(i % 997) + Decimal("0.125"),
            )
        )
    item: dict[str, Any] = {}
    for start in range(0, len(records), 50):  # 50 records per write, like a processor batch
        item = _apply([_change(r, 1) for r in records[start : start + 50]], item)

    classes = aggregates_from_summary(item)
    assert len(classes) == 4
    size = item_bytes(item)
    assert size <= len(classes) * CLASS_BYTES + 3 * ADD_ON_BYTES < 4 * 1024
    per_breakdown = sum(4 * len(readable_breakdown(r).encode()) for r in records)
    assert per_breakdown > 10 * DYNAMODB_ITEM_LIMIT  # what one entry per breakdown would take

    # the aggregates the usage API would read: one per breakdown
    grouped: dict[tuple[Any, ...], list[UsageRecord]] = defaultdict(list)
    for r in records:
        key = (r.product, r.project, r.model, tuple(r.dimensions.items()), r.estimated)
        grouped[key].append(r)
    assert len(grouped) == 10_000
    aggregates = [
        UsageAggregate(
            customer_id="acme",
            month="2026-11",
            product=rs[0].product,
            project=rs[0].project,
            model=rs[0].model,
            dimensions=rs[0].dimensions,
            usage_count=len(rs),
            billable_seconds=sum((r.billable_seconds for r in rs), Decimal(0)),
            addon_seconds={
                f: sum((r.billable_seconds for r in rs), Decimal(0)) for f in rs[0].features
            },
            estimated=rs[0].estimated,
        )
        for rs in grouped.values()
    ]
    prices = SHIPPED.for_month("2026-11")
    exact = sum(
        (c for a in aggregates if a.product == "async" for c, _ in [exact_cost(a, prices)] if c),
        Decimal(0),
    )

    class Reader:
        def entitlement_state(
            self, customer_id: str, month: str, *, consistent: bool = True
        ) -> tuple[CustomerAllowance | None, list[UsageAggregate]]:
            own = AllowanceSet(
                limits=(
                    Limit(product="async", unit="seconds", amount=Decimal(10**9)),
                    Limit(product="async", unit="cost", amount=Decimal(10**6)),
                    Limit(product="all", unit="seconds", amount=Decimal(10**9)),
                )
            )
            return CustomerAllowance(customer_id="acme", own=own, own_version=1), classes

    answer = check_entitlement(
        "acme", "async", Reader(), SHIPPED, now=datetime(2026, 11, 30, tzinfo=UTC)
    )
    used = {(s.product, s.unit): s.used for s in answer.limits}
    assert used["async", "seconds"] == sum(
        (a.billable_seconds for a in aggregates if a.product == "async"), Decimal(0)
    )
    assert used["all", "seconds"] == sum((r.billable_seconds for r in records), Decimal(0))
    assert used["async", "cost"] == exact.quantize(Decimal("0.000001"), ROUND_HALF_UP) > 0
    assert answer.allowed and all(s.unpriced == "" for s in answer.limits)
