"""The local stack's moto answers as moto does, at a cost that does not grow with the queue.

moto's SQS rescans the whole queue several times per message (every received message asks
``get_queue_attributes`` for its retention period, which counts the queue three times), so a local
stack with a few thousand queued webhooks spent its time counting and slowed down as the
queue grew. SQS semantics these tests hold to: a message is "visible" when not received within its
visibility timeout, "delayed" until ``DelaySeconds`` pass, deleting a message twice with the same
receipt handle succeeds, an unknown receipt handle is ``ReceiptHandleIsInvalid`` (Amazon SQS API
Reference: ReceiveMessage, DeleteMessage, GetQueueAttributes ``ApproximateNumberOfMessages*``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import jsonpath_ng.ext
import pytest
from botocore.exceptions import ClientError
from moto.sqs.models import sqs_backends

from usage_meter_local.app_receiver import ReceiverState
from usage_meter_local.assemblyai_standin import StandInState
from usage_meter_local.moto_server import ACCOUNT_ID, AwsClients, MotoServer
from usage_meter_local.recent import RECENT_LIMIT, RecentList

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

REGION = "eu-west-1"
COUNTS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
]


@pytest.fixture(scope="module")
def sqs() -> Iterator[SQSClient]:
    with MotoServer() as aws:
        yield AwsClients(aws.url, REGION).sqs


def _queue(sqs: SQSClient, name: str, **attributes: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def _counts(sqs: SQSClient, url: str, names: list[str]) -> dict[str, int]:
    answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)  # type: ignore[arg-type]
    return {name: int(answer["Attributes"][name]) for name in COUNTS}


def test_counts_are_sqs_counts_visible_delayed_and_in_flight(sqs: SQSClient) -> None:
    url = _queue(sqs, "counts")
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    assert len(received["Messages"]) == 1

    expected = {
        "ApproximateNumberOfMessages": 1,  # "b": visible, not delayed
        "ApproximateNumberOfMessagesDelayed": 1,  # "later"
        "ApproximateNumberOfMessagesNotVisible": 1,  # "a", in flight
    }
    assert _counts(sqs, url, COUNTS) == expected
    assert _counts(sqs, url, ["All"]) == expected
    some = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[COUNTS[2], "QueueArn"])
    assert set(some["Attributes"]) == {COUNTS[2], "QueueArn"}
    assert some["Attributes"][COUNTS[2]] == "1"


def test_delete_finds_its_message_twice_is_fine_unknown_is_refused(sqs: SQSClient) -> None:
    url = _queue(sqs, "deletes")
    for body in ("keep", "drop"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    drop = next(m for m in messages if m["Body"] == "drop")

    sqs.delete_message(QueueUrl=url, ReceiptHandle=drop["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=drop["ReceiptHandle"])  # again: success
    with pytest.raises(ClientError) as refused:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-receipt-handle")
    assert "ReceiptHandleIsInvalid" in str(refused.value)

    queue = sqs_backends[ACCOUNT_ID][REGION].get_queue("deletes")
    assert [m.body for m in queue._messages] == ["keep"]


def test_a_message_past_its_retention_period_is_not_received(sqs: SQSClient) -> None:
    url = _queue(sqs, "retention", MessageRetentionPeriod="60")
    sqs.send_message(QueueUrl=url, MessageBody="old")
    queue = sqs_backends[ACCOUNT_ID][REGION].get_queue("retention")
    queue._messages[0].sent_timestamp = int((time.time() - 59) * 1000)
    assert len(sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]) == 1

    queue._messages[0].sent_timestamp = int((time.time() - 61) * 1000)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def _cpu_per_cycle(depth: int, name: str) -> float:
    """CPU seconds (this thread) of one send + receive-10 + delete-10 with ``depth`` queued."""
    backend: Any = sqs_backends[ACCOUNT_ID][REGION]
    backend.create_queue(name, VisibilityTimeout="30")
    for index in range(depth):
        backend.send_message(name, f"m{index}")
    cycles = 5
    started = time.thread_time()
    for _ in range(cycles):
        backend.send_message(name, "one more")
        messages = backend.receive_message(name, 10, 0, 30)
        for message in messages:
            backend.delete_message(name, message.receipt_handle)
    return (time.thread_time() - started) / cycles


def test_a_deep_queue_costs_about_what_a_short_one_does(sqs: SQSClient) -> None:
    """Unpatched moto: each cycle at depth 4,000 costs ~40 x the one at 100 (nine counting passes
    per received message, two passes per deleted one); here the one remaining pass (which
    messages are visible) is cheap next to the fixed work of a request."""
    _cpu_per_cycle(50, "warm-up")
    short = _cpu_per_cycle(100, "short")
    deep = _cpu_per_cycle(4000, "deep")
    assert deep < 8 * short + 0.005, f"{deep * 1000:.2f} ms vs {short * 1000:.2f} ms"


def test_eventbridge_input_paths_are_parsed_once() -> None:
    parse: Any = jsonpath_ng.ext.parse  # type: ignore[attr-defined]
    assert parse("$.detail.transcript_id") is parse("$.detail.transcript_id")
    assert [m.value for m in parse("$.detail.n").find({"detail": {"n": 3}})] == [3]


def test_the_stand_ins_logs_keep_only_their_newest_entries() -> None:
    """``make local`` serves for as long as it is left running: its observation logs (the
    AssemblyAI stand-in's requests, the application's deliveries) must not grow per webhook."""
    state = StandInState()
    for index in range(RECENT_LIMIT + 5):
        state.requests.append(("GET", f"/v2/transcript/{index}"))
    assert len(state.requests) == RECENT_LIMIT
    assert state.requests[0] == ("GET", "/v2/transcript/5")
    assert state.requests[-1] == ("GET", f"/v2/transcript/{RECENT_LIMIT + 4}")
    assert isinstance(ReceiverState().deliveries, RecentList)
    state.requests.clear()
    assert state.requests == []
