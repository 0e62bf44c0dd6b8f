"""The demo's forwarding act: the application pointed its transcripts' ``webhook_url`` at the
meter, and still hears every notification. Each authenticated AssemblyAI delivery of the earlier
acts went intake -> EventBridge bus -> rule -> forward queue -> NotificationForwarderFunction ->
the application's own endpoint (``AppReceiver``), byte for byte, with the app's query string and
a Standard Webhooks signature the app verifies with ``usage_meter_client``. Then the
application goes down: the next notification is retried, lands in the forwarding DLQ with its
reason, and the books do not move."""

from __future__ import annotations

import json
import time
from typing import TextIO

from usage_meter_local import scenario
from usage_meter_local.demo_recovery import LATE_DELIVERY
from usage_meter_local.demo_webhooks import post_webhook
from usage_meter_local.report import read_recorded, table
from usage_meter_local.stack import LocalStack

DLQ = "ForwardDeadLetterQueue"
WAIT_SECONDS = 45.0
APP_DOWN = scenario.Delivery(
    "acme-corp: completed, sent again while the app is down",
    scenario.DELIVERIES[0].query,
    scenario.DELIVERIES[0].body,
    200,
    "accepted",
    transcript_id=scenario.COMPLETED_ID,
)


def _expected() -> list[scenario.Delivery]:
    """Every delivery the intake accepted in acts 1 and 3 (authenticated and usable)."""
    return [d for d in (*scenario.DELIVERIES, LATE_DELIVERY) if d.expect_status == 200]


def _dead_letters(stack: LocalStack) -> list[dict[str, str]]:
    sqs = stack.clients.sqs
    messages = sqs.receive_message(
        QueueUrl=stack.resources.queue_urls[DLQ],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        VisibilityTimeout=0,
    ).get("Messages", [])
    return [
        {
            "reason": m["MessageAttributes"]["reason"]["StringValue"],
            "detail": m["MessageAttributes"]["detail"]["StringValue"],
            "transcript_id": json.loads(m["Body"])["detail"]["transcript_id"] or "-",
        }
        for m in messages
    ]


def run_forwarding(stack: LocalStack, out: TextIO) -> list[str]:
    """Show what the application received, then a failing application; unmet expectations."""
    failures: list[str] = []
    stack.wait_until_drained()
    got = stack.app.state.accepted()
    out.write(
        table(
            f"What the application received at {stack.app.url} (forwarded, signed)",
            ["#", "webhook-id", "AssemblyAI body status", "query (the app's own)", "signature"],
            [
                [
                    i,
                    d.headers["webhook-id"][:16] + "…",
                    json.loads(d.body).get("status"),
                    d.query,
                    "verified" if d.verified else f"REFUSED: {d.problem}",
                ]
                for i, d in enumerate(got, 1)
            ],
        )
    )
    expected = _expected()
    sent = sorted((d.body, d.query) for d in expected)
    received = sorted((d.body, d.query) for d in got)
    if received != sent:
        failures.append(
            f"the application should have received the {len(sent)} accepted notifications "
            f"byte for byte with their query strings; it received {len(received)} "
            f"({sum(1 for r in received if r in sent)} matching)"
        )
    if not all(d.verified for d in got):
        failures.append("a forwarded notification failed the app's signature check")
    out.write(
        f"  {len(got)} of the {len(expected)} accepted notifications, bodies identical to "
        "AssemblyAI's; duplicates share a webhook-id the app can drop them by\n\n"
    )

    before = read_recorded(stack)
    stack.app.state.fail_with = 503
    current, previous = stack.webhook_secrets
    answer = post_webhook(
        stack.webhook_url,
        APP_DOWN,
        stack.auth_header_name,
        {"current": current, "previous": previous},
    )
    deadline = time.monotonic() + WAIT_SECONDS
    dead = _dead_letters(stack)
    while not dead and time.monotonic() < deadline:
        time.sleep(0.5)
        dead = _dead_letters(stack)
    stack.wait_until_drained()
    stack.app.state.fail_with = None
    attempts = sum(1 for d in stack.app.state.deliveries if d.answered == 503)
    out.write(
        table(
            f"The application answers 503: {APP_DOWN.label} (HTTP {answer.status} to AssemblyAI)",
            ["forwarding DLQ", "reason", "detail"],
            [[d["transcript_id"], d["reason"], d["detail"]] for d in dead],
        )
    )
    after = read_recorded(stack)
    unchanged = (before.ledger, before.usage) == (after.ledger, after.usage)
    out.write(
        f"  {attempts} attempts, then the DLQ (alarm ForwardDeadLetterQueueAlarm); the books "
        f"{'did not change' if unchanged else 'CHANGED'} (the notification was a duplicate "
        "usage-wise, recorded once)\n\n"
    )
    if answer.status != 200:
        failures.append(f"the intake answered {answer.status} while the app was down")
    if [d["reason"] for d in dead] != ["endpoint_unavailable"]:
        failures.append(f"forwarding DLQ: expected one endpoint_unavailable, got {dead}")
    if not unchanged:
        failures.append("a failing application changed the books")
    return failures
