"""The events the meter publishes on its EventBridge bus (JSON Schema: docs/schemas/).

Two detail types, both with ``source`` = ``EVENT_SOURCE``:

- ``AssemblyAI Notification Received``: one per authenticated AssemblyAI notification the intake
  accepted (``completed``, ``error``, ``redacted_audio_ready``), published by the intake once the
  usage is stored. It carries the body exactly as AssemblyAI sent it (a string, so a forwarder can
  pass the same bytes on), the webhook URL's query string exactly as received, and the receipt
  time. This is what forwarding delivers to the application.
- ``AssemblyAI Notification Processed``: one per usage message the processor finished with:
  the usage outcome (``recorded``, ``duplicate``, ``quarantined``, ``failed``), billable seconds,
  model, customer and project. No query string beyond the billing dimensions.

Neither ever carries transcript text (AssemblyAI's notification bodies have none, and the
processor's event is built from the ledger facts) or a secret of the meter's (the auth header is
never copied). Plain dicts and ``hashlib`` only: the webhook intake builds these on its cold path.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

EVENT_SOURCE = "usage-meter"
RECEIVED_DETAIL_TYPE = "AssemblyAI Notification Received"
PROCESSED_DETAIL_TYPE = "AssemblyAI Notification Processed"
SCHEMA_VERSION = 1
Outcome = Literal["recorded", "duplicate", "quarantined", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("recorded", "duplicate", "quarantined", "failed")


def notification_id(transcript_id: str | None, status: str | None, raw_body: bytes) -> str:
    """The id of one AssemblyAI notification, the same for every copy AssemblyAI sends of it.

    ``msg_`` + 32 hex digits of SHA-256 over ``"<transcript id>:<status>"`` when the body names a
    transcript, else over the raw body (``redacted_audio_ready`` carries no transcript id). It is
    the Standard Webhooks ``webhook-id`` of every forwarded copy, so the application can drop
    AssemblyAI's duplicates, and it links a Received event to its Processed event.
    """
    material = f"{transcript_id}:{status}".encode() if transcript_id and status else raw_body
    return "msg_" + hashlib.sha256(material).hexdigest()[:32]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def received_detail(
    *,
    raw_body: bytes,
    raw_query: str,
    received_at: datetime,
    status: str | None,
    transcript_id: str | None,
    customer_id: str | None,
    project: str | None,
) -> dict[str, Any]:
    """The detail of a Received event. ``raw_body`` must be UTF-8 (the intake checked it)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "notification_id": notification_id(transcript_id, status, raw_body),
        "received_at": _iso(received_at),
        "status": status,
        "transcript_id": transcript_id,
        "customer_id": customer_id,
        "project": project,
        "body": raw_body.decode("utf-8"),
        "query": raw_query,
    }


def processed_detail(
    *,
    transcript_id: str,
    webhook_status: str,
    received_at: datetime,
    outcome: Outcome,
    customer_id: str | None,
    project: str | None,
    dimensions: dict[str, str],
    reason: str | None = None,
    billable_seconds: str | None = None,
    model: str | None = None,
    usage_month: str | None = None,
) -> dict[str, Any]:
    """The detail of a Processed event (seconds as a decimal string, never a float)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    return {
        "schema_version": SCHEMA_VERSION,
        "notification_id": notification_id(transcript_id, webhook_status, b""),
        "transcript_id": transcript_id,
        "status": webhook_status,
        "received_at": _iso(received_at),
        "outcome": outcome,
        "reason": reason,
        "customer_id": customer_id,
        "project": project,
        "dimensions": dict(sorted(dimensions.items())),
        "product": "async",
        "billable_seconds": billable_seconds,
        "model": model,
        "usage_month": usage_month,
    }
