"""Every AWS call that can fail maps to a retry or to a permanent failure with a reason (issue 9).

DynamoDB answers are stubbed with botocore's Stubber (the real client, real error parsing): a
ValidationException can never succeed on retry, so it is dead-lettered at once with the reason;
throttling and 5xx are retried; the streaming begin stub, quarantine close and audit writes never
surface as bare errors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from usage_meter.adapters.audit_log import DynamoAuditLog
from usage_meter.adapters.quarantine_store import DynamoQuarantine
from usage_meter.adapters.session_store import DynamoSessionStore
from usage_meter.adapters.table_access import TableAdapter
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.errors import STORAGE_REFUSED, PermanentFailure, TransientFailure
from usage_meter.logic.operations import AuditEntry, OperationRefused
from usage_meter.logic.queued_delivery import DeliveryDeps, handle_queued_delivery
from usage_meter.logic.usage_processing import ProcessorDeps
from usage_meter.models.streaming import SessionBegin
from usage_meter.models.usage import UsageRecord, UsageStatus

NOW = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)


def _ledger() -> tuple[DynamoUsageLedger, Stubber]:
    return _adapter(DynamoUsageLedger)


def _adapter[A: TableAdapter](cls: type[A]) -> tuple[A, Stubber]:
    client = boto3.client("dynamodb", region_name="eu-west-1")
    return cls(client, "UsageTable"), Stubber(client)


def _record() -> UsageRecord:
    return UsageRecord(
        source_id="t1",
        product="async",
        status=UsageStatus.BILLABLE,
        customer_id="acme",
        project="default",
        month="2026-11",
        billable_seconds=Decimal(60),
        occurred_at=NOW,
    )


def test_a_validation_exception_is_permanent_with_its_reason() -> None:
    ledger, stub = _ledger()
    stub.add_client_error(
        "transact_write_items",
        service_error_code="ValidationException",
        service_message="Item size has exceeded the maximum allowed size",
        http_status_code=400,
    )
    with stub, pytest.raises(PermanentFailure) as failed:
        ledger.record(_record())
    assert failed.value.reason == STORAGE_REFUSED
    assert "ValidationException" in failed.value.message


def test_a_transaction_cancelled_for_a_validation_error_is_permanent() -> None:
    ledger, stub = _ledger()
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled",
        http_status_code=400,
        modeled_fields={
            "CancellationReasons": [
                {"Code": "None"},
                {"Code": "ValidationError", "Message": "key too large"},
            ]
        },
    )
    with stub, pytest.raises(PermanentFailure) as failed:
        ledger.record(_record())
    assert failed.value.reason == STORAGE_REFUSED


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "InternalServerError", "ThrottlingException"]
)
def test_throttling_and_server_errors_are_retried(code: str) -> None:
    ledger, stub = _ledger()
    stub.add_client_error("transact_write_items", service_error_code=code, http_status_code=500)
    with stub, pytest.raises(TransientFailure):
        ledger.record(_record())


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.counted: list[str] = []
        self.retried: list[int] = []
        self.published: list[tuple[str, dict[str, Any]]] = []

    def send(self, body: str, reason: str, detail: str) -> None:
        self.sent.append((reason, detail))

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.counted.append(name)

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        self.retried.append(seconds)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.published.append((detail_type, detail))


class _Transcripts:
    def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
        return {
            "id": transcript_id,
            "status": "completed",
            "audio_duration": 60,
            "speech_model_used": "universal-3-pro",
            "webhook_url": "https://x.test/webhooks/assemblyai?customer_id=acme",
        }


_MESSAGE = (
    '{"schema_version":1,"transcript_id":"t1","webhook_status":"completed",'
    '"attribution":{"customer_id":"acme","project":"default","dimensions":{}},'
    '"received_at":"2026-11-03T14:05:09+00:00","origin":"webhook"}'
)


def _delivery_deps(ledger: Any, recorder: _Recorder) -> DeliveryDeps:
    """The processor's delivery with the stubbed ledger; every other port is ``recorder``."""
    return DeliveryDeps(
        processor=ProcessorDeps(
            transcripts=_Transcripts(),
            ledger=ledger,
            metrics=recorder,
            known_projects=frozenset({"default"}),
        ),
        retries=recorder,
        dead_letters=recorder,
        events=recorder,
    )


def test_a_validation_exception_is_never_retried() -> None:
    # Given DynamoDB refusing the processor's transaction as invalid (and accepting the quarantine)
    ledger, stub = _ledger()
    stub.add_response("get_item", {})  # not in the ledger yet (read before any fetch)
    stub.add_client_error(
        "transact_write_items", service_error_code="ValidationException", http_status_code=400
    )
    stub.add_response("put_item", {})
    recorder = _Recorder()
    deps = _delivery_deps(ledger, recorder)
    body = _MESSAGE

    # When the message is handled on its first receive
    with stub:
        result = handle_queued_delivery(body, "handle", 1, deps)

    # Then no retry is scheduled: the usage is quarantined as unstorable with the reason (issue
    # 17: usage that cannot be stored is held for a person, never retried until the DLQ)
    assert result is not None and result.reason is not None
    assert result.reason.value == "unstorable"
    assert recorder.retried == [] and recorder.sent == []
    assert "Quarantined_unstorable" in recorder.counted


def test_the_streaming_begin_stub_fill_in_failure_is_classified() -> None:
    ledger, stub = _adapter(DynamoSessionStore)
    stub.add_client_error(
        "put_item", service_error_code="ConditionalCheckFailedException", http_status_code=400
    )
    stub.add_response("get_item", {"Item": {"PK": {"S": "SESSION#s1"}, "SK": {"S": "BEGIN"}}})
    stub.add_client_error(
        "update_item", service_error_code="ServiceUnavailable", http_status_code=503
    )
    begin = SessionBegin(
        session_id="s1", customer_id="acme", model="universal-streaming-english", began_at=NOW
    )
    with stub, pytest.raises(TransientFailure):
        ledger.put_begin(begin)


def test_closing_a_quarantined_item_twice_is_refused_not_a_crash() -> None:
    ledger, stub = _adapter(DynamoQuarantine)
    stub.add_client_error(
        "update_item", service_error_code="ConditionalCheckFailedException", http_status_code=400
    )
    with stub, pytest.raises(OperationRefused):
        ledger.close_quarantine("t1/conflict#abc", {"action": "dismiss"})


def test_closing_a_quarantined_item_during_an_outage_is_retryable() -> None:
    ledger, stub = _adapter(DynamoQuarantine)
    stub.add_client_error(
        "update_item", service_error_code="InternalServerError", http_status_code=500
    )
    with stub, pytest.raises(TransientFailure):
        ledger.close_quarantine("t1/conflict#abc", {"action": "dismiss"})


def test_an_audit_write_failure_is_classified() -> None:
    ledger, stub = _adapter(DynamoAuditLog)
    stub.add_client_error(
        "put_item", service_error_code="ThrottlingException", http_status_code=400
    )
    entry = AuditEntry("ops", "quarantine.dismiss", "t1", "why", "dismissed", NOW)
    with stub, pytest.raises(TransientFailure):
        ledger.audit(entry)


def test_reading_the_dlq_during_an_outage_is_a_retryable_failure_not_a_crash() -> None:
    from usage_meter.adapters.queues import DeadLetterBrowser

    client = boto3.client("sqs", region_name="eu-west-1")
    stub = Stubber(client)
    stub.add_client_error(
        "receive_message", service_error_code="ServiceUnavailable", http_status_code=503
    )
    browser = DeadLetterBrowser(client, "https://sqs.test/dlq", "https://sqs.test/q")
    with stub, pytest.raises(TransientFailure):
        browser.peek()


def test_when_even_the_quarantine_is_refused_the_delivery_is_dead_lettered_at_once() -> None:
    # Given DynamoDB refusing both the usage and the quarantine item as invalid
    ledger, stub = _ledger()
    stub.add_response("get_item", {})  # not in the ledger yet (read before any fetch)
    for operation in ("transact_write_items", "put_item"):
        stub.add_client_error(
            operation, service_error_code="ValidationException", http_status_code=400
        )
    recorder = _Recorder()
    deps = _delivery_deps(ledger, recorder)
    body = _MESSAGE

    with stub:
        result = handle_queued_delivery(body, "handle", 1, deps)

    # Then it goes to the DLQ with the reason at once: no retry could ever succeed
    assert result is None
    assert [reason for reason, _ in recorder.sent] == [STORAGE_REFUSED]
    assert recorder.retried == []
