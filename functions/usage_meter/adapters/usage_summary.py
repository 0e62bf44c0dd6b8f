"""A customer's month on one small, bounded item, for the entitlement check and thresholds.

PK ``CUSTOMER#<customer>``, SK ``USAGE#<month>``. The item holds what a limit needs and nothing
more: per **price class** ``<product>#<model>[#region=<r>]`` (parts percent-encoded) the usage
count ``n|<class>``, billable seconds ``s|<class>``, tokens ``i|<class>`` / ``o|<class>`` and
add-on seconds ``a|<class>|<feature>``. A seconds limit sums a product's classes; a cost limit
prices each class (``pricing.exact_cost``): a row's price depends on its product, model, region
and add-ons only, never on its project, dimensions or whether it is an estimate, and the exact
cost is linear in seconds and tokens, so the classes' exact costs add up to exactly the sum of
the usage API's rows' exact costs.

Bounded by design: DynamoDB refuses an item over 400 KB, attribute names included (AWS DynamoDB
Developer Guide, "Constraints in Amazon DynamoDB", Items: "The maximum item size in DynamoDB is
400 KB, which includes both attribute name binary length (UTF-8 length) and attribute value
lengths"). Projects and dimensions are the customer's own and unbounded (10,000 teams are 10,000
breakdowns); products, models, regions and add-ons are AssemblyAI's catalogue (a few dozen). The
item therefore grows with the catalogue a customer used in a month, not with its breakdowns:
about ``CLASS_BYTES`` per class plus ``ADD_ON_BYTES`` per add-on used on it.

The summary is ADDed in the **same transaction** as the ledger row and the aggregate (record,
replace, month moves), so it equals the aggregates, grouped by class, at every moment. Reading it
is one GetItem-sized request instead of a Query over every aggregate item. Items written before
price classes (one entry per breakdown ``<product>#<project>#<model>#<dimensions>...``) read the
same way: each breakdown folds into its class.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from boto3.dynamodb.types import TypeSerializer

from usage_meter.models.billing import UsageAggregate

_serializer = TypeSerializer()
Change = tuple[str, str, str, str, dict[str, Decimal], int, Decimal, tuple[int, int]]
"""(customer id, the customer as keys spell it, month, readable breakdown
(``usage_keys.readable_breakdown``), add-on seconds deltas, count delta, seconds delta,
(input, output) token deltas)"""
ESTIMATED = "estimated"  # the breakdown's last part for estimated usage (usage_keys)
REGION = "region="
CLASS_BYTES = 4 * 150  # n, s, i, o: "x|" + product + model (<= 64 bytes) + region, and a number
ADD_ON_BYTES = 200  # "a|" + class + "|" + feature name, and a number


def summary_key(customer_part: str, month: str) -> dict[str, str]:
    """``customer_part``: the customer as keys spell it (``usage_keys.customer_key``)."""
    return {"PK": f"CUSTOMER#{customer_part}", "SK": f"USAGE#{month}"}


def price_class(breakdown: str) -> tuple[str, str, str]:
    """(product, model, region) of a readable breakdown
    (``product#project#model#dimensions[#region=<r>][#estimated]``) or of a price class
    (``product#model[#region=<r>]``), decoded."""
    product, *rest = breakdown.split("#")
    region = next((unquote(p[len(REGION) :]) for p in rest if p.startswith(REGION)), "")
    named = [p for p in rest if not p.startswith(REGION) and p != ESTIMATED]
    model = named[1] if len(named) >= 3 else named[0]  # a breakdown: project, model, dimensions
    return product, unquote(model), region


def class_name(product: str, model: str, region: str) -> str:
    """The attribute-name part of a price class: ``product#model[#region=<r>]``, encoded."""
    name = f"{product}#{quote(model, safe='._:@-')}"
    return f"{name}#{REGION}{quote(region, safe='._:@-')}" if region else name


def summary_updates(table: str, changes: list[Change]) -> list[dict[str, Any]]:
    """One Update per customer-month touched (an item may appear once per transaction), ADDing
    each change to its price class."""
    grouped: dict[tuple[str, str, str], dict[str, Decimal]] = defaultdict(dict)
    for customer_id, customer_part, month, breakdown, addons, count, seconds, tokens in changes:
        deltas = grouped[customer_id, customer_part, month]
        cls = class_name(*price_class(breakdown))
        for name, value in (
            (f"n|{cls}", Decimal(count)),
            (f"s|{cls}", seconds),
            *(((f"i|{cls}", Decimal(tokens[0])),) if tokens[0] else ()),
            *(((f"o|{cls}", Decimal(tokens[1])),) if tokens[1] else ()),
            *((f"a|{cls}|{feature}", added) for feature, added in addons.items()),
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
    """The month's usage per price class, as aggregates with an empty project and no dimensions
    (classes with a zero count, seconds and tokens, left by rows moved to another month, are
    dropped like an emptied aggregate)."""
    Class = tuple[str, str, str]
    counts: dict[Class, int] = defaultdict(int)
    seconds: dict[Class, Decimal] = defaultdict(Decimal)
    tokens: dict[Class, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    addons: dict[Class, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for name, value in values.items():
        kind, _, rest = name.partition("|")
        if kind == "a":
            rest, _, feature = rest.rpartition("|")
            addons[price_class(rest)][feature] += Decimal(value)
        elif kind == "n":
            counts[price_class(rest)] += int(value)
        elif kind == "s":
            seconds[price_class(rest)] += Decimal(value)
        elif kind in ("i", "o"):
            field = "input_tokens" if kind == "i" else "output_tokens"
            tokens[price_class(rest)][field] += int(value)
    out = []
    for key in sorted(counts.keys() | seconds.keys()):
        product, model, region = key
        used_tokens = {k: v for k, v in tokens[key].items() if v}
        if not counts[key] and not seconds[key] and not used_tokens:
            continue
        out.append(
            UsageAggregate(
                customer_id=str(values["customer_id"]),
                month=str(values["month"]),
                product=product,
                project="",
                model=model,
                usage_count=counts[key],
                billable_seconds=seconds[key],
                addon_seconds={k: v for k, v in addons[key].items() if v},
                region=region,
                **used_tokens,
            )
        )
    return out
