"""Line items: every ledger row of a month, as gzip JSON Lines, so each export figure can be traced.

One JSON object per ledger row (billable and failed), in the order the ledger port yields them
(customer, product, source id). Written through ``gzip`` into a caller-supplied binary file, one
row at a time, so memory stays bounded by one ledger page whatever the month's size; the caller
spools the file to disk (``SpooledTemporaryFile``) and uploads it from there.

While writing, the billable rows are summed per summary-row key (customer x product x project x
model x dimensions x estimated): usage count, seconds and seconds per add-on.
``check_line_items_match`` compares those sums with the aggregates the summary rows are priced
from; any difference means the files would not explain each other, and the export refuses to
publish (``LedgerMismatch``).

Column types follow the Glue tables in template.yaml and ``schemas/line_item.schema.json``:
decimals as exact strings (Hive JSON SerDe parses a quoted decimal into ``decimal``),
``occurred_at`` as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, which is the ``java.sql.Timestamp``
text form the Hive JSON SerDe reads by default (Amazon Data Firehose API reference,
``HiveJsonSerDe.TimestampFormats``: without a format, ``java.sql.Timestamp::valueOf`` is used).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from functools import lru_cache
from typing import IO, Any
from urllib.parse import urlencode

from usage_meter.models.billing import UsageAggregate
from usage_meter.models.usage import UsageRecord, UsageStatus

LINE_ITEMS_NAME = "line_items.jsonl.gz"
UNIT_SECONDS = "second"
UNIT_TOKENS = "token"  # LLM Gateway: quantity = input + output tokens (both also given apart)
# zlib level 6 (its default) rather than gzip's 9: about 2-3x faster on this text for a few
# percent more bytes (docs/decisions.md, line items).
COMPRESS_LEVEL = 6
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

RowKey = tuple[str, str, str, str, str, str, bool]


class LineItemsMismatch(Exception):
    """The month's ledger rows do not add up to the summary rows (raised as LedgerMismatch)."""


@dataclass
class RowTotals:
    usage_count: int = 0
    billable_seconds: Decimal = Decimal(0)
    addon_seconds: dict[str, Decimal] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class LineItemsSummary:
    """What was written: row counts, the sha256 of the uncompressed JSON Lines (stable across
    zlib versions, so "unchanged" never depends on the compressor) and per-key billable sums."""

    row_count: int = 0
    billable_rows: int = 0
    failed_rows: int = 0
    estimated_rows: int = 0
    billable_seconds: Decimal = Decimal(0)
    content_sha256: str = ""
    by_row: dict[RowKey, RowTotals] = field(default_factory=dict)

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "row_count": self.row_count,
            "billable_rows": self.billable_rows,
            "failed_rows": self.failed_rows,
            "estimated_rows": self.estimated_rows,
            "billable_seconds": f"{self.billable_seconds:f}",
        }


def disagreements[K, V](
    expected: Mapping[K, V], found: Mapping[K, V], empty: V, describe: Callable[[K, V, V], str]
) -> list[str]:
    """``describe(key, expected, found)`` for every key, in order, where the two maps differ (a
    key missing on one side counts as ``empty``): the export's cross-checks (aggregates vs
    ledger, summary vs line items)."""
    return [
        describe(key, expected.get(key, empty), found.get(key, empty))
        for key in sorted(expected.keys() | found.keys())  # type: ignore[type-var]
        if expected.get(key, empty) != found.get(key, empty)
    ]


def dimensions_text(dimensions: dict[str, str]) -> str:
    """Dimensions as in the summary rows: URL-encoded, sorted by name."""
    return _encoded(tuple(sorted(dimensions.items()))) if dimensions else ""


@lru_cache(maxsize=4096)
def _encoded(items: tuple[tuple[str, str], ...]) -> str:
    return urlencode(items)


def aggregate_key(a: UsageAggregate) -> RowKey:
    """The summary row of an aggregate (estimated usage has rows of its own)."""
    return (
        a.customer_id,
        a.product,
        a.project,
        a.model,
        a.region,
        dimensions_text(a.dimensions),
        a.estimated,
    )


def hive_timestamp(record: UsageRecord) -> str:
    """``occurred_at`` in UTC as ``YYYY-MM-DD HH:MM:SS.ffffff`` (what Athena reads as timestamp)."""
    moment = record.occurred_at.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")


def line_item_document(record: UsageRecord) -> dict[str, Any]:
    """One ledger row for the line items file (fields: ``schemas/line_item.schema.json``).

    No transcript text or error message is included: only the billing facts and where they came
    from (``origin``: webhook, reconciliation, orphan_sweep, operator, streaming report...)."""
    return {
        "source_id": record.source_id,
        "customer_id": record.customer_id,
        "product": record.product,
        "project": record.project,
        "model": record.model,
        "dimensions": dimensions_text(record.dimensions),
        "quantity": (
            str(record.input_tokens + record.output_tokens)
            if record.product == "llm_gateway"
            else f"{record.billable_seconds:f}"
        ),
        "unit": UNIT_TOKENS if record.product == "llm_gateway" else UNIT_SECONDS,
        "region": record.region or None,  # null when none, as in the summary rows
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "billable_seconds": f"{record.billable_seconds:f}",
        "audio_duration_seconds": (
            None if record.audio_duration_seconds is None else f"{record.audio_duration_seconds:f}"
        ),
        "audio_channels": record.audio_channels,
        "language_code": record.language_code,
        "add_ons": sorted(record.features),
        "occurred_at": hive_timestamp(record),
        "origin": record.origin,
        "estimated": record.estimated,
        "status": record.status.value,
    }


def write_line_items(records: Iterable[UsageRecord], out: IO[bytes]) -> LineItemsSummary:
    """Stream ``records`` into ``out`` as deterministic gzip JSON Lines (mtime 0, no file name).

    Memory: one row at a time plus the per-key sums (as many as the month's summary rows)."""
    summary = LineItemsSummary()
    digest = hashlib.sha256()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=out, mtime=0, compresslevel=COMPRESS_LEVEL
    ) as compressed:
        buffered = io.BufferedWriter(compressed, buffer_size=256 * 1024)
        for record in records:
            document = line_item_document(record)
            line = (_ENCODER.encode(document) + "\n").encode("utf-8")
            digest.update(line)
            buffered.write(line)
            _count(summary, record, document["dimensions"])
        buffered.flush()
        buffered.detach()
    summary.content_sha256 = digest.hexdigest()
    return summary


def _count(summary: LineItemsSummary, record: UsageRecord, dimensions: str) -> None:
    summary.row_count += 1
    if record.status is not UsageStatus.BILLABLE:
        summary.failed_rows += 1
        return
    summary.billable_rows += 1
    summary.estimated_rows += int(record.estimated)
    summary.billable_seconds += record.billable_seconds
    key = (
        record.customer_id,
        record.product,
        record.project,
        record.model,
        record.region,
        dimensions,
        record.estimated,
    )
    totals = summary.by_row.setdefault(key, RowTotals())
    totals.usage_count += 1
    totals.billable_seconds += record.billable_seconds
    totals.input_tokens += record.input_tokens
    totals.output_tokens += record.output_tokens
    for feature in record.features:
        totals.addon_seconds[feature] = (
            totals.addon_seconds.get(feature, Decimal(0)) + record.billable_seconds
        )


def check_line_items_match(
    month: str, aggregates: list[UsageAggregate], summary: LineItemsSummary
) -> None:
    """Every summary row equals the sum of its line items (count, seconds, add-on seconds), and
    no billable line item lacks a summary row. Raises LineItemsMismatch naming the rows."""
    expected = {
        aggregate_key(a): _normal(
            RowTotals(
                a.usage_count,
                a.billable_seconds,
                dict(a.addon_seconds),
                a.input_tokens,
                a.output_tokens,
            )
        )
        for a in aggregates
    }
    found = {key: _normal(totals) for key, totals in summary.by_row.items()}
    problems = disagreements(
        expected,
        found,
        _normal(RowTotals()),
        lambda key, want, got: (
            f"{'/'.join(map(str, key))}: summary {_describe(want)}, line items {_describe(got)}"
        ),
    )
    if problems:
        raise LineItemsMismatch(
            f"{month}: line items do not add up to the summary rows: " + "; ".join(problems[:20])
        )


def _normal(totals: RowTotals) -> RowTotals:
    """Zero add-on seconds are the same as none (an aggregate emptied by a moved row keeps them)."""
    addons = {k: v for k, v in totals.addon_seconds.items() if v != 0}
    return RowTotals(
        totals.usage_count,
        totals.billable_seconds,
        addons,
        totals.input_tokens,
        totals.output_tokens,
    )


def _describe(totals: RowTotals) -> str:
    addons = ",".join(f"{k}={v:f}" for k, v in sorted(totals.addon_seconds.items()))
    tokens = (
        f" / {totals.input_tokens} in / {totals.output_tokens} out tokens"
        if totals.input_tokens or totals.output_tokens
        else ""
    )
    return f"{totals.usage_count} / {totals.billable_seconds:f} s{tokens}" + (
        f" [{addons}]" if addons else ""
    )
