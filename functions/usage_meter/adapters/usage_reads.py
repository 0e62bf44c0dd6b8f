"""A month's usage as the export and reports read it (port ``logic.monthly_export.UsageReader``):
aggregates (one Query on a customer's partition, or the month's keys on LedgerByMonth then
BatchGetItem), the ledger check's totals over ``LedgerByMonth`` (``ledger_index``), the month's
ledger rows in customer order, uncovered transcripts. Never a Scan; memory is one page per shard
whatever the month's size."""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from usage_meter.adapters.table_access import TableAdapter
from usage_meter.adapters.unreadable import Unreadable, readable
from usage_meter.adapters.usage_keys import (
    LEDGER_INDEX,
    LEDGER_SHARDS,
    aggregate_from_item,
    customer_key,
    emptied,
    ledger_partition,
    record_from_item,
    to_item,
)
from usage_meter.models.billing import LedgerTotals, UsageAggregate
from usage_meter.models.coverage import UncoveredReason, UncoveredTranscript
from usage_meter.models.usage import UsageRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


READ_AHEAD_PAGES = 2  # pages of one shard waiting for the merge (memory: 16 x 2 pages)
_PAGE_ITEMS = 1000  # items handed over at once (about one page of full ledger rows)
_DONE = object()


def _read_ahead(items: Iterator[dict[str, Any]], stop: threading.Event) -> Iterator[dict[str, Any]]:
    """``items``, read by a daemon thread (started at once) into a bounded queue while the
    caller consumes them. An exception of the reader (a domain error from ``_pages``) is raised
    to the consumer, after the batches before it."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=READ_AHEAD_PAGES)

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(value, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        batch: list[dict[str, Any]] = []
        try:
            for item in items:
                batch.append(item)
                if len(batch) == _PAGE_ITEMS:
                    if not put(batch):
                        return
                    batch = []
            put(batch)
            put(_DONE)
        except Exception as exc:  # handed to the consumer, raised there
            put(exc)

    def consume() -> Iterator[dict[str, Any]]:
        while True:
            value = handoff.get()
            if value is _DONE:
                return
            if isinstance(value, Exception):
                raise value
            yield from value

    threading.Thread(target=read, daemon=True).start()  # now, not at the first next()
    return consume()


class DynamoUsageReader(TableAdapter):
    """``ledger_workers`` and ``client_factory`` (a fresh client per worker process) only matter
    to the export's ledger check (``month_ledger_totals``)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        ledger_workers: int = 1,
        client_factory: Callable[[], DynamoDBClient] | None = None,
    ) -> None:
        super().__init__(client, table_name)
        self._ledger_workers = ledger_workers
        self._client_factory = client_factory

    def customer_aggregates(self, customer_id: str, month: str) -> list[UsageAggregate]:
        rows = self._query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues=to_item(
                {":pk": f"CUSTOMER#{customer_key(customer_id)}", ":prefix": f"MONTH#{month}#"}
            ),
            ConsistentRead=True,
        )
        return [aggregate_from_item(r) for r in rows if not emptied(r)]

    def month_aggregates(
        self, month: str, unreadable: Unreadable | None = None
    ) -> list[UsageAggregate]:
        """Every aggregate of a month: its keys from ``LedgerByMonth`` (KEYS_ONLY), the items by
        BatchGetItem (eventually consistent, as the index itself). One that cannot be read goes
        to ``unreadable`` when given (``adapters/unreadable.py``)."""
        keys = self._query(
            IndexName=LEDGER_INDEX,
            KeyConditionExpression="LMPK = :pk",
            ExpressionAttributeValues=to_item({":pk": f"MONTH#{month}"}),
        )
        rows = self._batch_get([{"PK": k["PK"], "SK": k["SK"]} for k in keys])
        return list(readable(aggregate_from_item, (r for r in rows if not emptied(r)), unreadable))

    def month_ledger_pages(self, month: str) -> Iterator[list[Any]]:
        """The month's billable ledger rows, one page of ``ledger_index.LedgerEntry`` (customer,
        seconds) at a time, shard after shard: memory is one page whatever the month's size."""
        from usage_meter.adapters import ledger_index  # the export's only (multiprocessing)

        for shard in range(LEDGER_SHARDS):
            yield from ledger_index.ledger_pages(self._client, self._table, month, shard)

    def month_ledger_totals(self, month: str) -> dict[str, LedgerTotals]:
        """Count, seconds and tokens of billable ledger rows per customer in a month, summed page
        by page over the 16 ``LedgerByMonth`` shards side by side (``adapters/ledger_index.py``)."""
        from usage_meter.adapters import ledger_index  # the export's only (multiprocessing)

        return ledger_index.month_ledger_totals(
            self._client,
            self._table,
            month,
            workers=self._ledger_workers,
            client_factory=self._client_factory,
        )

    def month_ledger_rows(
        self, month: str, unreadable: Unreadable | None = None
    ) -> Iterator[UsageRecord]:
        """Every ledger row of a month (billable and failed), ordered by (customer, product,
        source id): the 16 shard Queries are read page by page and merged lazily, so memory
        holds one page per shard whatever the month's size; a row that cannot be read goes to
        ``unreadable`` when given (``adapters/unreadable.py``). ``GSI1SK`` is
        ``<customer key>#<product>#<source>`` and ``#`` sorts below every character of a
        (percent-encoded) customer key, so the index order is that tuple order. Each shard is
        read ahead by a thread of its own (at most READ_AHEAD_PAGES pages waiting), so the 16
        Queries' page round trips overlap instead of adding up one after another."""
        stop = threading.Event()
        shards = [
            _read_ahead(
                self._pages(
                    IndexName="GSI1",
                    KeyConditionExpression="GSI1PK = :pk",
                    ExpressionAttributeValues=to_item({":pk": ledger_partition(month, shard)}),
                ),
                stop,
            )
            for shard in range(LEDGER_SHARDS)
        ]
        try:
            merged = heapq.merge(*shards, key=lambda i: str(i["GSI1SK"]))
            yield from readable(record_from_item, merged, unreadable)
        finally:
            stop.set()  # a reader that stopped early lets the read-ahead threads end

    def month_uncovered(self, month: str) -> Iterator[UncoveredTranscript]:
        """The month's uncovered transcripts, ordered by (project, transcript id), page by page."""
        for values in self._pages(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=to_item({":pk": f"COVERAGE#{month}"}),
        ):
            yield UncoveredTranscript(
                transcript_id=str(values["transcript_id"]),
                project=str(values["project"]),
                month=str(values["month"]),
                completed_at=datetime.fromisoformat(str(values["completed_at"])),
                billable_seconds=Decimal(values["billable_seconds"]),
                model=str(values["model"]),
                features=tuple(str(f) for f in values.get("features", ())),
                reason=UncoveredReason(str(values["reason"])),
            )
