"""The billing facts of an AssemblyAI transcript, parsed tolerantly from the raw JSON.

The SDK's typed model truncates or rejects float durations and rejects speech models it does not
know (see docs/decisions.md), so billing reads the raw ``GET /v2/transcript/{id}`` JSON here.
Only billing fields are kept; the transcript text never leaves the adapter.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from usage_meter.models.transcript_features import transcript_add_ons


class TranscriptFacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    status: str
    audio_duration: Decimal | None = None
    multichannel: bool | None = None
    audio_channels: int | None = None
    speech_model_used: str | None = None
    language_code: str | None = None
    webhook_url: str | None = None
    error: str | None = None
    features: tuple[str, ...] = ()

    @field_validator("audio_duration", mode="before")
    @classmethod
    def _exact_duration(cls, value: object) -> object:
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("audio_duration must be a number")
        try:
            # str() first: Decimal(12.1) would carry the float's binary error into billing.
            duration = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError("audio_duration must be a number") from exc
        if not duration.is_finite() or duration < 0:
            raise ValueError("audio_duration must be a finite number of seconds, 0 or more")
        return duration

    @classmethod
    def from_api(cls, payload: dict[str, Any]) -> TranscriptFacts:
        model = payload.get("speech_model_used") or payload.get("speech_model")
        fields = {k: payload.get(k) for k in cls.model_fields if k in payload}
        fields.update(features=transcript_add_ons(payload), speech_model_used=model)
        return cls.model_validate(fields)

    @property
    def channels(self) -> int:
        if self.multichannel and self.audio_channels and self.audio_channels > 1:
            return self.audio_channels
        return 1

    @property
    def billable_seconds(self) -> Decimal:
        """audio_duration x audio_channels for multichannel audio (AssemblyAI bills per channel)."""
        if self.audio_duration is None:
            raise ValueError("transcript has no audio_duration")
        return self.audio_duration * self.channels

    def webhook_customer_id(self) -> str | None:
        """The ``customer_id`` the transcript was submitted with, from its echoed webhook URL."""
        if not self.webhook_url:
            return None
        values = [v for k, v in parse_qsl(urlsplit(self.webhook_url).query) if k == "customer_id"]
        return values[0] if len(values) == 1 else None
