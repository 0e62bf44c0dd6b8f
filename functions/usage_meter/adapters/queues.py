"""SQS: the usage queue (intake -> processor), retry scheduling and the dead-letter queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.logic.errors import TransientFailure
from usage_meter.models.webhook import UsageMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_VISIBILITY_TIMEOUT = 43_200  # SQS's own limit: 12 hours


CORRELATION_ATTRIBUTE = "correlation_id"


class SqsUsageQueue:
    """``correlation_id()``: the id of the request being handled (or None), sent with every
    message as the ``correlation_id`` message attribute (handlers/correlation.py)."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        correlation_id: Callable[[], str | None] | None = None,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._correlation_id = correlation_id

    def _attributes(self) -> dict[str, Any]:
        value = self._correlation_id() if self._correlation_id else None
        if not value:
            return {}
        return {CORRELATION_ATTRIBUTE: {"DataType": "String", "StringValue": value}}

    def enqueue(self, message: UsageMessage) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=message.to_json(),
                MessageAttributes=self._attributes(),
            )
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


HOLD_SECONDS = 60  # how long a message browsed by an operator stays invisible at most


class DeadLetterBrowser:
    """Operator access to the DLQ: look at messages (with their reasons) and redrive them."""

    def __init__(self, client: SQSClient, dead_letter_url: str, source_url: str) -> None:
        self._client = client
        self._dlq = dead_letter_url
        self._source = source_url

    def _receive(self, visibility: int) -> list[dict[str, Any]]:
        try:
            return self._receive_once(visibility)
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(f"could not read the DLQ: {type(exc).__name__}") from exc

    def _receive_once(self, visibility: int) -> list[dict[str, Any]]:
        response = self._client.receive_message(
            QueueUrl=self._dlq,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1,  # long polling asks every SQS server: an empty answer means empty
        )
        return [dict(m) for m in response.get("Messages", [])]

    def _release(self, messages: list[dict[str, Any]]) -> None:
        """Visible again at once (best effort: a message not released reappears after
        HOLD_SECONDS anyway)."""
        for message in messages:
            try:
                self._client.change_message_visibility(
                    QueueUrl=self._dlq, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            except (ClientError, BotoCoreError):
                continue

    def peek(self, limit: int = 100) -> list[dict[str, Any]]:
        """Up to ``limit`` messages, left in the queue. Each is held invisible while the listing
        goes on (so every receive returns new ones) and released at the end."""
        held: list[dict[str, Any]] = []
        try:
            while len(held) < limit:
                batch = self._receive(visibility=HOLD_SECONDS)
                if not batch:
                    break
                held.extend(batch)
        finally:
            self._release(held)
        return [
            {
                "message_id": m["MessageId"],
                "reason": m.get("MessageAttributes", {}).get("reason", {}).get("StringValue")
                or "max receives exceeded",
                "detail": m.get("MessageAttributes", {}).get("detail", {}).get("StringValue"),
                "receive_count": m.get("Attributes", {}).get("ApproximateReceiveCount"),
                "body": m["Body"],
            }
            for m in held[:limit]
        ]

    def not_listed(self) -> int:
        """Messages in the DLQ that no listing can see right now: in flight (received by another
        reader and not yet released) or delayed. SQS's approximate counts; the messages this
        browser held are released (visible) before it asks."""
        try:
            attributes = self._client.get_queue_attributes(
                QueueUrl=self._dlq,
                AttributeNames=[
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(
                f"could not read the DLQ's counts: {type(exc).__name__}"
            ) from exc
        return sum(int(v) for v in attributes.values())

    def redrive(self, limit: int = 1000, message_ids: set[str] | None = None) -> int:
        """Move messages back to the usage queue (send first, then delete: never lost, at worst
        delivered twice, which the ledger absorbs). Messages not asked for are held while the
        queue is searched and released at the end. Returns how many moved."""
        moved = 0
        skipped: list[dict[str, Any]] = []
        try:
            while moved < limit:
                batch = self._receive(visibility=HOLD_SECONDS)
                if not batch:
                    break
                for message in batch:
                    wanted = message_ids is None or message["MessageId"] in message_ids
                    if not wanted or moved >= limit:
                        skipped.append(message)
                        continue
                    try:
                        self._client.send_message(
                            QueueUrl=self._source, MessageBody=message["Body"]
                        )
                        self._client.delete_message(
                            QueueUrl=self._dlq, ReceiptHandle=message["ReceiptHandle"]
                        )
                    except (ClientError, BotoCoreError) as exc:
                        # Sent but not deleted is harmless (the ledger absorbs a second copy).
                        raise TransientFailure(
                            f"redrive stopped after {moved} message(s): {type(exc).__name__}"
                        ) from exc
                    moved += 1
                if message_ids is not None and moved == len(message_ids):
                    break
        finally:
            self._release(skipped)
        return moved
