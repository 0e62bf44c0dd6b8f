"""The demo's plans-and-limits act: a customer on a 10-minute trial plan crosses 80% and 100%.

The operator sets the plan through the allowance API (``PUT /plans/trial/allowance``) and puts
``smallco`` on it. The "application" subscribes to the meter's EventBridge bus with a rule that
delivers threshold events to its own SQS queue, and asks the entitlement check
(``usage_meter_client.EntitlementClient``) before each job. AssemblyAI's webhooks for three
jobs arrive, each one twice; the processor records them; the application receives 80% and 100%
exactly once each, and the check turns to "no".
"""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from typing import Any, TextIO

from usage_meter_client import EntitlementClient
from usage_meter_local import scenario
from usage_meter_local.app_subscription import subscribe_queue
from usage_meter_local.assemblyai_standin import transcript
from usage_meter_local.demo_webhooks import post_webhook
from usage_meter_local.report import table
from usage_meter_local.stack import LocalStack

CUSTOMER = "smallco"
PLAN = {"product": "async", "unit": "seconds", "amount": "600", "thresholds": [80, 100]}
JOBS = (  # (transcript id, audio seconds): 300 s = 50%, 500 s = 83%, 650 s = 108%
    ("5a11c0de-0000-4000-8000-000000000001", 300),
    ("5a11c0de-0000-4000-8000-000000000002", 200),
    ("5a11c0de-0000-4000-8000-000000000003", 150),
)
APP_QUEUE = "DemoApplicationThresholdEvents"
DRAIN_TIMEOUT_SECONDS = 30.0


def _put(base: str, path: str, document: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - our own local HTTP front
        base + path,
        data=json.dumps(document).encode(),
        headers={"content-type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def _subscribe(stack: LocalStack) -> str:
    """The application's rule on the meter's bus, delivering to its own queue."""
    return subscribe_queue(
        stack.clients.sqs,
        stack.clients.events,
        stack.resources.event_buses["UsageEventBus"],
        APP_QUEUE,
        "app-threshold-events",
    )


def _receive(stack: LocalStack, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        batch = stack.clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not batch:
            return got
        for message in batch:
            got.append(json.loads(message["Body"])["detail"])
            stack.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def run_limits(stack: LocalStack, out: TextIO) -> list[str]:
    """Run the act, print what happened; return unmet expectations."""
    base = stack.webhook_url.removesuffix(scenario.WEBHOOK_PATH)
    failures: list[str] = []
    plan = _put(base, "/plans/trial/allowance", {"limits": [PLAN], "reason": "demo: trial plan"})
    _put(base, f"/customers/{CUSTOMER}/plan", {"plan": "trial", "reason": "demo: signed up"})
    out.write(
        f"Plan 'trial' (PUT /plans/trial/allowance, version {plan['version']}): async 600 s a "
        f"month, hard, thresholds 80/100%; {CUSTOMER} put on it (PUT /customers/{CUSTOMER}/plan)\n"
    )
    app_queue = _subscribe(stack)
    checker = EntitlementClient(base, region=stack.config.region, sign=False)  # IAM is AWS's
    current, previous = stack.webhook_secrets
    secrets = {"current": current, "previous": previous, "wrong": ""}
    rows = []
    before = checker.check(CUSTOMER, "async")
    rows.append(["-", "0", "-", "yes" if before.allowed else "no", before.limits[0]["remaining"]])
    events: list[dict[str, Any]] = []
    for transcript_id, seconds in JOBS:
        query = f"customer_id={CUSTOMER}"
        stack.assemblyai.state.add(
            transcript(
                transcript_id,
                webhook_url=f"{stack.webhook_url}?{query}",
                audio_duration=seconds,
                api_key=scenario.local_api_key("default"),
            )
        )
        delivery = scenario.Delivery(
            label=f"{CUSTOMER}: completed",
            query=query,
            body=json.dumps({"transcript_id": transcript_id, "status": "completed"}).encode(),
            expect_status=200,
            expect="accepted",
            transcript_id=transcript_id,
        )
        for _ in range(2):  # AssemblyAI may deliver twice
            post_webhook(stack.webhook_url, delivery, stack.auth_header_name, secrets)
        if not stack.wait_until_drained(DRAIN_TIMEOUT_SECONDS):
            failures.append(f"the usage queue did not drain within {DRAIN_TIMEOUT_SECONDS:.0f} s")
        new = _receive(stack, app_queue)
        events += new
        answer = checker.check(CUSTOMER, "async")
        rows.append(
            [
                f"{seconds} s job, webhook x2",
                f"{answer.limits[0]['used']}",
                ", ".join(f"{e['threshold_percent']}%" for e in new) or "-",
                "yes" if answer.allowed else "no",
                answer.limits[0]["remaining"],
            ]
        )
    out.write(
        table(
            "What the application sees (threshold events from its queue; "
            "GET /customers/smallco/entitlement?product=async)",
            ["usage arrives", "used (s)", "events received", "may start more?", "remaining (s)"],
            rows,
        )
        + "\n"
    )
    percents = sorted(e["threshold_percent"] for e in events)
    if percents != [80, 100]:
        failures.append(f"limits: expected one 80% and one 100% event, got {percents}")
    final = checker.check(CUSTOMER, "async")
    if final.allowed or Decimal(final.limits[0]["used"]) != Decimal(650):
        failures.append(f"limits: expected 'no' at 650 of 600 s, got {final.document}")
    if not before.allowed:
        failures.append("limits: the check said no before any usage")
    return failures
