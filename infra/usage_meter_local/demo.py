"""The scripted demo (``make run``): the service doing its job end to end on the local stack.

1. AssemblyAI's webhooks for several customers (demo_webhooks), processed through the queue;
2. streaming sessions reported by the app's backend, and the orphan sweep (demo_streaming);
3. a transcript whose webhook never arrived, recovered by reconciliation (demo_recovery);
4. what was recorded, quarantined and dead-lettered, per customer and month;
5. the monthly billing export, and the CSV it wrote to S3 (demo_export).

Every act checks its own expectations and the demo says which failed, so ``make run`` doubles as
a smoke test of the whole service.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TextIO

from usage_meter_local import demo_recovery, demo_streaming, scenario
from usage_meter_local.demo_export import run_export
from usage_meter_local.demo_recovery import run_recovery
from usage_meter_local.demo_streaming import run_streaming
from usage_meter_local.demo_webhooks import run_webhooks
from usage_meter_local.report import Recorded, read_recorded, render
from usage_meter_local.stack import LocalStack

EXPECTED_LEDGER = (
    *scenario.EXPECTED_LEDGER,
    *demo_streaming.EXPECTED_LEDGER,
    *demo_recovery.EXPECTED_LEDGER,
)
EXPECTED_QUARANTINE = (*scenario.EXPECTED_QUARANTINE, *demo_streaming.EXPECTED_QUARANTINE)


def _heading(out: TextIO, text: str) -> None:
    out.write(f"== {text} {'=' * max(3, 96 - len(text))}\n\n")


def run_demo(stack: LocalStack, out: TextIO) -> bool:
    """Run every act, print what happened; True when every expectation was met."""
    _heading(out, "1. Async transcripts: AssemblyAI calls the webhook")
    failures = run_webhooks(stack, out)
    _heading(out, "2. Streaming sessions: the app's backend reports begin and termination")
    failures += run_streaming(stack, out)
    _heading(out, "3. A lost webhook: reconciliation with AssemblyAI")
    failures += run_recovery(stack, out)
    _heading(out, "4. What was recorded")
    recorded = read_recorded(stack)
    out.write(render(recorded) + "\n")
    failures += check_recorded(recorded)
    _heading(out, "5. The monthly billing export")
    failures += run_export(stack, recorded, out)
    if failures:
        out.write(f"Demo expectations NOT met ({len(failures)}):\n")
        out.writelines(f"  - {f}\n" for f in failures)
        return False
    out.write("All demo expectations met.\n")
    return True


def check_recorded(recorded: Recorded) -> list[str]:
    """The whole table after every act: each usage source once, totals that add up."""
    failures: list[str] = []

    def expect(what: str, actual: Any, expected: Any) -> None:
        if actual != expected:
            failures.append(f"{what}: expected {expected}, got {actual}")

    expect(
        "ledger rows",
        sorted(scenario.LedgerFacts.of(r) for r in recorded.ledger),
        sorted(EXPECTED_LEDGER),
    )
    totals: dict[str, tuple[int, Decimal]] = {}
    for e in EXPECTED_LEDGER:
        if e.status == "billable":
            count, seconds = totals.get(e.customer_id, (0, Decimal(0)))
            totals[e.customer_id] = (count + 1, seconds + e.billable_seconds)
    usage: dict[str, tuple[int, Decimal]] = {}
    for u in recorded.usage:  # a customer may span two months when the demo runs at midnight
        count, seconds = usage.get(u.customer_id, (0, Decimal(0)))
        usage[u.customer_id] = (count + u.count, seconds + u.billable_seconds)
    expect("usage per customer (aggregates)", usage, totals)
    expect(
        "quarantine",
        sorted((str(q["source_id"]), str(q["reason"])) for q in recorded.quarantine),
        sorted(EXPECTED_QUARANTINE),
    )
    return failures
