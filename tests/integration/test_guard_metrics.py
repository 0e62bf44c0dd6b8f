"""The business metrics the alarms and the dashboard watch, read back from what Powertools prints:
CloudWatch embedded metric format (EMF), one JSON object per line with an ``_aws`` key."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import boto3
import pytest

from conftest import REGION, Stack, load_event, sqs_event, usage_message_body, webhook_url
from usage_meter.logic.monthly_export import LedgerMismatch
from usage_meter_local.assemblyai_standin import transcript
from usage_meter_local.template import LOCAL_STACK_NAME

TID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01"


@dataclass
class EmittedMetrics:
    """What one or more EMF blobs declared: summed values by name, units, namespaces, dimensions."""

    values: Counter[str] = field(default_factory=Counter)
    units: dict[str, str] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    dimension_sets: list[list[str]] = field(default_factory=list)


def emf_metrics(stdout: str) -> EmittedMetrics:
    """Parse the EMF lines of captured stdout (log lines and anything else are skipped)."""
    found = EmittedMetrics()
    for line in stdout.splitlines():
        if "_aws" not in line:
            continue
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            found.namespaces.add(directive["Namespace"])
            found.dimension_sets.extend(directive["Dimensions"])
            for metric in directive["Metrics"]:
                name = metric["Name"]
                value = blob[name]
                found.values[name] += sum(value) if isinstance(value, list) else value
                found.units[name] = metric["Unit"]
    return found


def _metrics_of(capsys: pytest.CaptureFixture[str]) -> EmittedMetrics:
    return emf_metrics(capsys.readouterr().out)


def _assert_shape(emitted: EmittedMetrics) -> None:
    # Customer ids are never metric dimensions (one metric per customer costs money), and every
    # metric is in the stack's own namespace, the one its alarms watch (issue 9).
    assert emitted.namespaces == {f"UsageMeter/{LOCAL_STACK_NAME}"}
    assert all("customer_id" not in dims for dims in emitted.dimension_sets)


def test_emf_helper_reads_values_units_and_skips_log_lines() -> None:
    # Given a log line and an EMF blob where one metric was added twice
    out = "\n".join(
        [
            '{"level":"INFO","message":"usage message handled","_aws_hint":"not emf"}',
            json.dumps(
                {
                    "_aws": {
                        "Timestamp": 1,
                        "CloudWatchMetrics": [
                            {
                                "Namespace": "UsageMeter",
                                "Dimensions": [["service"]],
                                "Metrics": [
                                    {"Name": "A", "Unit": "Count"},
                                    {"Name": "B", "Unit": "Seconds"},
                                ],
                            }
                        ],
                    },
                    "service": "usage-meter",
                    "A": [1.0, 1.0],
                    "B": 12.5,
                }
            ),
        ]
    )
    # When it is parsed
    emitted = emf_metrics(out)
    # Then lists are summed, scalars kept, and the log line ignored
    assert emitted.values == Counter({"A": 2.0, "B": 12.5})
    assert emitted.units == {"A": "Count", "B": "Seconds"}


def test_conflict_counts_usage_conflict_and_a_quarantine(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a transcript already billed at 60 s
    stack.api.state.add(transcript(TID, webhook_url=webhook_url("acme-corp"), audio_duration=60))
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")]))
    first = _metrics_of(capsys)
    assert first.values["TranscriptsRecorded"] == 1
    assert first.values["UsageSecondsRecorded"] == 60
    assert first.units["UsageSecondsRecorded"] == "Seconds"

    # When the same id comes back with another duration
    stack.api.state.add(transcript(TID, webhook_url=webhook_url("acme-corp"), audio_duration=90))
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")]))

    # Then the conflict is counted once, as a quarantine too, and nothing is recorded
    emitted = _metrics_of(capsys)
    _assert_shape(emitted)
    assert emitted.values["UsageConflict"] == 1
    assert emitted.values["Quarantined_conflict"] == 1
    assert emitted.values["UsageQuarantined"] == 1
    assert emitted.values["TranscriptsRecorded"] == 0
    assert emitted.values["UsageSecondsRecorded"] == 0


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_counts_a_dead_letter_with_its_reason(
    stack: Stack, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    # Given AssemblyAI refuses the project's key
    stack.api.state.add(load_event("transcripts/completed.json"))
    stack.api.state.fail(TID, status)

    # When the delivery is processed
    result = stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")]))

    # Then it is dead-lettered and counted under its reason, not as a retry
    assert result == {"batchItemFailures": []}
    emitted = _metrics_of(capsys)
    _assert_shape(emitted)
    assert emitted.values["MessagesDeadLettered"] == 1
    assert emitted.values["DeadLettered_assemblyai_auth"] == 1
    assert emitted.values["ProcessingRetried"] == 0
    assert emitted.units["DeadLettered_assemblyai_auth"] == "Count"


def test_unknown_project_counts_a_quarantine(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a delivery naming a project this deployment does not know
    body = usage_message_body(TID, "acme-corp", project="apac")

    # When it is processed
    stack.invoke_processor(sqs_event([body]))

    # Then both the per-reason metric and the one the QuarantineAlarm watches are counted once
    emitted = _metrics_of(capsys)
    _assert_shape(emitted)
    assert emitted.values["Quarantined_unknown_project"] == 1
    assert emitted.values["UsageQuarantined"] == 1
    assert emitted.units["UsageQuarantined"] == "Count"
    assert emitted.values["TranscriptsRecorded"] == 0


def test_requarantining_the_same_delivery_is_not_counted_again(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a delivery already quarantined for an unknown project
    body = usage_message_body(TID, "acme-corp", project="apac")
    stack.invoke_processor(sqs_event([body]))
    capsys.readouterr()

    # When SQS delivers it again
    stack.invoke_processor(sqs_event([body], receive_count=2))

    # Then the quarantine (one item) is not counted a second time
    assert _metrics_of(capsys).values["UsageQuarantined"] == 0
    assert len(stack.items("quarantine")) == 1


def test_export_ledger_mismatch_is_counted(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given usage billed through the processor, then an aggregate changed behind the ledger's back
    stack.api.state.add(load_event("transcripts/completed.json"))
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")]))
    [aggregate] = stack.items("aggregate")
    boto3.resource("dynamodb", region_name=REGION).Table(stack.table).update_item(
        Key={"PK": aggregate["PK"], "SK": aggregate["SK"]},
        UpdateExpression="ADD billable_seconds :x",
        ExpressionAttributeValues={":x": Decimal(1)},
    )
    capsys.readouterr()

    # When the month is exported
    with pytest.raises(LedgerMismatch):
        stack.invoke("MonthlyExportFunction", {"month": "2026-11"})

    # Then the failure is counted (ExportLedgerMismatchAlarm) and nothing counts as published
    emitted = _metrics_of(capsys)
    _assert_shape(emitted)
    assert emitted.values["ExportLedgerMismatch"] == 1
    assert emitted.values["ExportPublished"] == 0
