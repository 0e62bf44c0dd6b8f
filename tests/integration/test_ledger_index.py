"""The export's ledger check at scale: page-by-page sums, flat memory, worker processes.

The flat-memory property is the small-scale version of benchmarks/export_month.py: the real
adapter reads canned ``LedgerByMonth`` pages through botocore (its HTTP sender stubbed by
benchmarks/dynamodb_pages.py), and 10 x the ledger rows must not need more memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from benchmarks.dynamodb_pages import CannedMonth

from conftest import REGION, Stack
from usage_meter.adapters import aws_clients
from usage_meter.adapters.ledger_index import ledger_pages, month_ledger_totals
from usage_meter.adapters.usage_keys import LEDGER_SHARDS
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.logic.errors import TransientFailure
from usage_meter.models.billing import LedgerTotals
from usage_meter.models.usage import UsageRecord, UsageStatus

MONTH = "2026-11"


PEAK_OF_A_SHARD = """
import json, sys, tracemalloc
from decimal import Decimal
from pathlib import Path
from benchmarks.dynamodb_pages import CannedMonth
from usage_meter.adapters import aws_clients
from usage_meter.adapters.ledger_index import shard_totals
from usage_meter.models.billing import LedgerTotals
canned = CannedMonth("2026-11", int(sys.argv[1]), customers=300, rows_per_page=100, latency=False)
expected = canned.expected_totals(range(1))
want = {c: LedgerTotals(n, Decimal(ms).scaleb(-3)) for c, (n, ms) in expected.items()}
client = aws_clients.new_dynamodb()
canned.attach(client)
tracemalloc.start()
totals = shard_totals(client, "UsageTable", "2026-11", 0)
print(json.dumps([tracemalloc.get_traced_memory()[1], totals == want]))
"""


def _peak_while_summing_a_shard(rows: int) -> tuple[int, bool]:
    """In a fresh interpreter: nothing else of the test process allocates meanwhile."""
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(root / p) for p in ("functions", "infra", ".")),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # never reached: the canned pages answer
    }
    out = subprocess.run(
        [sys.executable, "-c", PEAK_OF_A_SHARD, str(rows)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    peak, exact = json.loads(out.strip().splitlines()[-1])
    return int(peak), bool(exact)


def test_a_shard_is_summed_exactly_in_memory_flat_in_the_number_of_rows() -> None:
    # Given a shard of 1,000 and then of 10,000 billable ledger rows over the same customers,
    # served as 100-row Query pages through botocore
    small_peak, small_exact = _peak_while_summing_a_shard(16_000)
    large_peak, large_exact = _peak_while_summing_a_shard(160_000)

    # Then both are summed exactly, and 10 x the rows take no more than 1.5 x the memory: a page
    # at a time plus the garbage botocore leaves for the cyclic collector (~1.3 x here; 1.06 x
    # from 1 M to 30 M rows in benchmarks/export_month.py). Reading the rows into a list, as the
    # export once did, takes several times more.
    assert small_exact and large_exact
    assert large_peak <= 1.5 * small_peak, (small_peak, large_peak)


def test_the_month_is_exact_over_16_shards_and_the_iterator_yields_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canned = CannedMonth(MONTH, 4_000, customers=50, rows_per_page=100, latency=False)
    client = aws_clients.new_dynamodb()
    canned.attach(client)  # botocore's HTTP layer answered from canned pages
    expected = canned.expected_totals()
    want = {c: LedgerTotals(n, Decimal(ms).scaleb(-3)) for c, (n, ms) in expected.items()}
    assert month_ledger_totals(client, "UsageTable", MONTH) == want
    pages = [
        page
        for shard in range(LEDGER_SHARDS)
        for page in ledger_pages(client, "UsageTable", MONTH, shard)
    ]
    assert pages == list(DynamoUsageReader(client, "UsageTable").month_ledger_pages(MONTH))
    assert {len(p) for p in pages} <= {100, 50} and sum(map(len, pages)) == 4_000
    first = pages[0][0]
    assert first.customer_id in canned.names and isinstance(first.billable_seconds, Decimal)


def _record(ledger: DynamoUsageLedger, n: int, customer: str, seconds: str, status: str) -> None:
    billable = status == "billable"
    ledger.record(
        UsageRecord(
            source_id=f"idx-{n}",
            product="async",
            status=UsageStatus(status),
            customer_id=customer,
            project="default",
            month=MONTH,
            billable_seconds=Decimal(seconds) if billable else Decimal(0),
            model="universal-3-pro",
            occurred_at=datetime(2026, 11, 10, tzinfo=UTC),
        )
    )


FORK_IN_TESTS = pytest.mark.filterwarnings(
    # pytest's process runs the AssemblyAI stand-in's server thread; Lambda's has no threads.
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)


@FORK_IN_TESTS
def test_worker_processes_sum_the_same_as_one_process_and_skip_failed_rows(stack: Stack) -> None:
    # Given billable rows of three customers and failed rows (billed 0: not in the index)
    client = boto3.client("dynamodb", region_name=REGION)
    ledger = DynamoUsageLedger(client, stack.table)
    for n in range(60):
        _record(ledger, n, f"cus-{n % 3}", f"{n}.25", "billable")
    for n in range(60, 65):
        _record(ledger, n, "cus-0", "0", "failed")
    assert all("LMPK" not in r for r in stack.items("ledger") if r["status"] == "failed")

    # When the month is summed in one process and in three forked workers
    alone = month_ledger_totals(client, stack.table, MONTH)
    forked = DynamoUsageReader(
        client, stack.table, ledger_workers=3, client_factory=aws_clients.new_dynamodb
    ).month_ledger_totals(MONTH)

    # Then both give every customer's exact count and seconds
    want = {
        f"cus-{c}": LedgerTotals(20, sum((Decimal(f"{n}.25") for n in range(c, 60, 3)), Decimal(0)))
        for c in range(3)
    }
    assert alone == forked == want


@FORK_IN_TESTS
def test_a_failed_worker_fails_the_check_instead_of_dropping_its_shards(stack: Stack) -> None:
    def broken_client() -> object:
        raise RuntimeError("no client in this worker")

    reader = DynamoUsageReader(
        boto3.client("dynamodb", region_name=REGION),
        stack.table,
        ledger_workers=2,
        client_factory=broken_client,  # type: ignore[arg-type]
    )
    with pytest.raises(TransientFailure, match="no client in this worker"):
        reader.month_ledger_totals(MONTH)
