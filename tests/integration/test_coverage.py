"""The coverage report: transcripts AssemblyAI processed (and bills) that never reached the meter,
found by reconciliation, reported per month and project in the export manifest and the ops CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_monthly_export import export, key, s3_object
from test_reconciliation import Quiet, add, ledger_ids, run

from conftest import WEBHOOK_BASE_URL, Stack
from usage_meter import ops_cli


def _scenario(stack: Stack) -> None:
    """Oldest first. AssemblyAI bills every completed one of these; only t-ours reaches a customer.
    Prices (config/prices.json 2026-11-01): universal-3-pro 0.21/h, speaker labels 0.02/h,
    universal-2 0.15/h, slam-1 unpriced."""
    foreign = "https://other-app.example.com/hooks?customer_id=acme"
    add(stack, "t-foreign", url=foreign, hours_ago=9, audio_duration=1800, speaker_labels=True)
    add(
        stack,
        "t-none",
        customer=None,
        hours_ago=8,
        audio_duration=3600,
        speech_model_used="universal-2",
    )
    add(stack, "t-bad", url=f"{WEBHOOK_BASE_URL}?customer_id=-bad", hours_ago=7, audio_duration=600)
    add(stack, "t-slam", url=foreign, hours_ago=6, audio_duration=100, speech_model_used="slam-1")
    add(stack, "t-foreign-error", url=foreign, hours_ago=5, status="error", error="bad audio")
    add(stack, "t-ours", hours_ago=4, audio_duration=60)


def test_reconciliation_records_each_uncovered_transcript_once(stack: Stack) -> None:
    # Given a project whose transcripts mostly never reached the meter
    _scenario(stack)
    metrics = Quiet()

    # When reconciliation runs twice
    first = run(stack, metrics=metrics)
    second = run(stack, metrics=metrics)

    # Then the three billed transcripts that never pointed at the meter are recorded once, with
    # their seconds (the failed one is not charged by AssemblyAI); the one that is ours is billed
    # (t-bad points at the meter with an invalid customer: quarantined with its reason instead)
    counts = first.counts
    assert (counts.uncovered, counts.not_ours, counts.quarantined, counts.recovered) == (3, 4, 1, 1)
    assert second.counts.uncovered == 0
    assert ledger_ids(stack) == {"t-ours": "reconciliation"}
    assert metrics.counted["ReconcileUncovered"] == 3
    assert metrics.counted["ReconcileUncoveredSeconds"] == 1800 + 3600 + 100
    stored = {i["transcript_id"]: i["reason"] for i in stack.items("uncovered")}
    assert stored == {
        "t-foreign": "foreign_webhook_url",
        "t-none": "no_webhook_url",
        "t-slam": "foreign_webhook_url",
    }


def _month(stack: Stack) -> str:
    months = {i["month"] for i in stack.items("uncovered")}
    assert len(months) == 1
    return months.pop()


def test_the_export_manifest_reports_coverage_per_project(stack: Stack) -> None:
    _scenario(stack)
    run(stack)
    month = _month(stack)

    summary = export(stack, month)

    manifest = json.loads(s3_object(stack, key(month, 1, "manifest.json")))
    assert manifest["coverage"] == {
        "transcripts": 3,
        "billable_seconds": "5500",
        # universal-3-pro: 1800 s x 0.21/h + 1800 s speaker labels x 0.02/h = 0.115 -> 0.12
        # universal-2: 3600 s x 0.15/h = 0.15; slam-1 has no price: its 100 s are unpriced
        "estimated_cost": "0.27",
        "unpriced_seconds": "100",
        "currency": "USD",
        "projects": {
            "default": {
                "transcripts": 3,
                "billable_seconds": "5500",
                "estimated_cost": "0.27",
                "unpriced_seconds": "100",
                "reasons": {"foreign_webhook_url": 2, "no_webhook_url": 1},
                "transcript_ids": ["t-foreign", "t-none", "t-slam"],
                "transcript_ids_truncated": False,
            }
        },
    }
    assert summary["uncovered"] == {
        "transcripts": 3,
        "billable_seconds": "5500",
        "estimated_cost": "0.27",
    }


def test_a_new_uncovered_transcript_publishes_a_new_version(stack: Stack) -> None:
    _scenario(stack)
    run(stack)
    month = _month(stack)
    assert export(stack, month)["version"] == 1
    assert export(stack, month)["status"] == "unchanged"

    add(stack, "t-late", customer=None, hours_ago=3, audio_duration=10)
    run(stack)

    again = export(stack, month)
    assert (again["status"], again["version"]) == ("published", 2)
    assert again["uncovered"]["transcripts"] == 4


def test_ops_coverage_lists_every_transcript(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    _scenario(stack)
    run(stack)
    month = _month(stack)
    capsys.readouterr()

    code = ops_cli.main([*stack.ops_location, "--json", "coverage", "--month", month])

    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["report"]["estimated_cost"] == "0.27"
    assert sorted((t["transcript_id"], t["billable_seconds"]) for t in out["transcripts"]) == [
        ("t-foreign", "1800"),
        ("t-none", "3600"),
        ("t-slam", "100"),
    ]
