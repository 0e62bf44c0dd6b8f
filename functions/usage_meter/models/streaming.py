"""Streaming session reports sent by the application's backend (begin and termination)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from usage_meter.models.identifiers import SOURCE_ID_PATTERN, check_attribution
from usage_meter.models.months import in_utc
from usage_meter.models.usage import CustomerId, ProjectName

SESSION_LIMIT_SECONDS = Decimal(3 * 3600)  # AssemblyAI closes (and bills) a session at 3 hours
SESSION_TOLERANCE_SECONDS = Decimal(60)
AUDIO_TOLERANCE_SECONDS = Decimal(2)
MAX_DIMENSIONS = 8

SessionId = Annotated[str, StringConstraints(pattern=SOURCE_ID_PATTERN)]
ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


def _billable_moment(moment: datetime) -> datetime:
    in_utc(moment)  # ValueError (a 400) when it cannot be placed in a billing month
    return moment


# A timestamp with its offset kept, whose UTC date lies in a billable year (models.months).
Moment = Annotated[AwareDatetime, AfterValidator(_billable_moment)]
Seconds = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=3, allow_inf_nan=False)]


class _Report(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    session_id: SessionId
    customer_id: CustomerId
    project: ProjectName = "default"
    dimensions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _attribution(self) -> Self:
        check_attribution(self.customer_id, self.project, self.dimensions, MAX_DIMENSIONS)
        return self


class SessionBegin(_Report):
    """AssemblyAI's ``Begin`` (``id``) with who the session is for and which model it uses."""

    model: ModelName
    began_at: Moment


class SessionTermination(_Report):
    """AssemblyAI's ``Termination`` durations, with the customer and the end time."""

    model: ModelName | None = None
    session_duration_seconds: Seconds
    audio_duration_seconds: Seconds
    ended_at: Moment

    @model_validator(mode="after")
    def _plausible(self) -> Self:
        if self.session_duration_seconds > SESSION_LIMIT_SECONDS + SESSION_TOLERANCE_SECONDS:
            raise ValueError("session_duration_seconds exceeds AssemblyAI's 3-hour session limit")
        if self.audio_duration_seconds > self.session_duration_seconds + AUDIO_TOLERANCE_SECONDS:
            raise ValueError("audio_duration_seconds exceeds session_duration_seconds")
        return self
