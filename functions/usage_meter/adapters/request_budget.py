"""The meter's share of AssemblyAI's account-wide request budget, shared by every worker.

AssemblyAI allows an account 20,000 requests per five minutes, for all its API keys and clients
together, and answers 429 with ``Retry-After`` beyond that (AssemblyAI docs, "Account management
and limits"; /work/shared/reference/assemblyai-api-facts.md). The company's own application uses
the same budget, so the meter takes only its configured share
(``ASSEMBLYAI_REQUESTS_PER_5_MINUTES``, default 2,000 = 10%), across every processor invocation
and reconciliation run together.

How: one DynamoDB item (PK ``PACER#assemblyai``, SK ``SCHEDULE``) holds ``next_at``, the earliest
time (epoch seconds) the next request may go. A worker reserves ``lease`` request slots with one
conditional UpdateItem that moves ``next_at`` forward by ``lease x interval`` (interval = 300 s /
share), then sends its requests at its reserved slots, ``interval`` apart. Slots are never banked:
after an idle period the schedule restarts at the present, and a worker drops a reserved slot it
could not use within LATE_SECONDS, so no 5-minute window holds more than the share plus one
lease per worker (plus share x 5 s / 300 s for slots used late). A 429 pushes ``next_at`` past
the ``Retry-After``: every worker's next reservation waits, not only the one that saw it (each
worker may still use the slots it had already reserved: at most ``lease`` requests). One write
per ``lease`` requests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.logic.errors import TransientFailure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WINDOW_SECONDS = 300  # AssemblyAI's limit is per five minutes
PACER_KEY = {"PK": {"S": "PACER#assemblyai"}, "SK": {"S": "SCHEDULE"}}
MAX_WAIT_SECONDS = 60.0  # a reservation further ahead than this gives the message back to SQS
LATE_SECONDS = 5.0  # a reserved slot unused for this long is dropped (never banked)
LEASE = 5  # slots per reservation (benchmarks/cost_model.py PACER_LEASE prices it)


def _number(value: float) -> dict[str, str]:
    return {"N": f"{Decimal(value).quantize(Decimal('0.001')):f}"}


class SharedRequestPacer:
    """``wait()`` before every AssemblyAI request; ``penalize(seconds)`` after a 429.

    ``share`` is requests per 5 minutes for the whole deployment. Raises TransientFailure when
    DynamoDB is unavailable, or when the next free slot is more than MAX_WAIT_SECONDS away (the
    caller's message is retried later through SQS)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        share: int,
        *,
        lease: int = LEASE,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self.interval = WINDOW_SECONDS / share
        self._lease = lease
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()  # the records of a batch are handled in threads
        self.reservations = 0

    def _update(self, expression: str, condition: str, values: dict[str, dict[str, str]]) -> float:
        response = self._client.update_item(
            TableName=self._table,
            Key=PACER_KEY,
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            ReturnValues="UPDATED_NEW",
        )
        return float(response["Attributes"]["next_at"]["N"])

    def _reserve(self, now: float) -> float:
        """Reserve ``lease`` slots; the time of the first one."""
        cost = self._lease * self.interval
        for _ in range(5):
            try:
                try:  # the schedule is busy: take the slots after the last reserved one
                    end = self._update(
                        "SET next_at = next_at + :cost",
                        "next_at >= :now",
                        {":cost": _number(cost), ":now": _number(now)},
                    )
                    return end - cost
                except ClientError as exc:
                    if not _condition_failed(exc):
                        raise
                try:  # idle (or first use): the schedule restarts now, nothing is banked
                    self._update(
                        "SET next_at = :end",
                        "attribute_not_exists(next_at) OR next_at < :now",
                        {":end": _number(now + cost), ":now": _number(now)},
                    )
                    return now
                except ClientError as exc:
                    if not _condition_failed(exc):
                        raise
            except (ClientError, BotoCoreError) as exc:
                raise TransientFailure(f"request budget unavailable: {exc}") from exc
        raise TransientFailure("request budget contended; retrying later")

    def wait(self) -> None:
        with self._lock:
            self._wait()

    def _wait(self) -> None:
        now = self._clock()
        stale = now - max(LATE_SECONDS, self._lease * self.interval)
        while self._slots and self._slots[0] < stale:
            self._slots.popleft()  # a slot is used at most LATE_SECONDS late, never banked
        if not self._slots:
            first = self._reserve(now)
            self.reservations += 1
            self._slots.extend(first + n * self.interval for n in range(self._lease))
        slot = self._slots.popleft()
        if slot - now > MAX_WAIT_SECONDS:
            self._slots.clear()
            raise TransientFailure(
                "AssemblyAI request budget booked ahead; retrying later", int(slot - now)
            )
        if slot > now:
            self._sleep(slot - now)

    def penalize(self, retry_after_seconds: float) -> None:
        """AssemblyAI answered 429: no worker reserves a slot before ``Retry-After`` is over."""
        with self._lock:
            self._slots.clear()
        until = self._clock() + retry_after_seconds
        try:
            self._update(
                "SET next_at = :until",
                "attribute_not_exists(next_at) OR next_at < :until",
                {":until": _number(until)},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise TransientFailure(f"request budget unavailable: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientFailure(f"request budget unavailable: {exc}") from exc


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
