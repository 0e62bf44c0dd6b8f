"""What the demo's signed-report sections share (streaming sessions, LLM Gateway, Voice Agent,
Sync): the application's reporter, signed with the stack's report-signing secret, and the table
of what each report got back."""

from __future__ import annotations

from collections.abc import Sequence

from usage_meter_client import UsageReporter
from usage_meter_local.report import table
from usage_meter_local.stack import LocalStack

SIGNING_SECRET_VARIABLE = "REPORT_SIGNING_SECRET_ID"  # noqa: S105 - a variable name


def signed_reporter(stack: LocalStack) -> UsageReporter:
    """The application helper, signing with the stack's current secret (no retry waits)."""
    assert stack.http is not None
    secret = stack.secret_values(SIGNING_SECRET_VARIABLE)[0]
    return UsageReporter(stack.http.url, secret, sleep=lambda _seconds: None)


def answers_table(title: str, labels: Sequence[str], answers: Sequence[tuple[int, str]]) -> str:
    """One row per report: its number, label, HTTP status and the meter's answer."""
    rows = [
        [i, label, a[0], a[1]] for i, (label, a) in enumerate(zip(labels, answers, strict=True), 1)
    ]
    return table(title, ["#", "report", "HTTP", "answer"], rows) + "\n"
