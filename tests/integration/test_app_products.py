"""The app-side helpers for LLM Gateway, Sync API and Voice Agent usage, end to end: the SDK's own
response and event objects, through ``UsageReporter``, over real HTTP, into the ledger.

Shapes: assemblyai SDK 1.8.2 ``LLMGatewayChatCompletion`` (``request_id``, ``usage.prompt_tokens``
/ ``completion_tokens``; unknown server fields such as ``id``/``model`` kept as extras),
``LLMGatewayResponseEvent`` (``turn_order``, ``data``), ``SyncTranscriptResponse``
(``session_id``, ``audio_duration_ms``). The OpenAI SDK is not a dependency here: its
``ChatCompletion`` exposes the same attribute names (``id``, ``model``, ``usage.prompt_tokens``),
the path the SDK object above exercises.
"""

from __future__ import annotations

from typing import Any

import pytest
import test_app_client
from assemblyai.llm_gateway.v1 import LLMGatewayChatCompletion
from assemblyai.streaming.v3 import (
    BeginEvent,
    LLMGatewayResponseEvent,
    StreamingClient,
    StreamingClientOptions,
)
from assemblyai.types import SyncTranscriptResponse

from conftest import REPORT_SECRET, Stack
from usage_meter_client import ReportRejected, UsageReporter

api = test_app_client.api  # the HTTP bridge fixture in front of the report function
SESSION = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


def completion(**overrides: Any) -> dict[str, Any]:
    return {
        "request_id": "5c1d2e3f-aaaa-4bbb-8ccc-0d1e2f3a4b5c",
        "model": "claude-sonnet-4-6",
        "created": 1795000000,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 85, "total_tokens": 1285},
        **overrides,
    }


def test_an_sdk_chat_completion_is_billed_once(stack: Stack, api: tuple[str, list[int]]) -> None:
    reporter = UsageReporter(api[0], REPORT_SECRET)
    response = LLMGatewayChatCompletion.model_validate(completion())
    assert reporter.report_llm_gateway(response, customer_id="acme")["status"] == "recorded"
    assert reporter.report_llm_gateway(response, customer_id="acme")["status"] == "duplicate"
    [row] = stack.items("ledger")
    assert (row["source_id"], row["model"], row["region"]) == (
        "5c1d2e3f-aaaa-4bbb-8ccc-0d1e2f3a4b5c",
        "claude-sonnet-4-6",
        "us",
    )
    assert (row["input_tokens"], row["output_tokens"], row["month"]) == (1200, 85, "2026-11")


def test_a_dict_from_the_eu_endpoint_is_billed_in_region(
    stack: Stack, api: tuple[str, list[int]]
) -> None:
    reporter = UsageReporter(api[0], REPORT_SECRET)
    body = completion(id="chatcmpl-9x", request_id=None)
    reporter.report_llm_gateway(
        body, customer_id="acme", base_url="https://llm-gateway.eu.assemblyai.com/v1"
    )
    [row] = stack.items("ledger")
    assert (row["source_id"], row["region"]) == ("chatcmpl-9x", "eu")


def test_a_response_without_usage_is_refused_by_the_helper(api: tuple[str, list[int]]) -> None:
    reporter = UsageReporter(api[0], REPORT_SECRET)
    with pytest.raises(ValueError, match="usage"):
        reporter.report_llm_gateway(completion(usage=None), customer_id="acme")


def test_llm_gateway_responses_of_a_streaming_session_are_reported(
    stack: Stack, api: tuple[str, list[int]]
) -> None:
    """A session run with ``StreamingParameters(llm_gateway=...)`` receives an
    ``LLMGatewayResponse`` per turn; each is billed once, tied to its session."""
    from assemblyai.streaming.v3 import StreamingParameters
    from assemblyai.streaming.v3.models import LLMGatewayConfig, LLMGatewayMessage

    reporter = UsageReporter(api[0], REPORT_SECRET)
    client = StreamingClient(StreamingClientOptions(api_key="not-used-offline"))
    params = StreamingParameters(
        sample_rate=16000,
        llm_gateway=LLMGatewayConfig(
            model="claude-haiku-4-5",
            messages=[LLMGatewayMessage(role="user", content="Summarise")],
            max_tokens=200,
        ),
    )
    reporter.attach(client, customer_id="acme", model="u3-rt-pro", params=params)
    client._handle_message(BeginEvent(id=SESSION, expires_at=test_app_client.in_three_hours()))
    data = {"usage": {"prompt_tokens": 310, "completion_tokens": 42}}
    event = LLMGatewayResponseEvent(turn_order=3, transcript="...", data=data)
    client._handle_message(event)
    client._handle_message(event)  # the same turn again: one usage

    assert reporter.failures == []
    [row] = stack.items("ledger")
    assert (row["product"], row["source_id"], row["session_id"]) == (
        "llm_gateway",
        f"{SESSION}-turn-3",
        SESSION,
    )
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == (
        "claude-haiku-4-5",
        310,
        42,
    )


def test_a_sync_result_is_billed_on_its_audio_duration(
    stack: Stack, api: tuple[str, list[int]]
) -> None:
    reporter = UsageReporter(api[0], REPORT_SECRET)
    result = SyncTranscriptResponse(
        text="hello", confidence=0.97, audio_duration_ms=15250, session_id=SESSION
    )
    reporter.report_sync(result, customer_id="acme", model="universal-3-5-pro")
    reporter.report_sync(result, customer_id="acme", model="universal-3-5-pro")
    [row] = stack.items("ledger")
    assert (row["product"], row["billable_seconds"]) == ("sync", 15.25)


def test_a_voice_agent_session_is_billed_and_a_changed_one_is_a_conflict(
    stack: Stack, api: tuple[str, list[int]]
) -> None:
    reporter = UsageReporter(api[0], REPORT_SECRET)
    fields = {"session_id": "sess_9a648a2ab757", "customer_id": "acme", "duration_seconds": 312}
    assert reporter.report_voice_agent(**fields)["status"] == "recorded"
    with pytest.raises(ReportRejected) as rejected:
        reporter.report_voice_agent(**{**fields, "duration_seconds": 313})
    assert rejected.value.status == 409
    [row] = stack.items("ledger")
    assert (row["product"], row["billable_seconds"]) == ("voice_agent", 312)
