"""Forwarding latency: from AssemblyAI's POST to the application's receipt of the forwarded copy.

Runs the whole local stack (``usage_meter_local.LocalStack``: moto server incl. EventBridge, the
HTTP front, one worker process per function, the SQS event sources) with forwarding to the local
application endpoint, and sends notifications over real HTTP one after another, as AssemblyAI
would. For each one it records:

- *answer*: the intake's HTTP round trip as AssemblyAI sees it (auth, SQS send, PutEvents);
- *delivery*: from just before the POST to the moment the application endpoint received the
  forwarded, signed copy (intake -> bus -> rule -> forward queue -> poller -> forwarder -> HTTP);
- *after the answer*: delivery minus answer, per notification: what forwarding adds once
  AssemblyAI has its 200 (negative: the application had it first).

Every notification is a ``completed`` for a fixture transcript, so the usage processor runs too
(its copies are duplicates after the first: the books do not grow). The same code path as
production, with moto in place of AWS: the local SQS poller's long polling and moto's in-process
EventBridge stand in for Lambda's event source mapping and EventBridge's own delivery latency.

Usage: python benchmarks/forward_latency.py [--notifications 100] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _setup import add_source_paths

add_source_paths()

from usage_meter_local import scenario  # noqa: E402
from usage_meter_local.demo_webhooks import post_webhook  # noqa: E402
from usage_meter_local.stack import LocalStack, StackConfig  # noqa: E402


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(count: int) -> dict[str, Any]:
    with LocalStack(StackConfig(log_dir=None)) as stack:
        secrets = dict(zip(("current", "previous"), stack.webhook_secrets, strict=True))
        first = scenario.DELIVERIES[0]
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}
        answers: list[float] = []
        for i in range(count + 1):  # the first one warms every worker and is not counted
            delivery = scenario.Delivery(
                "bench", f"{first.query}&n={i}", first.body, 200, "accepted"
            )
            started = time.time()
            answer = post_webhook(stack.webhook_url, delivery, stack.auth_header_name, secrets)
            answers.append(time.time() - started)
            assert answer.status == 200, answer
            sent[f"n={i}"] = started
            answered[f"n={i}"] = started + answers[-1]
            if i == 0:
                stack.wait_until_drained()
            time.sleep(0.05)  # AssemblyAI's deliveries arrive spread out, not in one burst
        stack.wait_until_drained(60)
        received = {}
        for delivery in stack.app.state.accepted():
            key = delivery.query.rsplit("&", 1)[-1]
            received.setdefault(key, delivery.received)
        counted = [k for k in sent if k != "n=0" and k in received]
        latencies = [received[k] - sent[k] for k in counted]
        after_answer = [received[k] - answered[k] for k in counted]
    answer_ms = [a * 1000 for a in answers[1:]]
    delivery_ms = [x * 1000 for x in latencies]
    after_ms = [x * 1000 for x in after_answer]
    return {
        "notifications": count,
        "delivered": len(latencies),
        "answer_ms": {
            "p50": round(statistics.median(answer_ms), 1),
            "p99": round(_percentile(answer_ms, 99), 1),
        },
        "delivery_ms": {
            "p50": round(statistics.median(delivery_ms), 1),
            "p99": round(_percentile(delivery_ms, 99), 1),
            "max": round(max(delivery_ms), 1),
        },
        "after_answer_ms": {
            "p50": round(statistics.median(after_ms), 1),
            "p99": round(_percentile(after_ms, 99), 1),
        },
    }


NOTES = (
    "`benchmarks/forward_latency.py`: the local stack (moto server with EventBridge, "
    "one worker process per function, the SQS event sources) with forwarding to a local "
    "application endpoint; `completed` notifications sent one after another over HTTP, "
    "50 ms apart, after one warm-up. *answer* is the intake's round trip as AssemblyAI "
    "sees it (auth, SQS send, PutEvents); *delivery* runs from just before the POST to "
    "the application endpoint's receipt of the signed copy (intake -> bus -> rule -> "
    "forward queue -> poller -> forwarder -> HTTP); *after the answer* is delivery "
    "minus answer per notification. moto's in-process EventBridge and the local SQS "
    "poller stand in for EventBridge's and Lambda's event source mapping's own "
    "latency, so on AWS add those services' delivery times."
)


def markdown(result: dict[str, Any]) -> str:
    a, d, x = result["answer_ms"], result["delivery_ms"], result["after_answer_ms"]
    return "\n".join(
        [
            "| notifications | delivered | intake answer p50 / p99 (ms) "
            "| delivery to the app p50 / p99 / max (ms) | after the answer p50 / p99 (ms) |",
            "|---:|---:|---:|---:|---:|",
            f"| {result['notifications']} | {result['delivered']} | {a['p50']} / {a['p99']} "
            f"| {d['p50']} / {d['p99']} / {d['max']} | {x['p50']} / {x['p99']} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    result = measure(args.notifications)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result))
    return 0 if result["delivered"] == result["notifications"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
