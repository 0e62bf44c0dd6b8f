"""A customer's month on one small item, for the entitlement check and the threshold watcher.

PK ``CUSTOMER#<customer>``, SK ``USAGE#<month>``. For every aggregate breakdown
(``<product>#<project>#<model>#<dimensions>[#estimated]``, readable, never digested) it holds
``n|<breakdown>`` (usage count), ``s|<breakdown>`` (billable seconds) and
``a|<breakdown>|<feature>`` (add-on seconds): exactly the numbers on the aggregate items, ADDed in
the **same transaction** as the ledger row and the aggregate (record and replace), so the summary
equals the aggregates at every moment and the check agrees with the usage API. Reading it is one
GetItem-sized request instead of a Query over every aggregate item.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

from boto3.dynamodb.types import TypeSerializer

from usage_meter.models.billing import UsageAggregate

_serializer = TypeSerializer()
Change = tuple[str, str, str, str, dict[str, Decimal], int, Decimal, tuple[int, int]]
"""(customer id, the customer as keys spell it, month, readable breakdown, add-on seconds deltas,
count delta, seconds delta, (input, output) token deltas)"""
ESTIMATED = "estimated"  # the breakdown's last part for estimated usage (usage_keys)


def summary_key(customer_part: str, month: str) -> dict[str, str]:
    """``customer_part``: the customer as keys spell it (``usage_keys.customer_key``)."""
    return {"PK": f"CUSTOMER#{customer_part}", "SK": f"USAGE#{month}"}


def summary_updates(table: str, changes: list[Change]) -> list[dict[str, Any]]:
    """One Update per customer-month touched (an item may appear once per transaction)."""
    grouped: dict[tuple[str, str, str], dict[str, Decimal]] = defaultdict(dict)
    for customer_id, customer_part, month, breakdown, addons, count, seconds, tokens in changes:
        deltas = grouped[customer_id, customer_part, month]
        for name, value in (
            (f"n|{breakdown}", Decimal(count)),
            (f"s|{breakdown}", seconds),
            *(((f"i|{breakdown}", Decimal(tokens[0])),) if tokens[0] else ()),
            *(((f"o|{breakdown}", Decimal(tokens[1])),) if tokens[1] else ()),
            *((f"a|{breakdown}|{feature}", added) for feature, added in addons.items()),
        ):
            deltas[name] = deltas.get(name, Decimal(0)) + value
    updates = []
    for (customer_id, customer_part, month), deltas in grouped.items():
        names = {f"#d{i}": name for i, name in enumerate(deltas)}
        values = {f":d{i}": value for i, value in enumerate(deltas.values())}
        adds = ", ".join(f"#d{i} :d{i}" for i in range(len(deltas)))
        updates.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": {
                        k: _serializer.serialize(v)
                        for k, v in summary_key(customer_part, month).items()
                    },
                    "UpdateExpression": f"ADD {adds} SET entity = :e, customer_id = :c, #m = :m",
                    "ExpressionAttributeNames": {**names, "#m": "month"},
                    "ExpressionAttributeValues": {
                        k: _serializer.serialize(v)
                        for k, v in {
                            **values,
                            ":e": "usage_summary",
                            ":c": customer_id,
                            ":m": month,
                        }.items()
                    },
                }
            }
        )
    return updates


def aggregates_from_summary(values: dict[str, Any]) -> list[UsageAggregate]:
    """The month's aggregates as the summary holds them (breakdowns with a zero count and zero
    seconds, left by a row moved to another month, are dropped like an emptied aggregate)."""
    counts: dict[str, int] = {}
    seconds: dict[str, Decimal] = {}
    tokens: dict[str, dict[str, int]] = defaultdict(dict)
    addons: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for name, value in values.items():
        kind, _, rest = name.partition("|")
        if kind == "n":
            counts[rest] = int(value)
        elif kind == "s":
            seconds[rest] = Decimal(value)
        elif kind in ("i", "o"):
            tokens[rest]["input_tokens" if kind == "i" else "output_tokens"] = int(value)
        elif kind == "a":
            breakdown, _, feature = rest.rpartition("|")
            addons[breakdown][feature] = Decimal(value)
    out = []
    for breakdown, count in sorted(counts.items()):
        if count == 0 and not seconds.get(breakdown) and not any(tokens[breakdown].values()):
            continue
        parts = breakdown.split("#")
        product, project, model, dims = (unquote(p) for p in parts[:4])
        extra = parts[4:]  # "region=<r>" and/or "estimated" (usage_keys.readable_breakdown)
        region = next((unquote(p[len("region=") :]) for p in extra if p.startswith("region=")), "")
        out.append(
            UsageAggregate(
                customer_id=str(values["customer_id"]),
                month=str(values["month"]),
                product=product,
                project=project,
                model=model,
                dimensions=dict(parse_qsl(dims)) if dims != "-" else {},
                usage_count=count,
                billable_seconds=seconds.get(breakdown, Decimal(0)),
                addon_seconds={k: v for k, v in addons[breakdown].items() if v},
                estimated=ESTIMATED in extra,
                region=region,
                **tokens[breakdown],
            )
        )
    return out
