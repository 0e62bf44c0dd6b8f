"""The exactly-once invariants of design.md, as properties and as a crash test.

- Any interleaving and duplication of deliveries for a set of transcripts gives the same ledger and
  aggregates as delivering each once.
- A processor that dies after its DynamoDB transaction but before SQS deletes the message changes
  nothing when the message is delivered again.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REGION, Stack, examples, sqs_event, usage_message_body, webhook_url
from embedded_aws import EmbeddedAws
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.usage_processing import Outcome, ProcessorDeps, process_usage_message
from usage_meter.models.webhook import UsageMessage
from usage_meter_local.assemblyai_standin import transcript

VOLATILE = {"recorded_at", "updated_at", "write_id", "marked_at", "late_records"}


@dataclass
class FakeTranscripts:
    """In-memory AssemblyAI: transcript JSON by id, with a few transient failures to get through."""

    payloads: dict[str, dict[str, Any]]
    flaky: dict[str, int]

    def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
        if self.flaky.get(transcript_id, 0) > 0:
            self.flaky[transcript_id] -= 1
            raise TransientFailure("simulated 503")
        return self.payloads[transcript_id]


class NullMetrics:
    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        return None


transcript_specs = st.lists(
    st.tuples(
        st.sampled_from(["acme", "globex", "initech"]),  # customer
        st.one_of(st.integers(1, 7200), st.decimals("0.1", "7200", places=1)),  # duration
        st.sampled_from([1, 2, 4]),  # channels
        st.sampled_from(["completed", "error"]),
        st.sampled_from(
            ["2026-10-31T23:59:59.999Z", "2026-11-01T00:00:00Z", "2026-11-15T12:00:00Z"]
        ),
    ),
    min_size=1,
    max_size=6,
)


def _snapshot(aws: EmbeddedAws, table: str) -> list[dict[str, Any]]:
    items = aws.table(table).scan()["Items"]
    return sorted(
        ({k: v for k, v in i.items() if k not in VOLATILE} for i in items),
        key=lambda i: (i["PK"], i["SK"]),
    )


def _deliver(
    aws: EmbeddedAws, deliveries: list[UsageMessage], source: FakeTranscripts
) -> list[dict[str, Any]]:
    """Deliver the messages to the template's usage table, emptied first; its items once all
    are processed."""
    dynamodb = aws.client("dynamodb")
    table = aws.fresh().tables["UsageTable"]
    deps = ProcessorDeps(
        transcripts=source,
        ledger=DynamoUsageLedger(dynamodb, table),
        metrics=NullMetrics(),
        known_projects=frozenset({"default"}),
    )
    pending = list(deliveries)
    while pending:  # a failed delivery comes back later, as SQS would redeliver it
        message = pending.pop(0)
        try:
            outcome = process_usage_message(message, deps).outcome
        except TransientFailure:
            pending.append(message)
            continue
        assert outcome in (Outcome.RECORDED, Outcome.DUPLICATE)
    return _snapshot(aws, table)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=transcript_specs, data=st.data())
def test_any_interleaving_and_duplication_equals_delivering_each_once(
    embedded_aws: EmbeddedAws, specs: list[tuple[str, Any, int, str, str]], data: st.DataObject
) -> None:
    payloads: dict[str, dict[str, Any]] = {}
    once: list[UsageMessage] = []
    for n, (customer, duration, channels, status, received_at) in enumerate(specs):
        tid = f"t{n}"
        payloads[tid] = transcript(
            tid,
            webhook_url=webhook_url(customer),
            status=status,
            audio_duration=float(duration) if isinstance(duration, Decimal) else duration,
            multichannel=channels > 1,
            audio_channels=channels,
            error="bad audio" if status == "error" else None,
        )
        once.append(
            UsageMessage.from_json(
                usage_message_body(tid, customer, received_at=received_at, status=status)
            )
        )
    copies = data.draw(st.lists(st.integers(1, 4), min_size=len(once), max_size=len(once)))
    noisy = [m for m, c in zip(once, copies, strict=True) for _ in range(c)]
    noisy = data.draw(st.permutations(noisy))
    flaky = data.draw(st.dictionaries(st.sampled_from(sorted(payloads)), st.integers(1, 2)))

    expected = _deliver(embedded_aws, once, FakeTranscripts(payloads, {}))
    actual = _deliver(embedded_aws, noisy, FakeTranscripts(payloads, dict(flaky)))

    assert actual == expected
    billable = [p for p in payloads.values() if p["status"] == "completed"]
    aggregates = [i for i in actual if i["entity"] == "aggregate"]
    assert sum(a["usage_count"] for a in aggregates) == len(billable)
    assert sum(a["billable_seconds"] for a in aggregates) == sum(
        Decimal(str(p["audio_duration"])) * p.get("audio_channels", 1) for p in billable
    )


class Crash(BaseException):
    """A hard stop of the Lambda process (not an Exception the batch processor would catch)."""


def test_crash_after_commit_before_delete_changes_nothing_on_redelivery(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    stack.api.state.add(transcript("t-crash", webhook_url=webhook_url("acme"), audio_duration=300))
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=usage_message_body("t-crash", "acme"))

    def receive() -> dict[str, Any]:
        [m] = sqs.receive_message(
            QueueUrl=stack.queue_url, AttributeNames=["All"], VisibilityTimeout=0
        )["Messages"]
        record = sqs_event([m["Body"]], int(m["Attributes"]["ApproximateReceiveCount"]))
        record["Records"][0]["receiptHandle"] = m["ReceiptHandle"]
        record["Records"][0]["messageId"] = m["MessageId"]
        return record

    original = DynamoUsageLedger.record

    def record_then_crash(self: DynamoUsageLedger, record: Any, **options: Any) -> Any:
        original(self, record, **options)
        raise Crash("killed after the transaction, before the message was deleted")

    monkeypatch.setattr(DynamoUsageLedger, "record", record_then_crash)
    with pytest.raises(Crash):
        stack.invoke_processor(receive())
    after_crash = (stack.items("ledger"), stack.items("aggregate"))
    assert len(after_crash[0]) == 1 and after_crash[1][0]["usage_count"] == 1

    monkeypatch.setattr(DynamoUsageLedger, "record", original)
    redelivered = receive()  # the message was never deleted, so SQS hands it out again
    assert redelivered["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert stack.invoke_processor(redelivered) == {"batchItemFailures": []}

    assert (stack.items("ledger"), stack.items("aggregate")) == after_crash
    assert after_crash[1][0]["billable_seconds"] == Decimal(300)
