"""The demo's recovery act: AssemblyAI finished a transcript whose webhook never reached us (an
outage, a bad deploy, a rotated secret). The reconciliation job lists each project's transcripts
through the SDK, finds it by the ``webhook_url`` it echoes, and records it through the same
exactly-once path; the webhook that finally arrives afterwards changes nothing. The project whose
API key was revoked cannot be checked, and its report says so (an alarm watches for it)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TextIO

from usage_meter_local import scenario
from usage_meter_local.demo_webhooks import post_webhook
from usage_meter_local.report import table
from usage_meter_local.stack import LocalStack

RECONCILE_FUNCTION = "ReconciliationFunction"
DRAIN_TIMEOUT_SECONDS = 30.0
LATE_DELIVERY = scenario.late_delivery(scenario.LOST_ID)
EXPECTED_LEDGER = (
    scenario.LedgerFacts(
        scenario.LOST_ID,
        "globex",
        "default",
        "billable",
        Decimal("1260.25"),
        "universal-2",
        (("plan", "basic"),),
    ),
)


def run_recovery(stack: LocalStack, out: TextIO) -> list[str]:
    """Reconcile every project, then deliver the lost webhook late; return unmet expectations."""
    invocation = stack.invoke(RECONCILE_FUNCTION, {})
    reports = (invocation.result or {}).get("reports", []) if invocation.ok else []
    out.write(
        table(
            f"Reconciliation with AssemblyAI ({RECONCILE_FUNCTION}, hourly on AWS)",
            [
                "project",
                "checked",
                "already recorded",
                "recovered",
                "quarantined",
                "not ours",
                "note",
            ],
            [
                [
                    r["project"],
                    r["checked"],
                    r["already_recorded"],
                    r["recovered"],
                    r["quarantined"],
                    r["not_ours"],
                    r.get("stopped_because") or ("complete" if r["complete"] else "-"),
                ]
                for r in reports
            ],
        )
    )
    current, previous = stack.webhook_secrets
    late = post_webhook(
        stack.webhook_url,
        LATE_DELIVERY,
        stack.auth_header_name,
        {"current": current, "previous": previous, "wrong": ""},
    )
    drained = stack.wait_until_drained(DRAIN_TIMEOUT_SECONDS)
    out.write(
        f"  then the lost webhook arrives after all: HTTP {late.status} {late.outcome} "
        "(the processor finds the transcript already recorded: nothing changes)\n\n"
    )

    failures = []
    if not invocation.ok:
        failures.append(f"reconciliation failed: {json.dumps(invocation.as_json())}")
    recovered = {r["project"]: r["recovered"] for r in reports}
    if recovered.get("default") != 1 or sum(recovered.values()) != 1:
        failures.append(f"reconciliation: expected 1 recovered in 'default', got {recovered}")
    stopped = {r["project"]: r.get("stopped_because") or "" for r in reports}
    for project in sorted(scenario.REVOKED_PROJECTS):
        if "API key (401)" not in stopped.get(project, ""):
            failures.append(f"reconciliation of {project}: expected a refused key, got {stopped}")
    if (late.status, late.outcome) != (200, "accepted"):
        failures.append(
            f"late webhook: expected HTTP 200 accepted, got {late.status} {late.outcome}"
        )
    if not drained:
        failures.append(f"the usage queue did not drain within {DRAIN_TIMEOUT_SECONDS:.0f} s")
    return failures
