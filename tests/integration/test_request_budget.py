"""The meter's share of AssemblyAI's account-wide 20,000 requests / 5 minutes ("Account
management and limits": "a maximum of 20,000 requests per five minutes") is one schedule in the
usage table, shared by every processor invocation and reconciliation run."""

from __future__ import annotations

import boto3
import httpx
import pytest

from conftest import REGION, Stack
from usage_meter.adapters.assemblyai_api import AssemblyAITranscripts
from usage_meter.adapters.request_budget import SharedRequestPacer
from usage_meter.logic.errors import TransientFailure
from usage_meter.settings import ProjectConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _pacers(stack: Stack, clock: Clock, share: int, workers: int) -> list[SharedRequestPacer]:
    client = boto3.client("dynamodb", region_name=REGION)
    return [
        SharedRequestPacer(client, stack.table, share, clock=clock, sleep=clock.sleep)
        for _ in range(workers)
    ]


def test_workers_together_never_exceed_the_share_in_any_five_minutes(stack: Stack) -> None:
    # Given 6 concurrent workers sharing a budget of 300 requests per 5 minutes (one a second),
    # each ready to send again 50 ms after its last request (a discrete-event simulation: the
    # worker that is ready first goes next)
    clock = Clock()
    pacers = _pacers(stack, clock, share=300, workers=6)
    ready = [clock.now] * 6
    sent: list[float] = []

    # When they send as fast as they are let, 900 requests in all
    for _ in range(900):
        worker = min(range(6), key=lambda w: ready[w])
        clock.now = ready[worker]
        pacers[worker].wait()
        sent.append(clock.now)
        ready[worker] = clock.now + 0.05

    # Then any 5-minute window holds at most the share (+ one lease per worker), the rate is the
    # share, and it takes one DynamoDB write per lease of 5 requests, not one per request
    sent.sort()
    start = 0
    for end, moment in enumerate(sent):
        while sent[start] <= moment - 300:
            start += 1
        assert end - start + 1 <= 300 + 5 * 6
    assert sent[-1] - sent[0] == pytest.approx(899.0, rel=0.02)
    assert sum(p.reservations for p in pacers) <= 900 / 5 + 6


def test_idle_time_is_not_banked(stack: Stack) -> None:
    clock = Clock()
    [pacer] = _pacers(stack, clock, share=300, workers=1)
    pacer.wait()
    clock.now += 3600  # an hour without requests
    burst = []
    for _ in range(20):
        pacer.wait()
        burst.append(clock.now)
    assert burst[-1] - burst[0] == pytest.approx(19.0)  # still one a second, no catch-up burst


def test_a_429_seen_by_one_worker_slows_every_worker(stack: Stack) -> None:
    # Given two workers, and AssemblyAI answering the first one's request with 429, Retry-After 30
    clock = Clock()
    first, second = _pacers(stack, clock, share=3000, workers=2)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "30"}, json={"error": "Too Many"})

    api = AssemblyAITranscripts(
        {"default": ProjectConfig("s", "https://api.assemblyai.com")},
        lambda project, refresh: "key",
        5.0,
        first,
    )
    api._clients["default"] = ("key", _client_with(httpx.MockTransport(answer)))
    before = clock.now
    with pytest.raises(TransientFailure, match="429"):
        api.fetch("default", "t-1")

    # When the other worker asks for its next slot
    second.wait()

    # Then it waits until the Retry-After is over
    assert clock.now >= before + 30


def test_a_slot_booked_too_far_ahead_gives_the_message_back(stack: Stack) -> None:
    clock = Clock()
    first, second = _pacers(stack, clock, share=100, workers=2)
    first.penalize(600)  # ten minutes of 429
    with pytest.raises(TransientFailure, match="booked ahead") as raised:
        second.wait()
    assert raised.value.retry_after_seconds is not None and raised.value.retry_after_seconds >= 60


def _client_with(transport: httpx.MockTransport) -> object:
    import assemblyai as aai

    client = aai.Client(settings=aai.Settings(api_key="key", base_url="https://api.assemblyai.com"))
    client._http_client = httpx.Client(  # type: ignore[attr-defined]
        base_url="https://api.assemblyai.com", transport=transport
    )
    return client
