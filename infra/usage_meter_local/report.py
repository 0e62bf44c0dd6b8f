"""Reading what the local stack recorded, from moto's server through boto3, and printing it as
plain-text tables.

The local table holds a handful of items, so the report reads it with one Scan and groups the items
by their ``entity`` attribute: it depends on the items' attributes, not on the key layout (which
only the service's adapter knows). The service itself never scans.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from usage_meter.models.usage import canonical_decimal
from usage_meter_local.stack import LocalStack

SECONDS_PER_HOUR = Decimal(3600)


@dataclass(frozen=True)
class CustomerMonth:
    customer_id: str
    month: str
    count: int
    billable_seconds: Decimal
    estimated_seconds: Decimal
    models: tuple[str, ...]
    products: tuple[str, ...]
    projects: tuple[str, ...]

    @property
    def hours(self) -> Decimal:
        return (self.billable_seconds / SECONDS_PER_HOUR).quantize(Decimal("0.0001"))


@dataclass(frozen=True)
class DeadLetter:
    transcript_id: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Recorded:
    usage: list[CustomerMonth]
    ledger: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    dead_letters: list[DeadLetter]


def table_items(stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    """Every item of the usage table, by ``entity`` (ledger, aggregate, quarantine, ...)."""
    deserialize = TypeDeserializer().deserialize
    by_entity: dict[str, list[dict[str, Any]]] = {}
    paginator = stack.clients.dynamodb.get_paginator("scan")
    for page in paginator.paginate(TableName=stack.resources.tables["UsageTable"]):
        for raw in page.get("Items", []):
            item = {k: deserialize(v) for k, v in raw.items()}
            by_entity.setdefault(str(item.get("entity", "?")), []).append(item)
    return by_entity


def usage_by_customer_month(aggregates: list[dict[str, Any]]) -> list[CustomerMonth]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in aggregates:
        groups.setdefault((str(item["customer_id"]), str(item["month"])), []).append(item)

    def distinct(items: list[dict[str, Any]], name: str) -> tuple[str, ...]:
        return tuple(sorted({str(i.get(name)) for i in items}))

    return [
        CustomerMonth(
            customer_id=customer,
            month=month,
            count=sum(int(i.get("usage_count", 0)) for i in items),
            billable_seconds=canonical_decimal(
                sum((Decimal(i["billable_seconds"]) for i in items), Decimal(0))
            ),
            estimated_seconds=canonical_decimal(
                sum(
                    (Decimal(i["billable_seconds"]) for i in items if i.get("estimated")),
                    Decimal(0),
                )
            ),
            models=distinct(items, "model"),
            products=distinct(items, "product"),
            projects=distinct(items, "project"),
        )
        for (customer, month), items in sorted(groups.items())
    ]


def read_recorded(stack: LocalStack) -> Recorded:
    items = table_items(stack)
    ledger = sorted(
        items.get("ledger", []), key=lambda i: (i["customer_id"], i["month"], i["source_id"])
    )
    quarantine = [q for q in items.get("quarantine", []) if q.get("state", "open") == "open"]
    return Recorded(
        usage=usage_by_customer_month(items.get("aggregate", [])),
        ledger=ledger,
        quarantine=sorted(quarantine, key=lambda q: (q["source_id"], q["reason"])),
        dead_letters=dead_letters(stack),
    )


def dead_letters(stack: LocalStack) -> list[DeadLetter]:
    """The dead-letter queue's messages, looked at without consuming them."""
    sqs = stack.clients.sqs
    url = stack.resources.queue_urls["UsageDeadLetterQueue"]
    seen: dict[str, DeadLetter] = {}
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in seen]
        if not new:
            return sorted(seen.values(), key=lambda d: d.transcript_id)
        for message in new:
            attributes = message.get("MessageAttributes") or {}
            reason: dict[str, Any] = dict(attributes.get("reason") or {})
            detail: dict[str, Any] = dict(attributes.get("detail") or {})
            try:
                transcript_id = str(json.loads(message["Body"]).get("transcript_id", "?"))
            except (ValueError, AttributeError):
                transcript_id = "?"
            seen[message["MessageId"]] = DeadLetter(
                transcript_id=transcript_id,
                reason=reason.get("StringValue", "max receives reached"),
                detail=detail.get("StringValue", ""),
            )


# -- tables ----------------------------------------------------------------------------------------
def short_id(source_id: str) -> str:
    return f"{source_id[:8]}…{source_id[-4:]}" if len(source_id) > 16 else source_id


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; numbers are right-aligned."""
    if not rows:
        return f"{title}\n  (none)\n"
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], int | Decimal) for row in rows if row[i] is not None)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  " + "  ".join(parts).rstrip()

    out = [title, line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "-"
    if isinstance(value, Decimal):
        return f"{canonical_decimal(value):f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def render(recorded: Recorded) -> str:
    usage = table(
        "Usage recorded per customer and month (DynamoDB monthly aggregates)",
        [
            "customer",
            "month",
            "count",
            "billable seconds",
            "of which estimated",
            "hours",
            "products",
            "models",
        ],
        [
            [
                u.customer_id,
                u.month,
                u.count,
                u.billable_seconds,
                u.estimated_seconds,
                u.hours,
                u.products,
                u.models,
            ]
            for u in recorded.usage
        ],
    )
    ledger = table(
        "Ledger (one row per usage source, billed at most once)",
        [
            "source",
            "customer",
            "month",
            "status",
            "billable s",
            "audio s",
            "ch",
            "tokens in/out",
            "model",
            "add-ons",
            "estimated",
            "project",
            "dimensions",
        ],
        [
            [
                short_id(str(r["source_id"])),
                r["customer_id"],
                r["month"],
                r.get("status"),
                r.get("billable_seconds"),
                r.get("audio_duration_seconds"),
                r.get("audio_channels"),
                f"{r['input_tokens']}/{r['output_tokens']}"
                if r.get("product") == "llm_gateway"
                else "-",
                r.get("model"),
                r.get("features"),
                bool(r.get("estimated")),
                r.get("project"),
                r.get("dimensions"),
            ]
            for r in recorded.ledger
        ],
    )
    quarantine = table(
        "Quarantined (accepted, not billed, kept with the reason for a human)",
        ["source", "reason", "detail"],
        [
            [short_id(str(q["source_id"])), q["reason"], q.get("detail")]
            for q in recorded.quarantine
        ],
    )
    dlq = table(
        "Dead-letter queue (processing gave up, with the reason)",
        ["transcript", "reason", "detail"],
        [[short_id(d.transcript_id), d.reason, d.detail] for d in recorded.dead_letters],
    )
    return "\n".join([usage, ledger, quarantine, dlq])
