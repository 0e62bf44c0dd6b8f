"""Streaming session reports sent by the application's backend (begin and termination).

Sources: AssemblyAI closes an unclosed session after 3 hours and bills it (docs "Billing and
Pricing"); a temporary token can cap a session with ``max_session_duration_seconds`` 60..10800
(spec ``GET /v3/token``, fern/.definition/streamingApi.yml); the ``Begin`` message carries
``expires_at`` (spec asyncapi ``Begin``; unix seconds on the wire, a datetime in SDK 1.8.2).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from usage_meter.models import rules
from usage_meter.models.identifiers import SOURCE_ID_PATTERN
from usage_meter.models.months import in_utc
from usage_meter.models.usage import AttributedReport

# AssemblyAI closes (and bills) a session at 3 hours (models.rules)
SESSION_LIMIT_SECONDS = Decimal(rules.SESSION_LIMIT_SECONDS)
SESSION_TOLERANCE_SECONDS = Decimal(60)
MIN_SESSION_CAP_SECONDS = 60  # the smallest max_session_duration_seconds a token may set
MAX_SESSION_CAP_SECONDS = rules.SESSION_LIMIT_SECONDS
MAX_ADD_ONS = 16
AUDIO_TOLERANCE_SECONDS = Decimal(2)

SessionId = Annotated[str, StringConstraints(pattern=SOURCE_ID_PATTERN)]
ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


def _billable_moment(moment: datetime) -> datetime:
    in_utc(moment)  # ValueError (a 400) when it cannot be placed in a billing month
    return moment


# A timestamp with its offset kept, whose UTC date lies in a billable year (models.months).
Moment = Annotated[AwareDatetime, AfterValidator(_billable_moment)]
Seconds = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=3, allow_inf_nan=False)]
ADD_ON_PATTERN = r"^[a-z][a-z0-9_]{0,39}(:[a-z0-9._-]{1,40})?$"
AddOnName = Annotated[str, StringConstraints(pattern=ADD_ON_PATTERN)]
SessionCap = Annotated[int, Field(ge=MIN_SESSION_CAP_SECONDS, le=MAX_SESSION_CAP_SECONDS)]


class _Report(AttributedReport):
    session_id: SessionId


class _Billed(_Report):
    """``add_ons``: the session's billable streaming options, named as in the price table
    (``keyterms_prompt``, ``speaker_labels``...); each is billed over the whole session time."""

    add_ons: tuple[AddOnName, ...] = Field(default=(), max_length=MAX_ADD_ONS)

    @field_validator("add_ons")
    @classmethod
    def _sorted_add_ons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(value)))


class SessionBegin(_Billed):
    """AssemblyAI's ``Begin`` (``id``, ``expires_at``) with who the session is for, which model
    and add-ons it uses, and, when its temporary token capped it, ``max_session_duration_seconds``.
    """

    model: ModelName
    began_at: Moment
    expires_at: Moment | None = None
    max_session_duration_seconds: SessionCap | None = None

    @model_validator(mode="after")
    def _expires_after_it_began(self) -> Self:
        """A session cannot end before it began; ``began_at`` is the app's clock and
        ``expires_at`` AssemblyAI's, so only a gap beyond the clocks' tolerated skew
        (``rules.REPORT_CLOCK_SKEW_SECONDS``) is unusable. A usable Begin is never refused:
        :meth:`bound_seconds` counts a closer ``expires_at`` as the smallest cap (60 s)."""
        skew = timedelta(seconds=rules.REPORT_CLOCK_SKEW_SECONDS)
        if self.expires_at is not None and self.expires_at <= self.began_at - skew:
            raise ValueError(
                "expires_at must be after began_at (a session cannot end first; clocks may "
                f"differ by at most {rules.REPORT_CLOCK_SKEW_SECONDS} s)"
            )
        return self

    def bound_seconds(self) -> Decimal:
        """The longest AssemblyAI can bill this session: 3 hours, or less when the token capped
        it (``max_session_duration_seconds``) or the Begin's ``expires_at`` says it ends sooner.
        The ``expires_at`` bound is rounded up to whole seconds, and one closer than 60 s to
        ``began_at`` (clock skew between the app and AssemblyAI) counts as 60 s, the smallest
        cap a token can set."""
        bounds = [SESSION_LIMIT_SECONDS]
        if self.max_session_duration_seconds is not None:
            bounds.append(Decimal(self.max_session_duration_seconds))
        if self.expires_at is not None:
            until = Decimal(str((self.expires_at - self.began_at).total_seconds()))
            # Whole seconds, up: expires_at is unix seconds and AssemblyAI's session durations
            # are whole seconds, while began_at is the app's clock (often a fraction later).
            whole = until.to_integral_value(rounding=ROUND_CEILING)
            bounds.append(max(whole, Decimal(MIN_SESSION_CAP_SECONDS)))
        return min(bounds)

    def ends_by(self) -> datetime:
        """When AssemblyAI closes the session at the latest (``began_at`` + the bound)."""
        return self.began_at + timedelta(seconds=float(self.bound_seconds()))


class SessionTermination(_Billed):
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
