"""The demo's streaming act: an application backend reports its AssemblyAI streaming sessions over
real HTTP with the app-side helper (``usage_meter_client.UsageReporter``), signed with the
local report-signing secret; then the scheduled orphan sweep bills a session that never ended.

One session goes through the SDK's own ``StreamingClient`` event dispatch with the SDK's
``BeginEvent`` / ``TerminationEvent`` objects (what the app sees when AssemblyAI sends them), with
keyterms prompting read from its ``StreamingParameters`` (a priced streaming add-on), one through
the raw ``Begin`` / ``Termination`` JSON, and the rest through the helper's plain calls. Two
sessions are never terminated: one is billed at AssemblyAI's 3-hour limit, one at the 600 s cap
its temporary token set; both marked estimated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

from usage_meter.models.streaming import SESSION_LIMIT_SECONDS
from usage_meter_client import ReportRejected, UsageReporter
from usage_meter_local.demo_reports import answers_table, signed_reporter
from usage_meter_local.scenario import LedgerFacts
from usage_meter_local.stack import LocalStack

ORPHAN_FUNCTION = "OrphanSessionsFunction"
FORGED_SECRET = "whsec_bm90LXRoZS1zaWduaW5nLXNlY3JldA=="  # noqa: S105 - base64("not-the-signing-secret")

SDK_SESSION = "5f1d3c2b-7a6e-4d21-9b0c-1e2f3a4b5c01"
RAW_SESSION = "5f1d3c2b-7a6e-4d21-9b0c-1e2f3a4b5c02"
ORPHAN_SESSION = "5f1d3c2b-7a6e-4d21-9b0c-1e2f3a4b5c03"
LONG_SESSION = "5f1d3c2b-7a6e-4d21-9b0c-1e2f3a4b5c04"
CAPPED_SESSION = "5f1d3c2b-7a6e-4d21-9b0c-1e2f3a4b5c05"
CAPPED_SECONDS = 600
SDK_MODEL = "universal-streaming-english"
RAW_MODEL = "u3-rt-pro"

EXPECTED_LEDGER = (
    LedgerFacts(
        SDK_SESSION, "acme-corp", "default", "billable", Decimal(604), SDK_MODEL, (("plan", "pro"),)
    ),
    LedgerFacts(RAW_SESSION, "globex", "default", "billable", Decimal(33), RAW_MODEL),
    LedgerFacts(
        ORPHAN_SESSION, "initech-gmbh", "default", "billable", SESSION_LIMIT_SECONDS, RAW_MODEL
    ),
    LedgerFacts(CAPPED_SESSION, "hooli", "default", "billable", Decimal(CAPPED_SECONDS), SDK_MODEL),
)
EXPECTED_QUARANTINE = ((RAW_SESSION, "session_conflict"),)


@dataclass(frozen=True)
class Step:
    label: str
    expect_status: int
    expect: str
    send: Callable[[UsageReporter], tuple[int, str]]


def _answer(call: Callable[[], dict[str, Any]]) -> tuple[int, str]:
    try:
        return 200, str(call().get("status"))
    except ReportRejected as exc:
        return exc.status, exc.code


def _through_the_sdk(reporter: UsageReporter) -> tuple[int, str]:
    """The SDK's StreamingClient dispatching its own Begin and Termination events."""
    from assemblyai.streaming.v3 import (
        BeginEvent,
        StreamingClient,
        StreamingClientOptions,
        StreamingParameters,
        TerminationEvent,
    )

    client = StreamingClient(StreamingClientOptions(api_key="local-demo-not-used"))
    params = StreamingParameters(sample_rate=16000, keyterms_prompt=["AcmeCloud", "Zephyr plan"])
    reporter.attach(
        client, customer_id="acme-corp", model=SDK_MODEL, dimensions={"plan": "pro"}, params=params
    )
    begin = BeginEvent(id=SDK_SESSION, expires_at=datetime.now(UTC) + timedelta(hours=3))
    client._handle_message(begin)  # what the SDK does with AssemblyAI's Begin message
    client._handle_message(
        TerminationEvent(audio_duration_seconds=598, session_duration_seconds=604)
    )
    if reporter.failures:
        return 0, f"failed: {reporter.failures[-1]}"
    return 200, "recorded"


def _raw_messages(reporter: UsageReporter) -> tuple[int, str]:
    """An app that reads AssemblyAI's JSON messages itself."""
    expires_at = int((datetime.now(UTC) + timedelta(hours=3)).timestamp())
    begin = {"type": "Begin", "id": RAW_SESSION, "expires_at": expires_at}
    session = reporter.report_message(begin, customer_id="globex", model=RAW_MODEL)
    termination = {
        "type": "Termination",
        "audio_duration_seconds": 31,
        "session_duration_seconds": 33,
    }
    reporter.report_message(termination, customer_id="globex", model=RAW_MODEL, session_id=session)
    return 200, "recorded"


def _termination(session: str, customer: str, seconds: int, audio: int) -> Callable[..., Any]:
    def send(reporter: UsageReporter) -> tuple[int, str]:
        return _answer(
            lambda: reporter.report_termination(
                session_id=session,
                customer_id=customer,
                model=RAW_MODEL,
                session_duration_seconds=seconds,
                audio_duration_seconds=audio,
            )
        )

    return send


def _orphan_begin(reporter: UsageReporter) -> tuple[int, str]:
    began = datetime.now(UTC) - timedelta(hours=3, minutes=5)
    return _answer(
        lambda: reporter.report_begin(
            session_id=ORPHAN_SESSION, customer_id="initech-gmbh", model=RAW_MODEL, began_at=began
        )
    )


def _capped_begin(reporter: UsageReporter) -> tuple[int, str]:
    """A session opened with a temporary token capped at 600 s (``max_session_duration_seconds``):
    its Begin's ``expires_at`` is 600 s after it began."""
    began = datetime.now(UTC) - timedelta(hours=3, minutes=20)
    return _answer(
        lambda: reporter.report_begin(
            session_id=CAPPED_SESSION,
            customer_id="hooli",
            model=SDK_MODEL,
            began_at=began,
            expires_at=int((began + timedelta(seconds=CAPPED_SECONDS)).timestamp()),
        )
    )


STEPS = (
    Step(
        "acme-corp: SDK StreamingClient Begin + Termination events",
        200,
        "recorded",
        _through_the_sdk,
    ),
    Step("globex: raw Begin/Termination JSON", 200, "recorded", _raw_messages),
    Step(
        "globex: same termination again (duplicate)",
        200,
        "duplicate",
        _termination(RAW_SESSION, "globex", 33, 31),
    ),
    Step(
        "globex: termination with other figures (conflict)",
        409,
        "conflict",
        _termination(RAW_SESSION, "globex", 95, 90),
    ),
    Step("initech-gmbh: began 3 h 5 min ago, never terminated", 200, "recorded", _orphan_begin),
    Step(
        "hooli: token capped at 600 s, began 3 h 20 min ago, never terminated",
        200,
        "recorded",
        _capped_begin,
    ),
    Step(
        "umbrella: session longer than AssemblyAI's 3 h limit",
        400,
        "invalid_report",
        _termination(LONG_SESSION, "umbrella", 4 * 3600, 60),
    ),
)
BAD_SIGNATURE = Step(
    "acme-corp: report signed with the wrong secret",
    401,
    "unauthorized",
    _termination(SDK_SESSION, "acme-corp", 604, 598),
)


def run_streaming(stack: LocalStack, out: TextIO) -> list[str]:
    """Send the reports, run the orphan sweep, print both; return the unmet expectations."""
    reporter = signed_reporter(stack)
    forger = UsageReporter(reporter.base_url, FORGED_SECRET, attempts=1)
    steps = [*STEPS, BAD_SIGNATURE]
    answers = [s.send(forger if s is BAD_SIGNATURE else reporter) for s in steps]
    out.write(
        answers_table(
            f"Streaming reports: POST {reporter.base_url}/streaming/sessions/{{begin,termination}}",
            [s.label for s in steps],
            answers,
        )
    )
    sweep = stack.invoke(ORPHAN_FUNCTION, {})
    out.write(
        f"Orphan sweep ({ORPHAN_FUNCTION}, every 30 minutes on AWS): "
        f"{json.dumps(sweep.as_json())}\n\n"
    )

    failures = [
        f"{s.label}: expected HTTP {s.expect_status} {s.expect}, got {a[0]} {a[1]}"
        for s, a in zip(steps, answers, strict=True)
        if a != (s.expect_status, s.expect)
    ]
    expected_sweep = {"found": 2, "billed": 2}
    got = {k: (sweep.result or {}).get(k) for k in expected_sweep}
    if not sweep.ok or got != expected_sweep:
        failures.append(f"orphan sweep: expected {expected_sweep}, got {sweep.as_json()}")
    return failures
