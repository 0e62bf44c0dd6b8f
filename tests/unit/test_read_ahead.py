"""The line items read each GSI1 shard ahead in a thread of its own (usage_reads._read_ahead), so
the 16 shards' page round trips overlap: nothing may be lost, reordered or swallowed on the way."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from usage_meter.adapters import usage_reads
from usage_meter.logic.errors import TransientFailure


def _items(count: int, fail_at: int | None = None) -> Iterator[dict[str, Any]]:
    for n in range(count):
        if n == fail_at:
            raise TransientFailure("DynamoDB could not query")
        yield {"n": n}


def test_every_item_arrives_in_order() -> None:
    count = usage_reads._PAGE_ITEMS * 3 + 7
    got = [i["n"] for i in usage_reads._read_ahead(_items(count), threading.Event())]
    assert got == list(range(count))


def test_a_reader_error_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    fail_at = usage_reads._PAGE_ITEMS + 5
    got: list[int] = []
    with pytest.raises(TransientFailure):
        for item in usage_reads._read_ahead(_items(fail_at + 10, fail_at), threading.Event()):
            got.append(item["n"])
    assert got == list(range(usage_reads._PAGE_ITEMS))  # the partial batch is never half-given


def test_the_reads_overlap_instead_of_adding_up() -> None:
    def slow_pages(shard: int) -> Iterator[dict[str, Any]]:
        for page in range(3):
            time.sleep(0.05)  # one page round trip
            yield from ({"shard": shard, "page": page, "n": n} for n in range(10))

    stop = threading.Event()
    started = time.perf_counter()
    readers = [usage_reads._read_ahead(slow_pages(s), stop) for s in range(8)]
    total = sum(1 for reader in readers for _ in reader)
    elapsed = time.perf_counter() - started
    assert total == 8 * 3 * 10
    assert elapsed < 8 * 3 * 0.05 * 0.6  # one after another would be 1.2 s
