"""Odd input read from outside: months, timestamps, Retry-After and AssemblyAI's billing facts.

Every value a caller or AssemblyAI can send either parses to a sane value or is refused with a
reason (a 400, the normal backoff, or quarantine as implausible) - never an unhandled error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from usage_meter.adapters.assemblyai_api import MAX_RETRY_AFTER_SECONDS, parse_retry_after
from usage_meter.logic.monthly_export import InvalidMonth, check_month
from usage_meter.logic.queued_delivery import BACKOFF_MAX_SECONDS, backoff_seconds
from usage_meter.models.months import in_utc, is_month
from usage_meter.models.transcript import MAX_AUDIO_CHANNELS, TranscriptFacts

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("month", ["2026-11", "2000-01", "2999-12"])
def test_billing_months_are_accepted(month: str) -> None:
    assert is_month(month) and check_month(month) == month


@pytest.mark.parametrize(
    "month",
    [
        "0000-01",  # year 0: date() cannot build it (was a 500 on the usage API)
        "1999-12",
        "3000-01",
        "\uff12\uff10\uff12\uff16-\uff11\uff11",  # full-width digits: a \d pattern matched them
        "2026-1\uff11",
        "\u0662\u0660\u0662\u0666-\u0661\u0661",  # Arabic-Indic digits
        "2026-11\n",  # a trailing newline: ``$`` matched before it
        "2026-13",
        "2026-00",
        "26-11",
        "",
        "2026-11-01",
    ],
)
def test_odd_months_are_refused(month: str) -> None:
    assert not is_month(month)
    with pytest.raises(InvalidMonth):
        check_month(month)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-23, minutes=-59))),
        datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=5))),
        datetime(1999, 12, 31, 23, 0, tzinfo=UTC),
        datetime(2026, 11, 29, 12, 0),  # naive
    ],
)
def test_moments_outside_the_calendar_are_value_errors(moment: datetime) -> None:
    with pytest.raises(ValueError):
        in_utc(moment)


def test_moment_is_read_in_utc() -> None:
    local = datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert in_utc(local) == datetime(2026, 11, 30, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30),
        ("0", 1),
        (" 7 ", 7),
        (str(MAX_RETRY_AFTER_SECONDS), MAX_RETRY_AFTER_SECONDS),
        ("Sun, 29 Nov 2026 12:02:00 GMT", 120),  # HTTP-date, RFC 9110 section 10.2.3
        ("Sun, 29 Nov 2026 11:00:00 GMT", 1),  # already past: retry soon
    ],
)
def test_retry_after_is_read_as_rfc_9110_says(header: str, seconds: int) -> None:
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "inf",  # case 3: was OverflowError, an unhandled error
        "Infinity",
        "nan",
        "-5",
        "1e9",
        "12.5",
        "\uff13\uff10",  # full-width digits
        str(MAX_RETRY_AFTER_SECONDS + 1),
        "9" * 400,
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "not a date",
        "Sun, 29 Nov 2026 12:02:00",  # no zone
    ],
)
def test_implausible_retry_after_means_the_normal_backoff(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None
    assert backoff_seconds(1, parse_retry_after(header, NOW)) == 20


def test_backoff_never_exceeds_its_cap() -> None:
    assert backoff_seconds(1, retry_after=10**9) == BACKOFF_MAX_SECONDS
    assert backoff_seconds(10**6) == BACKOFF_MAX_SECONDS


def _facts(**fields: object) -> TranscriptFacts:
    return TranscriptFacts.from_api({"id": "t", "status": "completed", **fields})


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"audio_duration": 60, "multichannel": True, "audio_channels": 1_000_000}, "1000000"),
        ({"audio_duration": 60, "multichannel": True, "audio_channels": 0}, "outside"),
        ({"audio_duration": 60, "multichannel": True, "audio_channels": -2}, "outside"),
        ({"audio_duration": "1" * 40}, "40 digits"),
        ({"audio_duration": "1e400"}, "401 digits"),
        ({"audio_duration": 36_061}, "10-hour"),
    ],
)
def test_implausible_facts_are_named(fields: dict[str, object], why: str) -> None:
    reason = _facts(**fields).implausibility()
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    "fields",
    [
        {"audio_duration": 60, "multichannel": True, "audio_channels": MAX_AUDIO_CHANNELS},
        {"audio_duration": 36_060},
        {"audio_duration": 60, "multichannel": None, "audio_channels": None},
        {"audio_duration": Decimal("0.5")},
    ],
)
def test_plausible_facts_pass(fields: dict[str, object]) -> None:
    assert _facts(**fields).implausibility() is None
