"""Late usage reaches a billing file (issue 17, case 5).

October is exported; then reconciliation recovers a transcript completed 2026-10-31T23:50Z into
October. That usage is marked in the same transaction as its ledger row, and the hourly late-usage
run publishes October version 2 with its ``changes`` and counts ``LateUsageExported``. A month not
yet exported is left to its first export; a run with nothing new publishes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from test_monthly_export import export, jsonl_rows, key, record, s3_object
from test_reconciliation import NOW, Quiet, run

from conftest import REGION, Stack, webhook_url
from usage_meter.adapters.late_marks import DynamoLateUsageMarks
from usage_meter_local.assemblyai_standin import transcript

COMPLETED = datetime(2026, 10, 31, 23, 50, tzinfo=UTC)


def late_run(stack: Stack) -> dict[str, Any]:
    return stack.invoke("MonthlyExportFunction", {"late_usage": True})


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def test_case_5_reconciled_october_usage_publishes_october_version_2(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given October billed and exported (version 1)
    record(stack, "acme", "600", at="2026-10-20T10:00:00+00:00")
    assert export(stack, "2026-10")["version"] == 1
    assert late_run(stack)["published"] == {}  # nothing late yet

    # When reconciliation recovers a transcript completed 2026-10-31T23:50Z, whose webhook was lost
    stack.api.state.add(
        transcript(
            "t-last-day",
            webhook_url=webhook_url("acme"),
            audio_duration=120,
            created=_stamp(COMPLETED - timedelta(minutes=5)),
            completed=_stamp(COMPLETED),
        )
    )
    report = run(stack, horizon_days=(NOW - COMPLETED).days + 2, metrics=Quiet())
    assert report.counts.recovered == 1
    [recovered] = [r for r in stack.items("ledger") if r["source_id"] == "t-last-day"]
    assert recovered["month"] == "2026-10"

    # And the hourly late-usage run comes
    capsys.readouterr()
    summary = late_run(stack)

    # Then October version 2 is published with the change, and the metric says so
    assert summary["published"] == {"2026-10": 2}
    manifest = json.loads(s3_object(stack, key("2026-10", 2, "manifest.json")))
    assert manifest["previous_version"] == 1
    assert manifest["changes"]["usage_count_delta"] == 1
    assert manifest["changes"]["billable_seconds_delta"] == "120"
    assert sum(r["usage_count"] for r in jsonl_rows(stack, "2026-10", 2)) == 2
    assert '"LateUsageExported"' in capsys.readouterr().out
    # And the mark is cleared: the next run publishes nothing
    assert late_run(stack) == {"published": {}, "unchanged": [], "waiting": [], "failed": {}}


def test_month_not_yet_exported_waits_for_its_first_export(stack: Stack) -> None:
    record(stack, "acme", "60", at="2026-09-30T23:00:00+00:00")  # ended month, never exported
    assert late_run(stack)["waiting"] == ["2026-09"]
    assert export(stack, "2026-09")["version"] == 1  # the first export includes it
    summary = late_run(stack)
    assert summary["unchanged"] == ["2026-09"] and summary["published"] == {}
    assert late_run(stack)["unchanged"] == []  # checked once, then cleared


def test_current_month_usage_leaves_no_mark(stack: Stack) -> None:
    now = datetime.now(UTC)
    record(stack, "acme", "60", at=now.isoformat())
    ledger = DynamoLateUsageMarks(boto3.client("dynamodb", region_name=REGION), stack.table)
    assert ledger.late_months() == []


def test_a_mark_arriving_during_the_run_keeps_the_month_pending(stack: Stack) -> None:
    record(stack, "acme", "60", at="2026-08-10T10:00:00+00:00")
    ledger = DynamoLateUsageMarks(boto3.client("dynamodb", region_name=REGION), stack.table)
    [(month, seen)] = ledger.late_months()
    record(stack, "acme", "30", at="2026-08-11T10:00:00+00:00")  # a second mark
    assert not ledger.clear_late_month(month, seen)
    assert ledger.late_months() == [("2026-08", seen + 1)]
