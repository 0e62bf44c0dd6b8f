"""An SQS event source mapping, locally: poll a queue and deliver batches to its function.

What Lambda's event source mapping does and this does too:
- long-polls ReceiveMessage (all system attributes, so ``ApproximateReceiveCount`` is there) and
  fills a batch up to ``BatchSize`` for at most ``MaximumBatchingWindowInSeconds``;
- invokes the function with Lambda's SQS event (``Records`` of ``messageId``, ``receiptHandle``,
  ``body``, ``attributes``, ``messageAttributes``, ``md5OfBody``, ``eventSource``, ...);
- with ``ReportBatchItemFailures``, deletes the messages not listed in ``batchItemFailures`` and
  leaves the listed ones to reappear when their visibility timeout ends; a function error, a
  timeout or an invalid response (unknown or empty ``itemIdentifier``) fails the whole batch, and
  every message stays on the queue;
- moving a message to the dead-letter queue after ``maxReceiveCount`` receives is the queue's own
  redrive policy, which moto applies on ReceiveMessage as SQS does.

One local difference, on purpose: ``retry_delay_cap`` (seconds, None = off) shortens how long a
failed message stays invisible, so retries and the dead-letter path take seconds instead of the
processor's backoff of minutes. It applies to every message the function did not finish.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter_local.function_pool import Invocation

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

log = logging.getLogger("usage_meter_local")
POLL_WAIT_SECONDS = 1  # short long-polls, so that stopping never waits long
SQS_BATCH_LIMIT = 10  # DeleteMessageBatch / ChangeMessageVisibilityBatch entries per call


@dataclass
class EventSourceStats:
    batches: int = 0
    messages: int = 0
    deleted: int = 0
    failed_items: int = 0  # listed in batchItemFailures
    failed_batches: int = 0  # function error, timeout or invalid response: all left on the queue


@dataclass(frozen=True)
class EventSourceConfig:
    function: str  # logical id
    queue_url: str
    queue_arn: str
    region: str
    batch_size: int = 10
    batching_window_seconds: float = 0.0
    report_batch_item_failures: bool = False
    retry_delay_cap: int | None = None


def lambda_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """One message as Lambda's SQS event record."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _lambda_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _lambda_attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def failed_message_ids(
    invocation: Invocation, message_ids: list[str], report_batch_item_failures: bool
) -> tuple[set[str], bool]:
    """Which messages of a batch failed, and whether the batch failed as a whole."""
    everything = set(message_ids)
    if not invocation.ok:
        return everything, True
    if not report_batch_item_failures or invocation.result is None:
        return set(), False
    if not isinstance(invocation.result, dict):
        return everything, True
    failures = invocation.result.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return everything, True
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in everything:
            return everything, True
        failed.add(identifier)
    return failed, False


class SqsEventSource:
    """Polls one queue on a background thread and delivers batches to one function."""

    def __init__(
        self,
        config: EventSourceConfig,
        sqs: SQSClient,
        invoke: Callable[[str, dict[str, Any]], Invocation],
    ) -> None:
        self.config = config
        self.stats = EventSourceStats()
        self._sqs = sqs
        self._invoke = invoke
        self._stopping = threading.Event()
        self._in_hand = 0
        self._thread = threading.Thread(
            target=self._run, name=f"sqs-{config.function}", daemon=True
        )

    @property
    def busy(self) -> bool:
        """Holding received messages that are not yet deleted or released."""
        return self._in_hand > 0

    def start(self) -> SqsEventSource:
        self._thread.start()
        return self

    def begin_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self.begin_stop()
        if self._thread.is_alive():
            self._thread.join()

    # -- the polling loop -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = self._collect_batch()
                if batch:
                    self._deliver(batch)
            except (BotoCoreError, ClientError) as exc:
                if self._stopping.is_set():
                    break
                log.warning("%s: SQS call failed (%s); retrying", self.config.function, exc)
                self._stopping.wait(1.0)
            finally:
                self._in_hand = 0

    def _receive(self, count: int, wait_seconds: int) -> list[MessageTypeDef]:
        response = self._sqs.receive_message(
            QueueUrl=self.config.queue_url,
            MaxNumberOfMessages=min(count, SQS_BATCH_LIMIT),
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        self._in_hand += len(messages)
        return messages

    def _collect_batch(self) -> list[MessageTypeDef]:
        size = self.config.batch_size
        first = self._receive(size, POLL_WAIT_SECONDS)
        if not first:
            return []
        batch = {m["MessageId"]: m for m in first}
        deadline = time.monotonic() + self.config.batching_window_seconds
        while len(batch) < size and time.monotonic() < deadline and not self._stopping.is_set():
            more = self._receive(size - len(batch), 0)
            batch.update((m["MessageId"], m) for m in more)
            if not more:
                self._stopping.wait(0.05)
        return list(batch.values())

    def _deliver(self, messages: list[MessageTypeDef]) -> None:
        config = self.config
        event = {"Records": [lambda_record(m, config.queue_arn, config.region) for m in messages]}
        invocation = self._invoke(config.function, event)
        ids = [m["MessageId"] for m in messages]
        failed, whole_batch = failed_message_ids(invocation, ids, config.report_batch_item_failures)
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete(done)
        self._release([m for m in messages if m["MessageId"] in failed])
        stats = self.stats
        stats.batches += 1
        stats.messages += len(messages)
        stats.deleted += len(done)
        stats.failed_batches += whole_batch
        stats.failed_items += 0 if whole_batch else len(failed)
        if whole_batch:
            error = invocation.error or {}
            log.info(
                "%s: batch of %d failed as a whole (%s: %s); all stay on the queue",
                config.function,
                len(messages),
                error.get("errorType", "invalid response"),
                error.get("errorMessage", invocation.result),
            )
        else:
            log.info(
                "%s: batch of %d -> %d done, %d to retry (%.0f ms)",
                config.function,
                len(messages),
                len(done),
                len(failed),
                invocation.duration_ms,
            )

    def _delete(self, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start : start + SQS_BATCH_LIMIT]
            response = self._sqs.delete_message_batch(
                QueueUrl=self.config.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                log.warning("%s: could not delete a message: %s", self.config.function, failure)

    def _release(self, messages: list[MessageTypeDef]) -> None:
        cap = self.config.retry_delay_cap
        if cap is None:
            return
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start : start + SQS_BATCH_LIMIT]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.config.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": cap}
                    for i, m in enumerate(chunk)
                ],
            )
