"""The scripted demo (``make run``): the service doing its job end to end on the local stack.

1. AssemblyAI's webhooks for several customers (demo_webhooks), processed through the queue;
2. streaming sessions reported by the app's backend, and the orphan sweep (demo_streaming);
3. a transcript whose webhook never arrived, recovered by reconciliation (demo_recovery);
4. LLM Gateway, Voice Agent and Sync API usage reported by the app's backend (demo_products);
5. what was recorded, quarantined and dead-lettered, per customer and month;
6. the monthly billing export, and the CSV it wrote to S3 (demo_export);
7. the application hears every notification, forwarded and signed; a failing application ends in
   the forwarding DLQ while the books stay exact (demo_forwarding).
8. plans and limits: a customer on a small plan crosses 80% and 100%, the application receives
   the threshold events and the entitlement check turns to "no" (demo_limits).

Every act checks its own expectations and the demo says which failed, so ``make run`` doubles as
a smoke test of the whole service.
"""

from __future__ import annotations

from typing import TextIO

from usage_meter_local import demo_products, demo_recovery, demo_streaming, scenario
from usage_meter_local.demo_export import run_export
from usage_meter_local.demo_forwarding import run_forwarding
from usage_meter_local.demo_limits import run_limits
from usage_meter_local.demo_products import run_products
from usage_meter_local.demo_recovery import run_recovery
from usage_meter_local.demo_streaming import run_streaming
from usage_meter_local.demo_webhooks import run_webhooks, unmet_expectations
from usage_meter_local.report import read_recorded, render
from usage_meter_local.stack import LocalStack

EXPECTED_LEDGER = (
    *scenario.EXPECTED_LEDGER,
    *demo_streaming.EXPECTED_LEDGER,
    *demo_recovery.EXPECTED_LEDGER,
    *demo_products.EXPECTED_LEDGER,
)
EXPECTED_QUARANTINE = (
    *scenario.EXPECTED_QUARANTINE,
    *demo_streaming.EXPECTED_QUARANTINE,
    *demo_products.EXPECTED_QUARANTINE,
)


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
    _heading(out, "4. LLM Gateway, Voice Agent API, Sync API: the app's backend reports usage")
    failures += run_products(stack, out)
    _heading(out, "5. What was recorded")
    recorded = read_recorded(stack)
    out.write(render(recorded) + "\n")
    failures += unmet_expectations(recorded, EXPECTED_LEDGER, EXPECTED_QUARANTINE)
    _heading(out, "6. The monthly billing export")
    failures += run_export(stack, recorded, out)
    _heading(out, "7. The application still hears every notification (forwarding)")
    failures += run_forwarding(stack, out)
    _heading(out, "8. Plans and limits: allowance, threshold events, entitlement check")
    failures += run_limits(stack, out)
    if failures:
        out.write(f"Demo expectations NOT met ({len(failures)}):\n")
        out.writelines(f"  - {f}\n" for f in failures)
        return False
    out.write("All demo expectations met.\n")
    return True
