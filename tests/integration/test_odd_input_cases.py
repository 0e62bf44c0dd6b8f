"""Issue 17's listed cases of odd input, end to end through the handlers (moto + the stand-in).

- Case 2: ``GET /customers/acme/usage?month=0000-01`` is a 400, not an unhandled error.
- Case 3: AssemblyAI's 429 with ``Retry-After: inf`` gets the normal backoff (20 s on the first
  attempt), not an unhandled error and not a 720 s wait.
- Case 4: a completed 60 s transcript with ``multichannel: true, audio_channels: 1000000`` is
  quarantined as implausible, nothing billed (AssemblyAI documents a 10-hour maximum duration and
  no channel count that would make 60,000,000 s of one file plausible).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from test_streaming import begin, terminate

from conftest import Stack, sqs_event, usage_message_body, usage_query_event, webhook_url
from usage_meter_local.assemblyai_standin import transcript

TID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a77"


@pytest.mark.parametrize(
    "month", ["0000-01", "\uff12\uff10\uff12\uff16-\uff11\uff11", "2026-11\n", "1999-12", "9999-12"]
)
def test_case_2_odd_month_on_the_usage_api_is_400(stack: Stack, month: str) -> None:
    answer = stack.invoke("UsageQueryFunction", usage_query_event("acme", {"month": month}))
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"] == "invalid_month"


def test_case_3_retry_after_inf_gets_the_normal_backoff(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usage_meter.adapters.queues import SqsUsageQueue

    delays: list[int] = []
    monkeypatch.setattr(
        SqsUsageQueue, "retry_after", lambda _s, _h, seconds: delays.append(seconds)
    )
    stack.api.state.add(transcript(TID, webhook_url=webhook_url("acme-corp")))
    stack.api.state.fail(TID, 429, retry_after="inf")

    result = stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")], 1))

    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["msg-0"]
    assert delays == [20]  # BACKOFF_BASE_SECONDS: the first attempt's normal backoff
    assert stack.items("ledger") == []


def test_case_4_absurd_channel_count_is_quarantined_as_implausible(stack: Stack) -> None:
    stack.api.state.add(
        transcript(
            TID,
            webhook_url=webhook_url("acme-corp"),
            audio_duration=60,
            multichannel=True,
            audio_channels=1_000_000,
        )
    )

    result = stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")], 1))

    assert result == {"batchItemFailures": []}  # not retried: it will not change
    assert stack.items("ledger") == [] and stack.items("aggregate") == []
    [held] = stack.items("quarantine")
    assert held["reason"] == "implausible_transcript"
    assert "audio_channels 1000000 outside 1..32" in held["detail"]
    assert stack.queue_messages(stack.dlq_url) == []


def test_duration_with_dozens_of_digits_is_quarantined(stack: Stack) -> None:
    stack.api.state.add(
        transcript(TID, webhook_url=webhook_url("acme-corp"), audio_duration="9" * 45)
    )

    result = stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")], 1))

    assert result == {"batchItemFailures": []}
    assert stack.items("ledger") == []
    [held] = stack.items("quarantine")
    assert held["reason"] == "implausible_transcript"
    assert "45 digits" in held["detail"]


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-23:59", "1999-12-31T23:00:00Z"]
)
def test_streaming_times_outside_the_calendar_are_400(stack: Stack, moment: str) -> None:
    assert begin(stack, began_at=moment)["statusCode"] == 400
    ended = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert terminate(stack, ended_at=ended)["statusCode"] == 200
    assert terminate(stack, session_id="other-session", ended_at=moment)["statusCode"] == 400
