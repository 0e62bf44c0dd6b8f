"""The usage processor against moto (DynamoDB, SQS, Secrets Manager) and the AssemblyAI stand-in,
which the real assemblyai SDK reaches through the project's base URL."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from conftest import Stack, load_event, sqs_event, usage_message_body, webhook_url
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
        assert agg["GSI1PK"] == "MONTH#2026-11"

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

    def test_same_id_with_another_duration_is_a_quarantined_conflict(self, stack: Stack) -> None:
        stack.api.state.add(
            transcript(TID, webhook_url=webhook_url("acme-corp"), audio_duration=60)
        )
        _process(stack, usage_message_body(TID, "acme-corp"))
        stack.api.state.add(
            transcript(TID, webhook_url=webhook_url("acme-corp"), audio_duration=90)
        )

        result = _process(stack, usage_message_body(TID, "acme-corp"))

        assert result == {"batchItemFailures": []}
        [row] = stack.items("ledger")
        assert row["billable_seconds"] == 60  # first facts kept, never last-wins
        [agg] = stack.items("aggregate")
        assert agg["usage_count"] == 1
        [q] = stack.items("quarantine")
        assert q["reason"] == "conflict"
        assert "'billable_seconds': Decimal('90')" in q["detail"]

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

    def test_rejected_api_key_goes_to_the_dlq_with_a_reason(self, stack: Stack) -> None:
        stack.api.state.api_keys = {"some-other-key"}
        body = usage_message_body(TID, "acme-corp")

        result = _process(stack, body)

        assert result == {"batchItemFailures": []}  # not retried: retrying cannot help
        [dead] = stack.queue_messages(stack.dlq_url)
        assert dead["Body"] == body
        assert dead["MessageAttributes"]["reason"]["StringValue"] == "assemblyai_auth"
        assert "401" in dead["MessageAttributes"]["detail"]["StringValue"]
        assert stack.items("ledger") == []

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
