"""The usage processor against moto (DynamoDB, SQS, Secrets Manager) and the AssemblyAI stand-in,
which the real assemblyai SDK reaches through the project's base URL."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import httpx
import pytest

from conftest import REGION, Stack, load_event, sqs_event, usage_message_body, webhook_url
from usage_meter_local.assemblyai_standin import transcript

TID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01"


def _process(stack: Stack, *bodies: str, receive_count: int = 1) -> dict[str, Any]:
    return stack.invoke_processor(sqs_event(list(bodies), receive_count))


def _failed_ids(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


class TestRecording:
    def test_completed_transcript_is_billed_with_its_facts(self, stack: Stack) -> None:
        stack.api.state.add(load_event("transcripts/completed.json"))

        result = _process(stack, usage_message_body(TID, "acme-corp", dimensions={"plan": "pro"}))

        assert result == {"batchItemFailures": []}
        [row] = stack.items("ledger")
        assert row["PK"] == f"SOURCE#async#{TID}"
        assert row["customer_id"] == "acme-corp"
        assert row["status"] == "billable"
        assert row["billable_seconds"] == Decimal(754)
        assert row["model"] == "universal-3-pro"
        assert row["language_code"] == "en_us"
        assert row["features"] == ["entity_detection", "keyterms_prompt", "speaker_labels"]
        assert row["dimensions"] == {"plan": "pro"}
        assert row["month"] == "2026-11"
        assert row["occurred_at"] == "2026-11-03T14:05:09.123000+00:00"
        [agg] = stack.items("aggregate")
        assert (agg["usage_count"], agg["billable_seconds"]) == (1, Decimal(754))
        assert agg["PK"] == "CUSTOMER#acme-corp"
        assert agg["LMPK"] == "MONTH#2026-11"

    def test_transcript_text_is_never_stored(self, stack: Stack) -> None:
        payload = load_event("transcripts/completed.json")
        stack.api.state.add(payload)
        _process(stack, usage_message_body(TID, "acme-corp"))
        stored = json.dumps(stack.items("ledger") + stack.items("aggregate"), default=str)
        assert payload["text"][:20] not in stored
        assert "words" not in stored

    def test_multichannel_bills_every_channel(self, stack: Stack) -> None:
        payload = load_event("transcripts/multichannel.json")
        stack.api.state.add(payload)
        _process(stack, usage_message_body(payload["id"], "acme-corp"))
        [row] = stack.items("ledger")
        assert row["billable_seconds"] == Decimal("625.0")  # 312.5 s x 2 channels, exact
        assert row["audio_channels"] == 2
        assert row["audio_duration_seconds"] == Decimal("312.5")
        assert row["model"] == "universal-2"

    def test_error_transcript_is_a_non_billable_row(self, stack: Stack) -> None:
        payload = load_event("transcripts/error.json")
        stack.api.state.add(payload)
        result = _process(stack, usage_message_body(payload["id"], "globex", status="error"))
        assert result == {"batchItemFailures": []}
        [row] = stack.items("ledger")
        assert row["status"] == "failed"
        assert row["billable_seconds"] == 0
        assert row["error_message"].startswith("Download error")
        assert stack.items("aggregate") == []

    def test_eu_project_uses_its_own_key(self, stack: Stack) -> None:
        payload = load_event("transcripts/eu_project.json")
        stack.api.state.add(payload)
        stack.api.state.api_keys = {"local-key-eu"}  # the default key must not be used
        _process(stack, usage_message_body(payload["id"], "initech-gmbh", project="eu"))
        [row] = stack.items("ledger")
        assert (row["project"], row["model"]) == ("eu", "assemblyai-stt-3-7")
        assert "domain:medical-v1" in row["features"]

    def test_unknown_model_and_float_duration_are_parsed_tolerantly(self, stack: Stack) -> None:
        stack.api.state.add(
            transcript(
                TID,
                webhook_url=webhook_url("acme-corp"),
                audio_duration=12.1,
                speech_model_used="universal-9-experimental",
            )
        )
        _process(stack, usage_message_body(TID, "acme-corp"))
        [row] = stack.items("ledger")
        assert row["billable_seconds"] == Decimal("12.1")
        assert row["model"] == "universal-9-experimental"

    def test_month_is_the_utc_month_of_first_receipt(self, stack: Stack) -> None:
        stack.api.state.add(transcript("t-late", webhook_url=webhook_url("acme-corp")))
        stack.api.state.add(transcript("t-early", webhook_url=webhook_url("acme-corp")))
        _process(
            stack,
            usage_message_body("t-late", "acme-corp", received_at="2026-11-30T23:59:59.999Z"),
            usage_message_body("t-early", "acme-corp", received_at="2026-12-01T00:00:00+00:00"),
        )
        months = {r["source_id"]: r["month"] for r in stack.items("ledger")}
        assert months == {"t-late": "2026-11", "t-early": "2026-12"}


class TestExactlyOnce:
    def test_duplicate_delivery_changes_nothing(self, stack: Stack) -> None:
        stack.api.state.add(load_event("transcripts/completed.json"))
        body = usage_message_body(TID, "acme-corp")
        _process(stack, body)
        before = (stack.items("ledger"), stack.items("aggregate"))

        result = _process(stack, body, body, receive_count=2)

        assert result == {"batchItemFailures": []}
        assert (stack.items("ledger"), stack.items("aggregate")) == before

    def test_a_redelivery_of_a_recorded_transcript_costs_no_assemblyai_request(
        self, stack: Stack
    ) -> None:
        """AssemblyAI's 20,000 requests / 5 minutes are shared by the whole account
        (assemblyai-api-facts.md): a message whose transcript the ledger already holds, under
        the same customer and project, is settled from the ledger without a GET."""
        # Given a transcript recorded once (one GET)
        stack.api.state.add(load_event("transcripts/completed.json"))
        body = usage_message_body(TID, "acme-corp")
        _process(stack, body)
        assert len(stack.api.state.requests) == 1

        # When the same delivery comes back three times (SQS redelivery, AssemblyAI retries)
        result = _process(stack, body, body, body, receive_count=2)

        # Then nothing changes and AssemblyAI was not asked again
        assert result == {"batchItemFailures": []}
        assert len(stack.api.state.requests) == 1
        [agg] = stack.items("aggregate")
        assert agg["usage_count"] == 1

    def test_a_delivery_naming_another_customer_is_still_checked_against_assemblyai(
        self, stack: Stack
    ) -> None:
        stack.api.state.add(load_event("transcripts/completed.json"))
        _process(stack, usage_message_body(TID, "acme-corp"))

        _process(stack, usage_message_body(TID, "globex"))

        assert len(stack.api.state.requests) == 2  # not settled from the ledger: fetched
        [q] = stack.items("quarantine")
        assert q["reason"] == "customer_mismatch"

    def test_same_id_with_another_duration_is_a_quarantined_conflict(self, stack: Stack) -> None:
        # A redelivery is settled from the ledger (no fetch), so different facts for a recorded
        # id reach the ledger when they come with the message: reconciliation's prefetched
        # transcript, or a fetch racing the first recording.
        from usage_meter.handlers import usage_processor
        from usage_meter.logic.usage_processing import process_usage_message
        from usage_meter.models.webhook import UsageMessage

        stack.api.state.add(
            transcript(TID, webhook_url=webhook_url("acme-corp"), audio_duration=60)
        )
        _process(stack, usage_message_body(TID, "acme-corp"))
        deps = usage_processor._dependencies().processor

        process_usage_message(
            UsageMessage.from_json(usage_message_body(TID, "acme-corp")),
            deps,
            prefetched=transcript(TID, webhook_url=webhook_url("acme-corp"), audio_duration=90),
        )

        [row] = stack.items("ledger")
        assert row["billable_seconds"] == 60  # first facts kept, never last-wins
        [agg] = stack.items("aggregate")
        assert agg["usage_count"] == 1
        [q] = stack.items("quarantine")
        assert q["reason"] == "conflict"
        assert "billable_seconds=60" in q["detail"]  # both sets of facts, for a person
        assert "billable_seconds=90" in q["detail"]

    def test_replayed_id_under_another_customer_is_quarantined(self, stack: Stack) -> None:
        stack.api.state.add(load_event("transcripts/completed.json"))  # submitted for acme-corp

        result = _process(stack, usage_message_body(TID, "mallory-inc"))

        assert result == {"batchItemFailures": []}
        assert stack.items("ledger") == []
        [q] = stack.items("quarantine")
        assert q["reason"] == "customer_mismatch"
        assert json.loads(q["message"])["attribution"]["customer_id"] == "mallory-inc"

    def test_transcript_without_webhook_customer_is_quarantined(self, stack: Stack) -> None:
        stack.api.state.add(transcript(TID, webhook_url=None))
        _process(stack, usage_message_body(TID, "acme-corp"))
        assert [q["reason"] for q in stack.items("quarantine")] == ["customer_mismatch"]
        assert stack.items("ledger") == []


class TestFailures:
    def test_unknown_project_is_quarantined(self, stack: Stack) -> None:
        _process(stack, usage_message_body(TID, "acme-corp", project="apac"))
        [q] = stack.items("quarantine")
        assert q["reason"] == "unknown_project"
        assert stack.api.state.requests == []

    def test_missing_transcript_is_quarantined(self, stack: Stack) -> None:
        result = _process(stack, usage_message_body("does-not-exist", "acme-corp"))
        assert result == {"batchItemFailures": []}
        assert [q["reason"] for q in stack.items("quarantine")] == ["transcript_not_found"]

    @pytest.mark.parametrize("status", ["queued", "processing"])
    def test_unfinished_transcript_is_retried_not_billed(self, stack: Stack, status: str) -> None:
        stack.api.state.add(transcript(TID, webhook_url=webhook_url("acme-corp"), status=status))
        result = _process(stack, usage_message_body(TID, "acme-corp"))
        assert _failed_ids(result) == ["msg-0"]
        assert stack.items("ledger") == [] and stack.items("aggregate") == []

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_errors_are_retried(self, stack: Stack, status: int) -> None:
        stack.api.state.add(load_event("transcripts/completed.json"))
        stack.api.state.fail(TID, status)
        body = usage_message_body(TID, "acme-corp")

        assert _failed_ids(_process(stack, body)) == ["msg-0"]
        assert stack.items("ledger") == []
        assert _process(stack, body, receive_count=2) == {"batchItemFailures": []}
        assert len(stack.items("ledger")) == 1

    def test_rate_limit_respects_retry_after(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from usage_meter.adapters.queues import SqsUsageQueue

        delays: list[int] = []
        monkeypatch.setattr(
            SqsUsageQueue, "retry_after", lambda _s, _h, seconds: delays.append(seconds)
        )
        stack.api.state.add(load_event("transcripts/completed.json"))
        stack.api.state.fail(TID, 429, retry_after=600)

        result = _process(stack, usage_message_body(TID, "acme-corp"))

        assert _failed_ids(result) == ["msg-0"]
        assert delays == [600]

    @pytest.mark.parametrize("status", [401, 403])
    def test_rejected_api_key_goes_to_the_dlq_with_a_reason(
        self, stack: Stack, status: int
    ) -> None:
        # Given AssemblyAI refuses the project's key: 401 unknown key, 403 key not allowed
        stack.api.state.add(load_event("transcripts/completed.json"))
        if status == 401:
            stack.api.state.api_keys = {"some-other-key"}
        else:
            stack.api.state.fail(TID, 403, times=10)
        body = usage_message_body(TID, "acme-corp")

        # When the delivery is processed
        result = _process(stack, body)

        # Then it goes straight to the DLQ with the reason and the status, and nothing is billed
        assert result == {"batchItemFailures": []}  # not retried: retrying cannot help
        [dead] = stack.queue_messages(stack.dlq_url)
        assert dead["Body"] == body
        assert dead["MessageAttributes"]["reason"]["StringValue"] == "assemblyai_auth"
        assert str(status) in dead["MessageAttributes"]["detail"]["StringValue"]
        assert stack.items("ledger") == [] and stack.items("aggregate") == []
        assert stack.items("quarantine") == []
        assert len(stack.api.state.requests) == 1  # one GET, no retry loop inside the function

    def test_timeout_from_assemblyai_is_retried_not_billed(self, stack: Stack) -> None:
        # Given AssemblyAI answers slower than the processor's HTTP timeout (the late answer,
        # had it been waited for, is not a transcript at all)
        stack.overrides["ASSEMBLYAI_HTTP_TIMEOUT_SECONDS"] = "0.2"
        stack.api.state.add(load_event("transcripts/completed.json"))
        stack.api.state.fail(TID, 200, delay_seconds=1.5)
        body = usage_message_body(TID, "acme-corp")

        # When the delivery is processed
        result = _process(stack, body)

        # Then the message is handed back to SQS and nothing is written
        assert _failed_ids(result) == ["msg-0"]
        assert stack.items("ledger") == [] and stack.items("aggregate") == []
        assert stack.items("quarantine") == []
        assert stack.queue_messages(stack.dlq_url) == []
        # And the next delivery, answered in time, is billed once
        assert _process(stack, body, receive_count=2) == {"batchItemFailures": []}
        assert len(stack.items("ledger")) == 1

    @pytest.mark.parametrize(
        "error",
        [
            httpx.ReadTimeout("read timed out"),
            httpx.ConnectTimeout("connect timed out"),
            httpx.ConnectError("connection refused"),
        ],
        ids=lambda error: type(error).__name__,
    )
    def test_network_errors_from_the_sdk_client_are_retried(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch, error: httpx.HTTPError
    ) -> None:
        # Given the SDK's HTTP client fails before any answer arrives
        stack.api.state.add(load_event("transcripts/completed.json"))

        def failing_get(*_args: Any, **_kwargs: Any) -> httpx.Response:
            raise error

        monkeypatch.setattr(httpx.Client, "get", failing_get)

        # When the delivery is processed
        result = _process(stack, usage_message_body(TID, "acme-corp"))

        # Then it is retried through SQS: no ledger row, no quarantine, no dead letter
        assert _failed_ids(result) == ["msg-0"]
        assert stack.items("ledger") == [] and stack.items("quarantine") == []
        assert stack.queue_messages(stack.dlq_url) == []

    def test_malformed_message_goes_to_the_dlq(self, stack: Stack) -> None:
        result = _process(stack, '{"transcript_id": 42}')
        assert result == {"batchItemFailures": []}
        [dead] = stack.queue_messages(stack.dlq_url)
        assert dead["MessageAttributes"]["reason"]["StringValue"] == "malformed_message"

    def test_one_bad_record_does_not_fail_the_batch(self, stack: Stack) -> None:
        stack.api.state.add(load_event("transcripts/completed.json"))
        stack.api.state.add(transcript("t-pending", webhook_url=webhook_url("x"), status="queued"))
        result = _process(
            stack, usage_message_body(TID, "acme-corp"), usage_message_body("t-pending", "x")
        )
        assert _failed_ids(result) == ["msg-1"]
        assert [r["source_id"] for r in stack.items("ledger")] == [TID]

    def test_dynamodb_outage_is_retried(self, stack: Stack) -> None:
        stack.api.state.add(load_event("transcripts/completed.json"))
        stack.overrides["USAGE_TABLE_NAME"] = "table-that-is-not-there"

        result = _process(stack, usage_message_body(TID, "acme-corp"))

        assert _failed_ids(result) == ["msg-0"]
        assert stack.items("ledger") == []


# What the stand-in puts in every completed transcript's ``text`` (and nothing else carries).
TRANSCRIPT_TEXT = transcript("any", webhook_url=None)["text"]


@pytest.fixture
def function_log(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Every log line at DEBUG: the functions' Powertools logger (which does not propagate) is
    copied, formatted as in Lambda, into the yielded buffer; everything else goes to caplog."""
    from usage_meter.handlers import usage_processor

    caplog.set_level(logging.DEBUG)
    service_logger = logging.getLogger(usage_processor.logger.service)
    buffer = io.StringIO()
    copy = logging.StreamHandler(buffer)
    copy.setFormatter(usage_processor.logger.registered_formatter)
    previous_level = service_logger.level
    service_logger.addHandler(copy)
    service_logger.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        service_logger.setLevel(previous_level)
        service_logger.removeHandler(copy)


def _everything_stored(stack: Stack) -> str:
    """Every item of the table (all entities) and every message of every queue, as text."""
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.table)
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = table.scan(**kwargs)  # tests only: production code never scans
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    messages = [m for url in stack.resources.queue_urls.values() for m in stack.queue_messages(url)]
    return json.dumps({"items": items, "messages": messages}, default=str)


class TestNothingSensitiveKept:
    @pytest.mark.parametrize(
        ("case", "expected"),
        [
            ("recorded", "billable"),
            ("customer_mismatch", "customer_mismatch"),
            ("unreadable_fields", "unbillable_transcript"),
        ],
    )
    def test_transcript_text_is_never_logged_or_stored(
        self,
        stack: Stack,
        capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
        function_log: io.StringIO,
        case: str,
        expected: str,
    ) -> None:
        # Given a completed transcript (with its text) that is billable, belongs to another
        # customer, or has billing fields that cannot be read
        owner = "someone-else" if case == "customer_mismatch" else "acme-corp"
        duration: Any = "sixty seconds" if case == "unreadable_fields" else 60
        stack.api.state.add(
            transcript(TID, webhook_url=webhook_url(owner), audio_duration=duration)
        )
        assert TRANSCRIPT_TEXT and stack.api.state.transcripts[TID]["text"] == TRANSCRIPT_TEXT

        # When the processor fetches and handles it
        result = _process(stack, usage_message_body(TID, "acme-corp"))

        # Then it ended as expected (so the text really went through the processor)...
        assert result == {"batchItemFailures": []}
        assert stack.api.state.requests == [("GET", f"/v2/transcript/{TID}")]
        outcomes = [r["status"] for r in stack.items("ledger")] + [
            q["reason"] for q in stack.items("quarantine")
        ]
        assert outcomes == [expected]
        # ...and the text is in no log line, no printed output, no item and no queue message
        printed = capsys.readouterr()
        logged = function_log.getvalue()
        assert "usage batch handled" in logged  # the functions' own log was captured
        records = json.dumps([r.__dict__ for r in caplog.records], default=str)
        stored = _everything_stored(stack)
        for needle in (TRANSCRIPT_TEXT, TRANSCRIPT_TEXT[:24]):
            assert needle not in logged
            assert needle not in printed.out
            assert needle not in printed.err
            assert needle not in caplog.text
            assert needle not in records
            assert needle not in stored
