"""Day-2 operations: resolve quarantined usage, redrive dead letters, with an audit trail.

Every action is recorded in the usage table (who, what, when, why, outcome) before it returns.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from usage_meter.logic.ports import AuditTrail, UsageQueue
from usage_meter.models.identifiers import (
    CUSTOMER_ID_RULE,
    is_customer_id,
    normalize_customer_id,
)
from usage_meter.models.usage import QuarantineReason
from usage_meter.models.webhook import Attribution, UsageMessage

Action = Literal["bill", "dismiss"]


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    target: str
    reason: str
    outcome: str
    at: datetime


class QuarantineDesk(Protocol):
    """Quarantined items as people work them (``adapters.quarantine_store``)."""

    def quarantined(self, item_id: str) -> dict[str, Any] | None: ...

    def close_quarantine(self, item_id: str, resolution: dict[str, Any]) -> None: ...


class OperationRefused(Exception):
    """An operator action refused as things stand (a conflict, a racing change, no such item)."""


class InvalidOperation(OperationRefused):
    """An operator action refused for its own input (no reason, a malformed id or plan name):
    the caller must change the request (the API answers 400, not 409)."""


def resolve_quarantine(
    item_id: str,
    *,
    action: Action,
    reason: str,
    actor: str,
    store: QuarantineDesk,
    audit: AuditTrail,
    queue: UsageQueue,
    customer_id: str | None = None,
    configured_projects: Collection[str] | None = None,
) -> str:
    """Bill a quarantined transcript to ``customer_id`` or dismiss it; either way the item is
    closed with the resolution and the action audited.

    Billing re-queues the delivery for the usage processor with ``origin="operator"`` and the
    chosen customer: the processor fetches and records it through the same exactly-once write as
    any webhook (skipping only the webhook-URL customer check, which a person has now decided).

    ``configured_projects`` are the meter's projects (the stack's ``AssemblyAIProjects``), None
    when unknown. Billing is refused (``OperationRefused``) when the item's project is not among
    them, or, with them unknown, when the item is held as ``unknown_project``: the processor
    would only quarantine it again under a new id.
    """
    if not reason.strip():
        raise OperationRefused("a reason is required")
    item = store.quarantined(item_id)
    if item is None:
        raise OperationRefused(f"no open quarantined item {item_id}")
    outcome = "dismissed"
    if action == "bill" and item.get("reason") == QuarantineReason.CONFLICT.value:
        # The transcript is already billed (the first delivery's facts were kept): re-queuing
        # it would only conflict again. Moving a billed row to another customer is not an
        # operation this tool offers; dismissing records the decision.
        raise OperationRefused(
            f"{item_id} is a conflict with usage already billed; dismiss it (with the reason), "
            "the first record stays billed"
        )
    if action == "bill":
        customer_id = normalize_customer_id(customer_id) if customer_id else None
        if not customer_id or not is_customer_id(customer_id):
            raise OperationRefused(CUSTOMER_ID_RULE)
        try:
            message = UsageMessage.from_json(item["message"])
        except ValueError as exc:
            raise OperationRefused(f"only quarantined transcripts can be billed ({exc})") from exc
        _check_project_configured(item_id, item, message.project, configured_projects)
        queue.enqueue(
            UsageMessage(
                transcript_id=message.transcript_id,
                webhook_status=message.webhook_status,
                attribution=Attribution(
                    customer_id,
                    message.project,
                    message.attribution.dimensions if message.attribution else {},
                ),
                received_at=message.received_at,
                origin="operator",
            )
        )
        outcome = f"queued for billing to {customer_id}"
    store.close_quarantine(
        item_id,
        {
            "action": action,
            "customer_id": customer_id,
            "reason": reason,
            "actor": actor,
            "outcome": outcome,
            "resolved_at": datetime.now(UTC).isoformat(),
        },
    )
    audit.audit(
        AuditEntry(actor, f"quarantine.{action}", item_id, reason, outcome, datetime.now(UTC))
    )
    return outcome


def _check_project_configured(
    item_id: str, item: dict[str, Any], project: str, configured: Collection[str] | None
) -> None:
    if configured is not None and project not in configured:
        raise OperationRefused(
            f"project '{project}' of {item_id} is not configured (AssemblyAIProjects), so "
            "billing would only quarantine it again: add the project, deploy, then resolve"
        )
    if configured is None and item.get("reason") == QuarantineReason.UNKNOWN_PROJECT.value:
        raise OperationRefused(
            f"{item_id} is held because project '{project}' was not configured; give "
            "--stack-name so its AssemblyAIProjects can be checked (add the project and deploy)"
        )


def describe(item: dict[str, Any]) -> dict[str, Any]:
    """A quarantined item for people: reason, detail, the delivery that caused it."""
    message = item.get("message")
    try:
        parsed = json.loads(message) if isinstance(message, str) else message
    except ValueError:
        parsed = message
    return {
        k: item.get(k) for k in ("source_id", "reason", "detail", "quarantined_at", "state")
    } | {"message": parsed}
