"""The billing facts of an AssemblyAI transcript, parsed tolerantly from the raw JSON.

The SDK's typed model truncates or rejects float durations and rejects speech models it does not
know (see docs/decisions.md), so billing reads the raw ``GET /v2/transcript/{id}`` JSON here.
Only billing fields are kept; the transcript text never leaves the adapter.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from usage_meter.models.transcript_features import transcript_add_ons

# AssemblyAI's DELETE /v2/transcript/{id} replaces webhook_url and audio_url with this and keeps
# audio_duration (api spec, DeleteTranscriptResponse example).
DELETED_BY_USER = "http://deleted_by_user"

# Plausibility bounds of a transcript's billing facts. An answer outside them is not billed (a
# wrong figure would reach an invoice) nor retried (it will not change): it is quarantined as
# implausible, for a human. AssemblyAI FAQ "Are there any limits on file size or file duration for
# files submitted to the API?": the maximum duration is 10 hours (36,000 s); one minute of margin.
MAX_AUDIO_DURATION_SECONDS = Decimal(10 * 3600 + 60)
# AssemblyAI documents no channel limit for multichannel transcription ("Multichannel
# Transcription": the response has audio_channels, the number of channels). 32 is a plausibility
# bound of this service, not an AssemblyAI limit: more is held for a human, never guessed.
MAX_AUDIO_CHANNELS = 32


# A URL's query string or fragment (AssemblyAI's error messages quote the audio_url, whose query
# may be a presigned signature: X-Amz-Signature, sig=, token=...). Kept: scheme, host and path.
_URL_QUERY = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s?#\"'<>]*)[?#][^\s\"'<>]*")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@\"'<>]*@")


def without_url_queries(text: str) -> str:
    """``text`` with every URL's query string and fragment replaced by ``?…`` and its user
    information (``user:password@``) removed."""
    text = _URL_USERINFO.sub(lambda match: match.group(1), text)
    return _URL_QUERY.sub(lambda match: f"{match.group(1)}?…", text)


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

    @field_validator("error", mode="before")
    @classmethod
    def _no_url_secrets(cls, value: object) -> object:
        return without_url_queries(value) if isinstance(value, str) else value

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

    def implausibility(self) -> str | None:
        """Why these billing facts cannot be true (outside the bounds above), or None."""
        if self.audio_duration is not None and self.audio_duration > MAX_AUDIO_DURATION_SECONDS:
            digits = self.audio_duration.adjusted() + 1  # never builds a huge int
            return (
                f"audio_duration of {digits} digits exceeds AssemblyAI's 10-hour limit"
                if digits > 12
                else f"audio_duration {self.audio_duration} s exceeds AssemblyAI's 10-hour limit"
            )
        channels = self.audio_channels
        if self.multichannel and channels is not None and not 1 <= channels <= MAX_AUDIO_CHANNELS:
            return (
                f"audio_channels {channels} outside 1..{MAX_AUDIO_CHANNELS}"
                if abs(channels) < 10**12
                else "audio_channels is an absurdly large number"
            )
        return None

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

    @property
    def deleted(self) -> bool:
        """Whether the transcript was deleted at AssemblyAI (its webhook_url is gone)."""
        return self.webhook_url == DELETED_BY_USER
