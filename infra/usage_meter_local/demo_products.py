"""The demo's products act: the application's backend reports its LLM Gateway responses, Voice Agent
sessions and Sync API requests over real HTTP with the app-side helper (``UsageReporter``),
signed like streaming reports. The LLM Gateway responses are the assemblyai SDK's own
``LLMGatewayChatCompletion`` object (US endpoint) and a plain dict from the EU endpoint; the Sync
results are the SDK's ``SyncTranscriptResponse``. A re-sent report is a duplicate; a Voice Agent
session re-reported with another duration is a conflict (quarantined).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

from usage_meter_client import ReportRejected, UsageReporter
from usage_meter_local.demo_reports import answers_table, signed_reporter
from usage_meter_local.scenario import LedgerFacts
from usage_meter_local.stack import LocalStack

CUSTOMER = "acme-corp"
LLM_US_ID = "6b2c0a1e-1111-4c2d-9e3f-0a1b2c3d4e01"
LLM_EU_ID = "chatcmpl-demo-eu-0001"
LLM_MODEL = "claude-sonnet-4-6"
VOICE_SESSION = "sess_demo0a1b2c3d4e5f"
SYNC_SESSIONS = ("7c3d1b2a-2222-4d3e-8f40-1a2b3c4d5e01", "7c3d1b2a-2222-4d3e-8f40-1a2b3c4d5e02")

EXPECTED_LEDGER = (
    LedgerFacts(LLM_US_ID, CUSTOMER, "default", "billable", Decimal(0), LLM_MODEL),
    LedgerFacts(LLM_EU_ID, CUSTOMER, "default", "billable", Decimal(0), LLM_MODEL),
    LedgerFacts(VOICE_SESSION, CUSTOMER, "default", "billable", Decimal(312), "voice-agent"),
    LedgerFacts(
        SYNC_SESSIONS[0], CUSTOMER, "default", "billable", Decimal(90), "universal-3-5-pro"
    ),
    LedgerFacts(
        SYNC_SESSIONS[1], CUSTOMER, "default", "billable", Decimal("15.25"), "universal-3-5-pro"
    ),
)
EXPECTED_QUARANTINE = ((VOICE_SESSION, "report_conflict"),)


@dataclass(frozen=True)
class Step:
    label: str
    expect: tuple[int, str]
    send: Callable[[UsageReporter], dict[str, Any]]


def _sdk_completion() -> Any:
    from assemblyai.llm_gateway.v1 import LLMGatewayChatCompletion

    return LLMGatewayChatCompletion.model_validate(
        {
            "request_id": LLM_US_ID,
            "model": LLM_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "(summary)"}}],
            "usage": {"prompt_tokens": 48_200, "completion_tokens": 1_350, "total_tokens": 49_550},
        }
    )


EU_COMPLETION = {
    "id": LLM_EU_ID,
    "model": LLM_MODEL,
    "usage": {"prompt_tokens": 12_000, "completion_tokens": 800, "total_tokens": 12_800},
}


def _sync_result(session_id: str, milliseconds: int) -> Any:
    from assemblyai.types import SyncTranscriptResponse

    return SyncTranscriptResponse(
        text="(not kept)", confidence=0.95, audio_duration_ms=milliseconds, session_id=session_id
    )


def _voice(seconds: int) -> Callable[[UsageReporter], dict[str, Any]]:
    return lambda r: r.report_voice_agent(
        session_id=VOICE_SESSION, customer_id=CUSTOMER, duration_seconds=seconds
    )


STEPS = (
    Step(
        "LLM Gateway (US endpoint): SDK LLMGatewayChatCompletion, 48,200 in / 1,350 out",
        (200, "recorded"),
        lambda r: r.report_llm_gateway(_sdk_completion(), customer_id=CUSTOMER),
    ),
    Step(
        "LLM Gateway: the same response again",
        (200, "duplicate"),
        lambda r: r.report_llm_gateway(_sdk_completion(), customer_id=CUSTOMER),
    ),
    Step(
        "LLM Gateway (EU endpoint, in-region): dict, 12,000 in / 800 out",
        (200, "recorded"),
        lambda r: r.report_llm_gateway(
            EU_COMPLETION, customer_id=CUSTOMER, base_url="https://llm-gateway.eu.assemblyai.com"
        ),
    ),
    Step("Voice Agent session: 312 s connected", (200, "recorded"), _voice(312)),
    Step("Voice Agent: same session, 313 s (conflict)", (409, "conflict"), _voice(313)),
    Step(
        "Sync API: SyncTranscriptResponse, 90,000 ms",
        (200, "recorded"),
        lambda r: r.report_sync(
            _sync_result(SYNC_SESSIONS[0], 90_000), customer_id=CUSTOMER, model="universal-3-5-pro"
        ),
    ),
    Step(
        "Sync API: SyncTranscriptResponse, 15,250 ms",
        (200, "recorded"),
        lambda r: r.report_sync(
            _sync_result(SYNC_SESSIONS[1], 15_250), customer_id=CUSTOMER, model="universal-3-5-pro"
        ),
    ),
)


def _answer(step: Step, reporter: UsageReporter) -> tuple[int, str]:
    try:
        return 200, str(step.send(reporter).get("status"))
    except ReportRejected as exc:
        return exc.status, exc.code


def run_products(stack: LocalStack, out: TextIO) -> list[str]:
    """Send the reports and print the answers; return the unmet expectations."""
    reporter = signed_reporter(stack)
    answers = [_answer(step, reporter) for step in STEPS]
    out.write(
        answers_table(
            f"Product reports: POST {reporter.base_url}/usage/{{llm-gateway,voice-agent,sync}}",
            [s.label for s in STEPS],
            answers,
        )
    )
    return [
        f"{s.label}: expected {s.expect}, got {a}"
        for s, a in zip(STEPS, answers, strict=True)
        if a != s.expect
    ]
