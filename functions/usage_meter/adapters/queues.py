"""SQS: the usage queue (intake -> processor), retry scheduling and the dead-letter queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.logic.errors import TransientFailure
from usage_meter.models.webhook import UsageMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_VISIBILITY_TIMEOUT = 43_200  # SQS's own limit: 12 hours


class SqsUsageQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def enqueue(self, message: UsageMessage) -> None:
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=message.to_json())
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(
                f"could not enqueue usage message: {type(exc).__name__}"
            ) from exc

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        """Hide a failed message for ``seconds`` before SQS hands it out again (best effort: if
        this fails the queue's own visibility timeout applies)."""
        seconds = max(0, min(int(seconds), MAX_VISIBILITY_TIMEOUT))
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError):
            return


class SqsDeadLetterQueue:
    """Sends a message that retrying cannot fix straight to the DLQ, with the reason attached."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, body: str, reason: str, detail: str) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=body,
                MessageAttributes={
                    "reason": {"DataType": "String", "StringValue": reason},
                    "detail": {"DataType": "String", "StringValue": detail[:1000] or reason},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(f"could not dead-letter message: {type(exc).__name__}") from exc
