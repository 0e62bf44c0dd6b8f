"""The AssemblyAI webhook as it reaches us, and the message the intake puts on the usage queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from usage_meter.models.identifiers import CustomerId, ProjectName, SourceId

DEFAULT_PROJECT = "default"


class Attribution(BaseModel):
    """Who a usage event belongs to: taken from the webhook URL's query string."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer_id: CustomerId
    project: ProjectName = DEFAULT_PROJECT
    dimensions: dict[str, str] = Field(default_factory=dict)


class TranscriptNotification(BaseModel):
    """AssemblyAI's webhook body for a finished transcript. Unknown extra fields are ignored so a
    new field from AssemblyAI never turns into a 4xx (which would stop its retries for good)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    transcript_id: SourceId
    status: Literal["completed", "error"]


class UsageMessage(BaseModel):
    """One accepted webhook delivery, as queued for the usage processor (schema version 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    transcript_id: SourceId
    webhook_status: Literal["completed", "error"]
    attribution: Attribution
    received_at: AwareDatetime
    origin: Literal["webhook", "reconciliation"] = "webhook"

    @property
    def month(self) -> str:
        return usage_month(self.received_at)


def usage_month(moment: datetime) -> str:
    """The billing month (``YYYY-MM``, UTC) a moment belongs to."""
    return moment.astimezone(UTC).strftime("%Y-%m")
