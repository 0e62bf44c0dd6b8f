"""Usage reports for the AssemblyAI products with no webhook: LLM Gateway, Voice Agent API and
the Sync API, sent by the application's backend on the signed-report path (like streaming).

One schema per product, each naming its usage source id (a retry of the same report is a
duplicate) and the measure AssemblyAI bills (facts and sources: docs/products.md):

- LLM Gateway: the chat-completions response's id (AssemblyAI SDK ``request_id``, OpenAI-style
  ``id``), ``model`` and ``usage.prompt_tokens`` / ``usage.completion_tokens``; billed per input and
  output token, per model; in-region endpoints (``us``, ``eu``) priced 10% above global routing.
- Voice Agent API: the session id and its connected duration in seconds; $4.50/hr, all features
  included.
- Sync API: the response's ``session_id`` and ``audio_duration_ms`` (80 ms .. 120 s per request);
  $0.30/hr, keyterms prompting and conversation context included.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AwareDatetime,
    Field,
    StringConstraints,
    model_validator,
)

from usage_meter.models.identifiers import SOURCE_ID_PATTERN
from usage_meter.models.months import usage_month
from usage_meter.models.streaming import ModelName, Seconds
from usage_meter.models.usage import AttributedReport, UsageRecord, UsageStatus

SourceId = Annotated[str, StringConstraints(pattern=SOURCE_ID_PATTERN)]
# LLM Gateway endpoints: llm-gateway.assemblyai.com (US), llm-gateway.eu.assemblyai.com (EU), and
# global routing (docs "Cloud Endpoints and Data Residency" for LLM Gateway).
LlmRegion = Literal["us", "eu", "global"]
# Sync API endpoints: sync.assemblyai.com (global), sync.us..., sync.eu... (docs sync-stt
# "Cloud endpoints & data residency"); one published price for all.
SyncRegion = Literal["global", "us", "eu"]
MAX_TOKENS = 10_000_000  # per response: far above any model's context window, below abuse
SYNC_MIN_MS, SYNC_MAX_MS = 80, 120_000  # docs sync-stt "Audio requirements"
SYNC_TOLERANCE_MS = 1_000
VOICE_AGENT_MAX_SECONDS = Decimal(24 * 3600)  # a plausibility bound, not a published limit
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]


class _ProductReport(AttributedReport):
    # Each product names its ledger product, the field holding the usage's source id (the
    # ledger key) and the field holding the usage's own time (its billing month).
    PRODUCT: ClassVar[str]
    SOURCE_FIELD: ClassVar[str]
    MOMENT_FIELD: ClassVar[str]

    @property
    def source_id(self) -> str:
        return str(getattr(self, self.SOURCE_FIELD))

    @property
    def moment(self) -> tuple[str, datetime]:
        """(field name, the usage's own time): the time the report's freshness is checked on."""
        moment: datetime = getattr(self, self.MOMENT_FIELD)
        return self.MOMENT_FIELD, moment

    def _billable(self, **fields: Any) -> UsageRecord:
        """A billable ledger row of this report: its attribution and source id, the month of its
        moment (the usage's own time, UTC) and the product's own ``fields``."""
        _, at = self.moment
        return UsageRecord(
            product=self.PRODUCT,
            status=UsageStatus.BILLABLE,
            customer_id=self.customer_id,
            project=self.project,
            dimensions=self.dimensions,
            month=usage_month(at),
            occurred_at=at,
            origin=f"{self.PRODUCT}_report",
            source_id=self.source_id,
            **fields,
        )


class LlmGatewayUsage(_ProductReport):
    """One LLM Gateway chat-completions response: ``response_id`` is its id (the ledger key),
    ``region`` the endpoint it was sent to, ``session_id`` the streaming session whose
    ``LLMGatewayResponse`` event carried it (if any)."""

    PRODUCT = "llm_gateway"
    SOURCE_FIELD = "response_id"
    MOMENT_FIELD = "completed_at"

    response_id: SourceId
    model: ModelName
    region: LlmRegion = "us"
    prompt_tokens: Tokens
    completion_tokens: Tokens
    completed_at: AwareDatetime
    session_id: SourceId | None = None

    def to_record(self) -> UsageRecord:
        return self._billable(
            billable_seconds=Decimal(0),
            input_tokens=self.prompt_tokens,
            output_tokens=self.completion_tokens,
            region=self.region,
            model=self.model,
            session_id=self.session_id,
        )


class VoiceAgentUsage(_ProductReport):
    """One Voice Agent API session: billed on its connected conversation time."""

    PRODUCT = "voice_agent"
    SOURCE_FIELD = "session_id"
    MOMENT_FIELD = "ended_at"

    session_id: SourceId
    duration_seconds: Seconds
    ended_at: AwareDatetime

    @model_validator(mode="after")
    def _plausible(self) -> Self:
        if self.duration_seconds > VOICE_AGENT_MAX_SECONDS:
            raise ValueError("duration_seconds is longer than a day")
        return self

    def to_record(self) -> UsageRecord:
        return self._billable(
            billable_seconds=self.duration_seconds,
            model="voice-agent",
        )


class SyncUsage(_ProductReport):
    """One Sync API request: ``session_id`` and ``audio_duration_ms`` from its response, the model
    it was routed to (``X-AAI-Model``)."""

    PRODUCT = "sync"
    SOURCE_FIELD = "session_id"
    MOMENT_FIELD = "transcribed_at"

    session_id: SourceId
    model: ModelName
    region: SyncRegion = "global"
    audio_duration_ms: int = Field(ge=0, strict=True)
    transcribed_at: AwareDatetime

    @model_validator(mode="after")
    def _within_limits(self) -> Self:
        if self.audio_duration_ms > SYNC_MAX_MS + SYNC_TOLERANCE_MS:
            raise ValueError(f"audio_duration_ms exceeds the Sync API's {SYNC_MAX_MS} ms limit")
        return self

    def to_record(self) -> UsageRecord:
        seconds = Decimal(self.audio_duration_ms) / 1000
        return self._billable(
            billable_seconds=seconds,
            audio_duration_seconds=seconds,
            model=self.model,
        )


ProductUsage = LlmGatewayUsage | VoiceAgentUsage | SyncUsage
REPORT_SCHEMAS: dict[str, type[LlmGatewayUsage] | type[VoiceAgentUsage] | type[SyncUsage]] = {
    "/usage/llm-gateway": LlmGatewayUsage,
    "/usage/voice-agent": VoiceAgentUsage,
    "/usage/sync": SyncUsage,
}
