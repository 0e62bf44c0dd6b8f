"""The monthly billing export: aggregates -> priced rows -> versioned, reproducible files.

- Reads the month's aggregates (one Query; cost grows with customers x breakdowns, not events).
- One bad item never blocks the month: a stored aggregate or ledger row this code cannot read
  (damaged, hand-edited, written by an unknown version) **holds its customer back** - none of
  its rows, line items or totals are in this version - and the rest is published. The manifest
  lists each held customer with the reason (``held``) and ``ExportCustomersHeld`` counts them
  (alarmed). Once the item is repaired, exporting the month again publishes a new version with
  the customer (``changes``). An unreadable item naming no customer cannot be isolated: the
  month then fails loudly like a disagreement.
- Checks them against the ledger per customer (count, seconds and tokens) before writing anything; a
  disagreement fails the run loudly (LedgerMismatch, metric ``ExportLedgerMismatch``).
- Streams the month's ledger rows into line_items.jsonl.gz (bounded memory, spooled to disk) and
  checks that they add up exactly to every summary row (``logic/line_items.py``).
- Renders usage.csv and usage.jsonl deterministically. If the latest published version has the
  same content (summary bytes and uncompressed line items), nothing is written. Otherwise version
  N+1 is published with a manifest saying what changed; published versions are never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any, Literal, Protocol

from usage_meter.logic.billing_files import render_csv, render_jsonl, row_document, row_sort_key
from usage_meter.logic.coverage import coverage_report
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.line_items import (
    LINE_ITEMS_NAME,
    LineItemsMismatch,
    LineItemsSummary,
    check_line_items_match,
    disagreements,
    write_line_items,
)
from usage_meter.logic.ports import UsageMetrics
from usage_meter.logic.pricing import price_aggregate
from usage_meter.models.billing import (
    ExportRow,
    LedgerTotals,
    PriceTable,
    PriceVersion,
    UsageAggregate,
)
from usage_meter.models.coverage import UncoveredTranscript
from usage_meter.models.months import MONTH_RULE, is_month
from usage_meter.models.usage import UsageRecord, canonical_decimal

# 2: rows carry region, input_tokens, output_tokens and their prices (products billed per token
# or by region); seconds-based rows keep their meaning, with those columns empty or 0.
MANIFEST_SCHEMA_VERSION = 2
# The Glue tables project versions 1..MAX_VERSION (template.yaml, projection.version.range); a
# version beyond it would be invisible to Athena, so the export refuses to write it.
MAX_VERSION = 100
# Line items are spooled in memory up to this size, then to /tmp (EphemeralStorage).
SPOOL_BYTES = 8 * 1024 * 1024
CSV_NAME, JSONL_NAME, MANIFEST_NAME = "usage.csv", "usage.jsonl", "manifest.json"


class InvalidMonth(ValueError):
    pass


class LedgerMismatch(Exception):
    """Aggregates and ledger disagree: the export must not be published."""


def check_month(month: str) -> str:
    """``month`` when it is a billing month (``models.months``), else InvalidMonth."""
    if not is_month(month):
        raise InvalidMonth(f"{MONTH_RULE}, got {month[:20]!r}")
    return month


def previous_month(now: datetime) -> str:
    now = now.astimezone(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@dataclass(frozen=True)
class PublishedExport:
    version: int
    manifest: dict[str, Any]


Unreadable = Callable[[str, str], object]
"""Told of each stored item that cannot be read: (its customer id, or ""; the reason)."""
# A customer found unreadable in the middle of the line items may already have rows in the file:
# it is written again without them. More passes than this means the month keeps changing.
MAX_LINE_ITEM_PASSES = 3


class UsageReader(Protocol):
    def month_aggregates(
        self, month: str, unreadable: Unreadable | None = None
    ) -> list[UsageAggregate]:
        """The month's aggregates; with ``unreadable``, an item that cannot be read is reported
        there and left out instead of raising."""
        ...

    def customer_aggregates(self, customer_id: str, month: str) -> list[UsageAggregate]: ...

    def month_ledger_totals(self, month: str) -> dict[str, LedgerTotals]:
        """Count, seconds and tokens of billable ledger rows per customer in the month."""
        ...

    def month_ledger_rows(
        self, month: str, unreadable: Unreadable | None = None
    ) -> Iterator[UsageRecord]:
        """Every ledger row of the month, billable and failed, in a stable order, streamed
        (``unreadable`` as for ``month_aggregates``)."""
        ...

    def month_uncovered(self, month: str) -> Iterator[UncoveredTranscript]:
        """Transcripts of the month AssemblyAI bills that no customer is billed for."""
        ...


class ExportStore(Protocol):
    def latest(self, month: str) -> PublishedExport | None: ...

    def next_version(self, month: str) -> int: ...

    def read(self, month: str, version: int, name: str) -> bytes: ...

    def publish(self, month: str, version: int, files: Mapping[str, bytes | IO[bytes]]) -> None:
        """Write the files, manifest last; never overwrite an existing object."""
        ...


@dataclass(frozen=True)
class ExportResult:
    month: str
    status: Literal["published", "unchanged"]
    version: int
    row_count: int
    manifest: dict[str, Any]


def priced_rows(aggregates: list[UsageAggregate], version: PriceVersion | None) -> list[ExportRow]:
    return sorted((price_aggregate(a, version) for a in aggregates), key=row_sort_key)


def verify_against_ledger(
    month: str,
    aggregates: list[UsageAggregate],
    reader: UsageReader,
    held: Mapping[str, str] | None = None,
) -> None:
    """Count, seconds and tokens per customer must agree exactly, in both directions (a customer
    with ledger rows but no aggregate is a disagreement too); ``held`` customers are left out."""
    expected: dict[str, LedgerTotals] = {}
    for aggregate in aggregates:
        expected[aggregate.customer_id] = expected.get(
            aggregate.customer_id, LedgerTotals()
        ) + LedgerTotals(
            aggregate.usage_count,
            aggregate.billable_seconds,
            aggregate.input_tokens,
            aggregate.output_tokens,
        )
    ledger = {c: t for c, t in reader.month_ledger_totals(month).items() if c not in (held or {})}
    problems = disagreements(
        expected,
        ledger,
        LedgerTotals(),
        lambda customer, want, got: (
            f"{customer}: aggregates {want.describe()}, ledger {got.describe()}"
        ),
    )
    if problems:
        raise LedgerMismatch(
            f"{month}: aggregates disagree with the ledger: " + "; ".join(problems)
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(spool: IO[bytes]) -> dict[str, Any]:
    """sha256 and size of a spooled file, read back in 1 MiB chunks."""
    spool.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := spool.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return {"sha256": digest.hexdigest(), "bytes": size}


def content_fingerprint(files: Mapping[str, Any]) -> dict[str, str]:
    """What decides "unchanged": each file's sha256, or for compressed files the sha256 of the
    uncompressed content (so a different zlib never forces a new version)."""
    return {
        name: str(entry.get("content_sha256") or entry["sha256"]) for name, entry in files.items()
    }


class VersionLimitReached(Exception):
    """A month has been exported MAX_VERSION times; Athena would not see another version."""


ROUNDING = (
    "cost = exact(seconds x model price/hour / 3600 + add-on seconds x add-on price/hour / 3600),"
    " plus input/output tokens x price per million tokens (after the region's factor) / 1e6,"
    " half-up to 0.01 once per row; totals are sums of rounded rows; cost_unrounded keeps the"
    " exact amounts"
)


def _sum(values: list[Decimal]) -> str:
    return f"{canonical_decimal(sum(values, Decimal(0))):f}"


def totals(rows: list[ExportRow]) -> dict[str, Any]:
    """Totals of the rows: ``cost`` is the sum of the rounded row costs (what the invoice lines
    add up to), ``cost_unrounded`` the exact sum; ``estimated_*`` the part that is an estimate
    (orphaned streaming sessions billed at their bound), already included in the totals."""
    priced = [r for r in rows if r.cost is not None]
    estimated = [r for r in rows if r.estimated]
    return {
        "usage_count": sum(r.usage_count for r in rows),
        "billable_seconds": _sum([r.billable_seconds for r in rows]),
        "input_tokens": sum(r.input_tokens for r in rows),
        "output_tokens": sum(r.output_tokens for r in rows),
        "cost": f"{sum((r.cost for r in priced if r.cost is not None), Decimal(0)):f}",
        "cost_unrounded": _sum([r.cost_unrounded for r in priced if r.cost_unrounded is not None]),
        "priced_rows": len(priced),
        "unpriced_rows": len(rows) - len(priced),
        "estimated_rows": len(estimated),
        "estimated_usage_count": sum(r.usage_count for r in estimated),
        "estimated_seconds": _sum([r.billable_seconds for r in estimated]),
        "estimated_cost": f"{sum((r.cost for r in estimated if r.cost is not None), Decimal(0)):f}",
    }


def _changes(rows: list[ExportRow], previous_jsonl: bytes | None) -> dict[str, Any] | None:
    if previous_jsonl is None:
        return None
    before = {
        (
            *(d[k] for k in ("customer_id", "product", "project", "model", "dimensions")),
            "estimated" if d.get("estimated") else "",
            d.get("region") or "",
        ): d
        for d in (json.loads(line) for line in previous_jsonl.decode().splitlines() if line)
    }
    after = {row_sort_key(r): row_document(r) for r in rows}
    seconds_before = sum((Decimal(d["billable_seconds"]) for d in before.values()), Decimal(0))
    seconds_after = sum((r.billable_seconds for r in rows), Decimal(0))
    return {
        "rows_added": len(after.keys() - before.keys()),
        "rows_removed": len(before.keys() - after.keys()),
        "rows_changed": sum(1 for k in after.keys() & before.keys() if after[k] != before[k]),
        "usage_count_delta": sum(r.usage_count for r in rows)
        - sum(d["usage_count"] for d in before.values()),
        "billable_seconds_delta": f"{canonical_decimal(seconds_after - seconds_before):f}",
    }


def export_month(
    month: str,
    reader: UsageReader,
    store: ExportStore,
    prices: PriceTable,
    metrics: UsageMetrics,
) -> ExportResult:
    check_month(month)
    held: dict[str, str] = {}  # customer -> why it is held back (the first unreadable item)
    aggregates = reader.month_aggregates(month, held.setdefault)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        try:
            line_items = _line_items(month, reader, held, spool)
            if "" in held:
                raise LedgerMismatch(f"{month}: an unreadable item names no customer: {held['']}")
            aggregates = [a for a in aggregates if a.customer_id not in held]
            verify_against_ledger(month, aggregates, reader, held)
            check_line_items_match(month, aggregates, line_items)
        except LineItemsMismatch as exc:
            metrics.count("ExportLedgerMismatch")
            raise LedgerMismatch(str(exc)) from exc
        except LedgerMismatch:
            metrics.count("ExportLedgerMismatch")
            raise
        if held:
            metrics.count("ExportCustomersHeld", len(held))
        return _publish(
            month,
            reader=reader,
            aggregates=aggregates,
            line_items=line_items,
            spool=spool,
            store=store,
            prices=prices,
            metrics=metrics,
            held=held,
        )


def _line_items(
    month: str, reader: UsageReader, held: dict[str, str], spool: IO[bytes]
) -> LineItemsSummary:
    """The month's line items without the ``held`` customers' rows, adding to ``held`` every
    customer with an unreadable row. Rows come in customer order, so a customer found
    unreadable may already have rows in the file: then the file is written again without it
    (a second pass over the month, only when a new customer is held)."""
    for _ in range(MAX_LINE_ITEM_PASSES):
        found: dict[str, str] = {}
        spool.seek(0)
        spool.truncate()
        rows = reader.month_ledger_rows(month, found.setdefault)
        summary = write_line_items(
            (r for r in rows if r.customer_id not in held and r.customer_id not in found), spool
        )
        new = {c: why for c, why in found.items() if c not in held}
        if not new:
            return summary
        held.update(new)
    raise TransientFailure(
        f"{month}: new unreadable ledger rows on each of {MAX_LINE_ITEM_PASSES} passes; retry"
    )


def _publish(
    month: str,
    *,
    reader: UsageReader,
    aggregates: list[UsageAggregate],
    line_items: LineItemsSummary,
    spool: IO[bytes],
    store: ExportStore,
    prices: PriceTable,
    metrics: UsageMetrics,
    held: Mapping[str, str],
) -> ExportResult:
    price_version = prices.for_month(month)
    held_back = [{"customer_id": c, "reason": why} for c, why in sorted(held.items())]
    rows = priced_rows(aggregates, price_version)
    coverage = coverage_report(month, reader.month_uncovered(month), prices)
    summary_files = {CSV_NAME: render_csv(rows), JSONL_NAME: render_jsonl(rows)}
    digests: dict[str, dict[str, Any]] = {
        name: {"sha256": _sha256(data), "bytes": len(data), "rows": len(rows)}
        for name, data in summary_files.items()
    }
    digests[LINE_ITEMS_NAME] = {
        **_file_digest(spool),
        "rows": line_items.row_count,
        "content_sha256": line_items.content_sha256,
    }

    latest = store.latest(month)
    if (
        latest is not None
        and content_fingerprint(latest.manifest.get("files") or {}) == content_fingerprint(digests)
        and latest.manifest.get("coverage") == coverage
        and (latest.manifest.get("held") or []) == held_back
    ):
        metrics.count("ExportUnchanged")
        return ExportResult(month, "unchanged", latest.version, len(rows), latest.manifest)

    version = store.next_version(month)
    if version > MAX_VERSION:
        raise VersionLimitReached(
            f"{month} already has {MAX_VERSION} versions; raise MAX_VERSION and the Glue tables' "
            "projection.version.range together"
        )
    previous = store.read(month, latest.version, JSONL_NAME) if latest else None
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "month": month,
        "version": version,
        "previous_version": latest.version if latest else None,
        "row_count": len(rows),
        "totals": totals(rows),
        "currency": price_version.currency if price_version else None,
        "price_table_version": price_version.version if price_version else None,
        "rounding": ROUNDING,
        "files": digests,
        "line_items": line_items.manifest_entry(),
        "coverage": coverage,
        "unpriced": [
            {
                "customer_id": r.customer_id,
                "product": r.product,
                "project": r.project,
                "model": r.model,
                "region": r.region,
                "estimated": r.estimated,
                "reason": r.unpriced,
            }
            for r in rows
            if r.cost is None
        ],
        "changes": _changes(rows, previous),
        "held": held_back,
    }
    files: dict[str, bytes | IO[bytes]] = {**summary_files, LINE_ITEMS_NAME: spool}
    # One line: the manifests table reads it with the Hive JSON SerDe (one object per line).
    files[MANIFEST_NAME] = (
        json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    ).encode()
    store.publish(month, version, files)
    metrics.count("ExportPublished")
    metrics.count("ExportRows", len(rows))
    return ExportResult(month, "published", version, len(rows), manifest)
