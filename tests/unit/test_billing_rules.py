"""Pure billing rules: transcript facts, billable seconds, months, queue messages, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from usage_meter.adapters.assemblyai_api import RequestPacer
from usage_meter.logic.queued_delivery import BACKOFF_MAX_SECONDS, backoff_seconds
from usage_meter.models.transcript import TranscriptFacts
from usage_meter.models.webhook import Attribution, InvalidMessage, UsageMessage, usage_month
from usage_meter.settings import ProcessorSettings, SettingsError

URL = "https://x.example/webhooks/assemblyai?customer_id=acme&plan=pro"


def facts(**fields: Any) -> TranscriptFacts:
    return TranscriptFacts.from_api(
        {"id": "t1", "status": "completed", "webhook_url": URL, **fields}
    )


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(754, Decimal(754)), (12.1, Decimal("12.1")), ("3.25", Decimal("3.25")), (0, Decimal(0))],
)
def test_duration_is_exact_whatever_its_json_type(duration: Any, expected: Decimal) -> None:
    assert facts(audio_duration=duration).billable_seconds == expected


@pytest.mark.parametrize(
    "duration", [True, "twelve", [1], {"s": 1}, "NaN", "Infinity", float("nan"), -1, "-0.5"]
)
def test_nonsense_duration_is_rejected(duration: Any) -> None:
    with pytest.raises(ValidationError):
        facts(audio_duration=duration)


@pytest.mark.parametrize(
    ("multichannel", "channels", "expected"),
    [
        (True, 2, Decimal("201.0")),
        (True, 8, Decimal("804.0")),
        (None, 2, Decimal("100.5")),
        (False, None, Decimal("100.5")),
        (True, None, Decimal("100.5")),
        (True, 1, Decimal("100.5")),
    ],
)
def test_multichannel_bills_per_channel(
    multichannel: Any, channels: Any, expected: Decimal
) -> None:
    f = facts(audio_duration=100.5, multichannel=multichannel, audio_channels=channels)
    assert f.billable_seconds == expected


def test_model_comes_from_speech_model_used_and_unknown_names_pass() -> None:
    assert facts(speech_model_used="universal-42-future").speech_model_used == "universal-42-future"
    assert facts(speech_model="best").speech_model_used == "best"  # older transcripts
    assert facts().speech_model_used is None


def test_features_are_the_priced_add_ons() -> None:
    f = facts(
        speaker_labels=True,
        sentiment_analysis=False,
        redact_pii=True,
        keyterms_prompt=["x"],
        prompt="",
        domain="medical-v1",
        iab_categories=None,
    )
    assert f.features == ("domain:medical-v1", "keyterms_prompt", "redact_pii", "speaker_labels")


def test_text_and_other_fields_are_not_kept() -> None:
    f = facts(text="secret words", words=[{"text": "secret"}], audio_duration=1)
    assert "secret" not in f.model_dump_json()


@pytest.mark.parametrize(
    ("url", "customer"),
    [
        (URL, "acme"),
        ("https://x/webhooks/assemblyai?customer_id=a%2Bb", "a+b"),
        ("https://x/webhooks/assemblyai?customer_id=a&customer_id=b", None),
        ("https://x/webhooks/assemblyai?plan=pro", None),
        (None, None),
    ],
)
def test_customer_from_the_transcripts_own_webhook_url(
    url: str | None, customer: str | None
) -> None:
    assert facts(webhook_url=url).webhook_customer_id() == customer


@pytest.mark.parametrize(
    ("moment", "month"),
    [
        (datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC), "2026-11"),
        (datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), "2026-12"),
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "2026-12"),
        (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "2027-01"),
        # 20:00 on Dec 31 in New York is already January in UTC
        (datetime(2026, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))), "2027-01"),
    ],
)
def test_month_is_utc(moment: datetime, month: str) -> None:
    assert usage_month(moment) == month


def _message(**overrides: Any) -> UsageMessage:
    fields: dict[str, Any] = {
        "transcript_id": "t1",
        "webhook_status": "completed",
        "attribution": Attribution("acme", "default", {"plan": "pro"}),
        "received_at": datetime(2026, 11, 3, 14, 5, 9, 123000, tzinfo=UTC),
    }
    return UsageMessage(**{**fields, **overrides})


def test_queue_message_round_trips() -> None:
    message = _message()
    assert UsageMessage.from_json(message.to_json()) == message
    assert '"received_at":"2026-11-03T14:05:09.123000+00:00"' in message.to_json()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"transcript_id": "t1"}',
        _message().to_json().replace('"acme"', '"acme/evil"'),
        _message().to_json().replace('"completed"', '"queued"'),
        _message().to_json().replace("+00:00", ""),  # naive time
        _message().to_json().replace('"schema_version":1', '"schema_version":2'),
        _message().to_json().replace('"t1"', '"t#1"'),
        _message().to_json().replace('"plan"', '"1plan"'),
    ],
)
def test_malformed_queue_messages_are_rejected(text: str) -> None:
    with pytest.raises(InvalidMessage):
        UsageMessage.from_json(text)


def test_backoff_grows_is_capped_and_respects_retry_after() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3)] == [20, 40, 80]
    assert backoff_seconds(30) == BACKOFF_MAX_SECONDS
    assert backoff_seconds(1, retry_after=120) == 120
    assert backoff_seconds(5, retry_after=3) == 320


def test_pacer_spaces_requests_to_the_configured_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = RequestPacer(rate=10, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
    assert now[0] == pytest.approx(0.4)  # 5 requests at 10/s: the 5th leaves at t=0.4 s
    assert len(slept) == 4


def test_settings_errors_name_the_variable() -> None:
    base = {
        "USAGE_TABLE_NAME": "t",
        "USAGE_QUEUE_URL": "q",
        "USAGE_DLQ_URL": "d",
        "EVENT_BUS_NAME": "b",
        "BILLING_DIMENSIONS": "plan",
    }
    with pytest.raises(SettingsError, match="ASSEMBLYAI_PROJECTS is required"):
        ProcessorSettings.from_environ(base)
    with pytest.raises(SettingsError, match="ASSEMBLYAI_PROJECTS"):
        ProcessorSettings.from_environ({**base, "ASSEMBLYAI_PROJECTS": '{"x": {}}'})
    with pytest.raises(SettingsError, match="ASSEMBLYAI_MAX_REQUESTS_PER_SECOND"):
        ProcessorSettings.from_environ(
            {
                **base,
                "ASSEMBLYAI_PROJECTS": '{"x": {"api_key_secret_id": "s"}}',
                "ASSEMBLYAI_MAX_REQUESTS_PER_SECOND": "0",
            }
        )


def test_base_url_override_replaces_every_project_url() -> None:
    settings = ProcessorSettings.from_environ(
        {
            "USAGE_TABLE_NAME": "t",
            "USAGE_QUEUE_URL": "q",
            "USAGE_DLQ_URL": "d",
            "EVENT_BUS_NAME": "b",
            "BILLING_DIMENSIONS": "plan",
            "ASSEMBLYAI_PROJECTS": '{"eu": {"api_key_secret_id": "s", "base_url": "https://api.eu.assemblyai.com"}}',
            "ASSEMBLYAI_BASE_URL_OVERRIDE": "http://127.0.0.1:8080/",
        }
    )
    project = settings.project("eu")
    assert project is not None and project.base_url == "http://127.0.0.1:8080"
    assert project.api_key_secret_id == "s"
    assert settings.project("us") is None
