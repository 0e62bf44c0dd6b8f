"""Who a usage event belongs to, and the message the intake puts on the usage queue.

Frozen dataclasses with explicit checks (no pydantic): the webhook intake builds them and its
cold start stays free of pydantic. The processor parses queue messages back with
``UsageMessage.from_json``, which applies the same identifier rules, so nothing unchecked reaches
the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from usage_meter.models.identifiers import SOURCE_ID_RULE, check_attribution, is_source_id

DEFAULT_PROJECT = "default"
MAX_DIMENSIONS = 32
WEBHOOK_STATUSES = ("completed", "error")
ORIGINS = ("webhook", "reconciliation", "operator")
WebhookStatus = Literal["completed", "error"]
Origin = Literal["webhook", "reconciliation", "operator"]


class InvalidMessage(ValueError):
    """A queue message that does not follow schema version 1."""


@dataclass(frozen=True)
class Attribution:
    """Who a usage event belongs to: taken from the webhook URL's query string."""

    customer_id: str
    project: str = DEFAULT_PROJECT
    dimensions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_attribution(self.customer_id, self.project, self.dimensions, MAX_DIMENSIONS)


@dataclass(frozen=True)
class UsageMessage:
    """One accepted webhook delivery, as queued for the usage processor (schema version 1)."""

    transcript_id: str
    webhook_status: WebhookStatus
    attribution: Attribution
    received_at: datetime
    origin: Origin = "webhook"
    schema_version: int = 1

    def __post_init__(self) -> None:
        if not is_source_id(self.transcript_id):
            raise InvalidMessage(f"transcript_id: {SOURCE_ID_RULE}")
        if self.webhook_status not in WEBHOOK_STATUSES:
            raise InvalidMessage(f"webhook_status must be one of {WEBHOOK_STATUSES}")
        if self.origin not in ORIGINS:
            raise InvalidMessage(f"origin must be one of {ORIGINS}")
        if self.received_at.tzinfo is None:
            raise InvalidMessage("received_at must carry a timezone")
        if self.schema_version != 1:
            raise InvalidMessage("unsupported schema_version")

    @property
    def month(self) -> str:
        return usage_month(self.received_at)

    def to_json(self) -> str:
        return json.dumps(
            {
                "schema_version": self.schema_version,
                "transcript_id": self.transcript_id,
                "webhook_status": self.webhook_status,
                "attribution": {
                    "customer_id": self.attribution.customer_id,
                    "project": self.attribution.project,
                    "dimensions": self.attribution.dimensions,
                },
                "received_at": self.received_at.astimezone(UTC).isoformat(),
                "origin": self.origin,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> UsageMessage:
        """Parse and check a queued message; InvalidMessage says what is wrong."""
        try:
            document: Any = json.loads(text)
            attribution = document["attribution"]
            received_at = datetime.fromisoformat(document["received_at"])
            return cls(
                transcript_id=document["transcript_id"],
                webhook_status=cast("WebhookStatus", document["webhook_status"]),
                attribution=Attribution(
                    customer_id=attribution["customer_id"],
                    project=attribution.get("project", DEFAULT_PROJECT),
                    dimensions=attribution.get("dimensions") or {},
                ),
                received_at=received_at,
                origin=cast("Origin", document.get("origin", "webhook")),
                schema_version=document.get("schema_version", 1),
            )
        except InvalidMessage:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidMessage(f"{type(exc).__name__}: {exc}") from exc


def usage_month(moment: datetime) -> str:
    """The billing month (``YYYY-MM``, UTC) a moment belongs to."""
    return moment.astimezone(UTC).strftime("%Y-%m")
