"""Coverage: transcripts AssemblyAI processed (and bills) that never reached the meter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class UncoveredReason(StrEnum):
    NO_WEBHOOK = "no_webhook_url"  # submitted without a webhook URL
    FOREIGN_WEBHOOK = "foreign_webhook_url"  # its webhook URL points elsewhere


@dataclass(frozen=True)
class UncoveredTranscript:
    """A completed transcript of a project that no customer is billed for.

    ``billable_seconds`` is what AssemblyAI bills for it (audio_duration x channels);
    ``month`` is the UTC month of its ``completed`` time, as for reconciled usage."""

    transcript_id: str
    project: str
    month: str
    completed_at: datetime
    billable_seconds: Decimal
    model: str
    features: tuple[str, ...]
    reason: UncoveredReason
