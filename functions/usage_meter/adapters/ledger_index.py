"""Reading a month's billable ledger rows from the ``LedgerByMonth`` index, at any scale.

The export's ledger check must read every billable ledger row of the month (30 M rows a month is
the design target). Nothing here holds more than one page per shard at a time:

- ``ledger_pages`` is the reusable port: an iterator over one shard's pages, each page a list of
  ``LedgerEntry`` (customer, exact seconds, tokens). Memory is one page (at most 1 MB of items).
- ``month_ledger_totals`` sums per page into ``LedgerTotals`` (count, seconds, tokens) per
  customer: its memory grows with customers, never with events. The 16 shards are queried side
  by side, in threads (the page round trips overlap) spread over ``workers`` processes
  (botocore's parsing of a page is Python work, about 9 us per row: one process cannot parse 30 M
  rows within the export's budget, so the function's vCPUs each take a share of the shards; see
  docs/decisions.md).

The index is KEYS_ONLY and its sort key carries the customer, the seconds and any tokens, so a
Query returns one short attribute per row and reads the fewest possible bytes (read units).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.usage_keys import (
    LEDGER_INDEX,
    LEDGER_SHARDS,
    ledger_partition,
    parse_ledger_index_key,
)
from usage_meter.logic.errors import TransientFailure
from usage_meter.models.billing import LedgerTotals

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MonthTotals = dict[str, LedgerTotals]


class LedgerEntry(NamedTuple):
    """One billable ledger row as the index holds it."""

    customer_id: str
    billable_seconds: Decimal
    input_tokens: int = 0
    output_tokens: int = 0


def _raw_pages(client: DynamoDBClient, table: str, month: str, shard: int) -> Iterator[list[Any]]:
    """The raw items of one shard, a page (one Query response) at a time."""
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": LEDGER_INDEX,
        "KeyConditionExpression": "LMPK = :pk",
        "ProjectionExpression": "LMSK",
        "ExpressionAttributeValues": {":pk": {"S": ledger_partition(month, shard)}},
    }
    while True:
        try:
            page = client.query(**request)
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(f"DynamoDB could not read the ledger index: {exc}") from exc
        yield page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        request["ExclusiveStartKey"] = last


def ledger_pages(
    client: DynamoDBClient, table: str, month: str, shard: int
) -> Iterator[list[LedgerEntry]]:
    """One shard's billable ledger rows of ``month``, page by page (shards: 0..15).

    Raises TransientFailure when DynamoDB fails. Use ``LEDGER_SHARDS`` to cover the month."""
    for items in _raw_pages(client, table, month, shard):
        page = []
        for item in items:
            customer, seconds, tokens_in, tokens_out = parse_ledger_index_key(item["LMSK"]["S"])
            page.append(LedgerEntry(customer, Decimal(seconds), tokens_in, tokens_out))
        yield page


def shard_totals(client: DynamoDBClient, table: str, month: str, shard: int) -> MonthTotals:
    """``LedgerTotals`` per customer of one shard, summed page by page: memory is one page plus
    one entry per customer, whatever the number of rows. Raises TransientFailure."""
    totals: MonthTotals = {}
    nothing = LedgerTotals()
    for items in _raw_pages(client, table, month, shard):
        for item in items:  # summed page by page; the page is dropped before the next one
            customer, seconds, tokens_in, tokens_out = parse_ledger_index_key(item["LMSK"]["S"])
            row = LedgerTotals(1, Decimal(seconds), tokens_in, tokens_out)
            totals[customer] = totals.get(customer, nothing) + row
    return totals


def merge_totals(into: MonthTotals, other: MonthTotals) -> MonthTotals:
    nothing = LedgerTotals()
    for customer, totals in other.items():
        into[customer] = into.get(customer, nothing) + totals
    return into


def threaded_totals(
    client: DynamoDBClient, table: str, month: str, shards: list[int]
) -> MonthTotals:
    """Totals of the given shards, one thread per shard on one (thread-safe) client."""
    totals: MonthTotals = {}
    if not shards:
        return totals
    with ThreadPoolExecutor(max_workers=len(shards)) as pool:
        for result in pool.map(lambda s: shard_totals(client, table, month, s), shards):
            merge_totals(totals, result)
    return totals


def _wire(totals: LedgerTotals) -> tuple[int, str, int, int]:
    """Across the pipe: exact seconds travel as text, never as a float."""
    return (
        totals.usage_count,
        f"{totals.billable_seconds:f}",
        totals.input_tokens,
        totals.output_tokens,
    )


def _unwire(wired: tuple[int, str, int, int]) -> LedgerTotals:
    count, seconds, tokens_in, tokens_out = wired
    return LedgerTotals(count, Decimal(seconds), tokens_in, tokens_out)


def _worker(
    conn: Connection,
    client_factory: Callable[[], DynamoDBClient],
    table: str,
    month: str,
    shards: list[int],
) -> None:
    try:
        totals = threaded_totals(client_factory(), table, month, shards)
        conn.send(("ok", {c: _wire(t) for c, t in totals.items()}))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def month_ledger_totals(
    client: DynamoDBClient,
    table: str,
    month: str,
    *,
    workers: int = 1,
    client_factory: Callable[[], DynamoDBClient] | None = None,
) -> MonthTotals:
    """``LedgerTotals`` (count, seconds, tokens) of billable ledger rows per customer in ``month``.

    ``workers`` > 1 forks that many processes (Linux; Lambda's runtime), each with a fresh client
    from ``client_factory`` (a botocore client must not cross a fork), and gives each a share of
    the 16 shards; results come back over pipes (no /dev/shm, which Lambda lacks). Raises
    TransientFailure when DynamoDB or a worker fails."""
    shards = list(range(LEDGER_SHARDS))
    if workers <= 1 or client_factory is None:
        return threaded_totals(client, table, month, shards)
    context = multiprocessing.get_context("fork")
    running = []
    for n in range(min(workers, LEDGER_SHARDS)):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker, args=(sender, client_factory, table, month, shards[n::workers])
        )
        process.start()
        sender.close()
        running.append((process, receiver))
    totals: MonthTotals = {}
    problems = []
    for process, receiver in running:
        try:
            status, result = receiver.recv()
        except EOFError:
            status, result = "error", "worker exited without an answer"
        process.join()
        if status != "ok":
            problems.append(str(result))
            continue
        merge_totals(totals, {c: _unwire(t) for c, t in result.items()})
    if problems:
        raise TransientFailure("ledger check workers failed: " + "; ".join(problems))
    return totals
