"""16 workers recording one busy customer's usage at once: TransactionConflicts are retried in the
process (jittered backoff), so every message ends recorded and none goes back to SQS or the DLQ.

DynamoDB cancels a transaction with reason ``TransactionConflict`` when another transaction on
one of its items is in flight ("Transaction conflict handling in DynamoDB", Amazon DynamoDB
Developer Guide). moto does not model that, so ``ConflictingDynamoDB`` does: a transaction that
touches an item another in-flight transaction holds is cancelled exactly as DynamoDB answers.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

from conftest import REGION, Stack, usage_message_body, webhook_url
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.queued_delivery import DeliveryDeps, handle_queued_delivery
from usage_meter.logic.usage_processing import ProcessorDeps
from usage_meter_local.assemblyai_standin import transcript

WORKERS = 16
PER_WORKER = 8


class ConflictingDynamoDB:
    """A DynamoDB client (moto) whose transactions conflict like DynamoDB's: overlapping
    transactions on one item are cancelled with ``TransactionConflict``."""

    def __init__(self, client: Any, hold_s: float = 0.010) -> None:
        self._client = client
        self._hold = hold_s
        self._lock = threading.Lock()
        self._moto = threading.Lock()
        self._in_flight: set[str] = set()
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._moto:  # moto itself is not built for concurrent calls
                return call(*args, **kwargs)

        return locked

    def transact_write_items(self, TransactItems: list[dict[str, Any]], **kwargs: Any) -> Any:
        keys = [
            repr(sorted((op.get("Put") or op.get("Update") or {}).get("Key", {}).items()))
            for op in TransactItems
            if "Update" in op
        ]
        with self._lock:
            if self._in_flight & set(keys):
                self.conflicts += 1
                reasons = [
                    {"Code": "TransactionConflict" if k in self._in_flight else "None"}
                    for k in ["-", *keys]
                ]
                raise ClientError(
                    {
                        "Error": {
                            "Code": "TransactionCanceledException",
                            "Message": "Transaction cancelled, please refer cancellation "
                            "reasons for specific reasons [None, TransactionConflict]",
                        },
                        "CancellationReasons": reasons,
                    },
                    "TransactWriteItems",
                )
            self._in_flight.update(keys)
        try:
            time.sleep(self._hold)  # in flight as long as a DynamoDB transaction (~10 ms)
        finally:
            with self._lock:
                self._in_flight.difference_update(keys)
        with self._moto:  # then applied
            return self._client.transact_write_items(TransactItems=TransactItems, **kwargs)


@dataclass
class Transcripts:
    payloads: dict[str, dict[str, Any]]

    def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
        return self.payloads[transcript_id]


@dataclass
class Outcomes:
    retries: list[int] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        self.retries.append(seconds)

    def send(self, body: str, reason: str, detail: str) -> None:
        self.dead_letters.append(reason)

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.metrics.append(name)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.events.append(detail_type)


def test_sixteen_workers_on_one_customer_end_exact_with_no_conflict_sent_back(
    stack: Stack,
) -> None:
    # Given 128 transcripts of one customer and 16 workers recording them at the same moment,
    # on a DynamoDB whose concurrent transactions on the customer's aggregate conflict
    ids = [f"tx-{w:02d}-{n}" for w in range(WORKERS) for n in range(PER_WORKER)]
    url = webhook_url("busy-co")
    payloads = {i: transcript(i, webhook_url=url, audio_duration=61.5) for i in ids}
    dynamodb = ConflictingDynamoDB(boto3.client("dynamodb", region_name=REGION))
    outcomes = Outcomes()
    deps = DeliveryDeps(
        processor=ProcessorDeps(
            transcripts=Transcripts(payloads),
            ledger=DynamoUsageLedger(dynamodb, stack.table),  # type: ignore[arg-type]
            metrics=outcomes,
            known_projects=frozenset({"default"}),
        ),
        retries=outcomes,
        dead_letters=outcomes,
        events=outcomes,
    )
    start = threading.Barrier(WORKERS)

    def worker(w: int) -> list[str]:
        start.wait()
        results = []
        for n in range(PER_WORKER):
            body = usage_message_body(f"tx-{w:02d}-{n}", "busy-co")
            result = handle_queued_delivery(body, f"receipt-{w}-{n}", 1, deps)
            results.append(result.outcome.value if result else "dead-lettered")
        return results

    # When they all run
    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes_by_worker = list(pool.map(worker, range(WORKERS)))

    # Then conflicts happened, yet every message was recorded once, none was handed back to SQS
    # or dead-lettered, and the aggregate is exact
    assert dynamodb.conflicts > 0
    assert [o for os_ in outcomes_by_worker for o in os_] == ["recorded"] * len(ids)
    assert outcomes.retries == [] and outcomes.dead_letters == []
    [aggregate] = stack.items("aggregate")
    assert aggregate["usage_count"] == len(ids)
    assert aggregate["billable_seconds"] == Decimal("61.5") * len(ids)
    assert len(stack.items("ledger")) == len(ids)
