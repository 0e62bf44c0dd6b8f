"""The app-side helpers, end to end: the SDK's own event objects and TranscriptionConfig, through
the helper, over real HTTP, into the streaming report function and the ledger."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import assemblyai as aai
import pytest
from assemblyai.streaming.v3 import (
    BeginEvent,
    StreamingClient,
    StreamingClientOptions,
    TerminationEvent,
)

from conftest import REPORT_SECRET, Stack
from usage_meter.logic.standard_webhooks import verify_any
from usage_meter.models.identifiers import is_customer_id
from usage_meter_client import (
    InvalidIdentifier,
    ReportRejected,
    UsageReporter,
    configure_webhook,
    webhook_target,
)

SESSION = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


def in_three_hours() -> int:
    """A Begin's ``expires_at`` (unix seconds): AssemblyAI's 3-hour session limit from now, so
    after the ``began_at`` the reporter stamps (a fixed timestamp goes stale)."""
    return int((datetime.now(UTC) + timedelta(hours=3)).timestamp())


@pytest.fixture
def api(stack: Stack) -> Iterator[tuple[str, list[int]]]:
    """A real HTTP endpoint in front of the StreamingReportFunction (API Gateway v2 events)."""
    lock = threading.Lock()
    statuses: list[int] = []

    class Bridge(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            event = {
                "version": "2.0",
                "rawPath": urlsplit(self.path).path,
                "rawQueryString": "",
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "requestContext": {"http": {"method": "POST", "path": self.path}},
                "body": body.decode(),
                "isBase64Encoded": False,
            }
            with lock:
                answer = stack.invoke("StreamingReportFunction", event)
                statuses.append(answer["statusCode"])
            data = answer["body"].encode()
            self.send_response(answer["statusCode"])
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Bridge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", statuses
    server.shutdown()


def test_streaming_client_events_are_reported_and_billed(
    stack: Stack, api: tuple[str, list[int]]
) -> None:
    reporter = UsageReporter(api[0], REPORT_SECRET)
    client = StreamingClient(StreamingClientOptions(api_key="not-used-offline"))
    reporter.attach(
        client, customer_id="acme", model="universal-streaming-english", dimensions={"plan": "pro"}
    )

    # the SDK's own dispatch of its own event objects, as when AssemblyAI sends them
    client._handle_message(
        BeginEvent(id=SESSION, expires_at=datetime.now(UTC) + timedelta(hours=3))
    )
    client._handle_message(
        TerminationEvent(audio_duration_seconds=118, session_duration_seconds=121)
    )

    assert reporter.failures == []
    assert api[1] == [200, 200]
    [row] = stack.items("ledger")
    assert (row["source_id"], row["product"], row["customer_id"]) == (SESSION, "streaming", "acme")
    assert (row["billable_seconds"], row["audio_duration_seconds"]) == (121, 118)
    assert row["dimensions"] == {"plan": "pro"}


def test_streaming_add_ons_and_the_session_cap_are_reported(
    stack: Stack, api: tuple[str, list[int]]
) -> None:
    """The helper reads the session's billable add-ons from the SDK's ``StreamingParameters``
    (keyterms prompting: docs "$0.04/hour"; ``speaker_labels``: streaming diarization) and sends
    the Begin's ``expires_at`` and the token's cap (spec ``GET /v3/token``
    ``max_session_duration_seconds``) with the begin: the ledger row carries the add-ons."""
    from assemblyai.streaming.v3 import StreamingParameters

    reporter = UsageReporter(api[0], REPORT_SECRET)
    client = StreamingClient(StreamingClientOptions(api_key="not-used-offline"))
    params = StreamingParameters(
        sample_rate=16000, keyterms_prompt=["AcmeCloud"], speaker_labels=True
    )
    reporter.attach(
        client,
        customer_id="acme",
        model="universal-streaming-english",
        params=params,
        max_session_duration_seconds=600,
    )
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=600)

    client._handle_message(BeginEvent(id=SESSION, expires_at=expires))
    [session] = stack.items("session")
    assert (session["add_ons"], session["max_session_duration_seconds"]) == (
        ["keyterms_prompt", "speaker_labels"],
        600,
    )
    assert datetime.fromisoformat(session["expires_at"]) == expires

    client._handle_message(
        TerminationEvent(audio_duration_seconds=300, session_duration_seconds=310)
    )
    assert reporter.failures == []
    [row] = stack.items("ledger")
    assert row["features"] == ["keyterms_prompt", "speaker_labels"]


def test_raw_messages_for_apps_without_the_sdk(stack: Stack, api: tuple[str, list[int]]) -> None:
    reporter = UsageReporter(api[0], REPORT_SECRET)
    begin = json.dumps({"type": "Begin", "id": SESSION, "expires_at": in_three_hours()})
    session = reporter.report_message(begin, customer_id="globex", model="u3-rt-pro")
    reporter.report_message(
        {"type": "Termination", "audio_duration_seconds": 30, "session_duration_seconds": 33},
        customer_id="globex",
        model="u3-rt-pro",
        session_id=session,
    )
    assert (
        reporter.report_message({"type": "Turn"}, customer_id="globex", model="u3-rt-pro") is None
    )
    [row] = stack.items("ledger")
    assert (row["customer_id"], row["model"], row["billable_seconds"]) == (
        "globex",
        "u3-rt-pro",
        33,
    )


def test_rejections_are_not_retried_and_are_kept(stack: Stack, api: tuple[str, list[int]]) -> None:
    wrong = "whsec_d3Jvbmctc2VjcmV0LWtleS0wMA=="  # base64("wrong-secret-key-00"), not the secret
    reporter = UsageReporter(api[0], wrong, sleep=lambda _s: None)
    with pytest.raises(ReportRejected) as raised:
        reporter.report_begin(session_id=SESSION, customer_id="acme", model="u3-rt-pro")
    assert (raised.value.status, raised.value.code) == (401, "unauthorized")
    assert api[1] == [401]  # one attempt: a 4xx will not get better

    client = StreamingClient(StreamingClientOptions(api_key="x"))
    reporter.attach(client, customer_id="acme", model="u3-rt-pro")
    client._handle_message(
        BeginEvent(id=SESSION, expires_at=datetime.now(UTC) + timedelta(hours=3))
    )
    assert len(reporter.failures) == 1  # the SDK swallows handler errors; the reporter keeps them


def test_termination_without_durations_is_not_billed_as_zero(
    stack: Stack, api: tuple[str, list[int]]
) -> None:
    # Given a session whose Termination carries no durations (the SDK types them Optional)
    reporter = UsageReporter(api[0], REPORT_SECRET)
    client = StreamingClient(StreamingClientOptions(api_key="not-used-offline"))
    reporter.attach(client, customer_id="acme", model="u3-rt-pro")

    # When the SDK dispatches Begin and that Termination
    client._handle_message(
        BeginEvent(id=SESSION, expires_at=datetime.now(UTC) + timedelta(hours=3))
    )
    client._handle_message(TerminationEvent())

    # Then only the begin is reported: no 0-second row closes the session, which stays open
    # for the orphan sweep to bill at AssemblyAI's limit; the app can see why
    assert api[1] == [200]
    assert stack.items("ledger") == []
    assert [str(f) for f in reporter.failures] == [
        "Termination without session_duration_seconds: not reported, so the session stays "
        "open and the orphan sweep bills it at AssemblyAI's limit"
    ]
    with pytest.raises(ValueError, match="without session_duration_seconds"):
        reporter.report_message(
            {"type": "Termination"}, customer_id="acme", model="u3-rt-pro", session_id=SESSION
        )
    assert api[1] == [200]


def test_transient_failures_are_retried() -> None:
    """Every attempt is signed (Standard Webhooks) and verifies; one ``webhook-id`` per report."""
    calls: list[int] = []
    message_ids: list[str] = []

    class Flaky(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            calls.append(1)
            message_ids.append(verify_any([REPORT_SECRET], dict(self.headers.items()), body))
            status, body = (503, b"{}") if len(calls) < 3 else (200, b'{"status":"recorded"}')
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        slept: list[float] = []
        reporter = UsageReporter(
            f"http://127.0.0.1:{server.server_address[1]}", REPORT_SECRET, sleep=slept.append
        )
        assert reporter.report_begin(session_id=SESSION, customer_id="a", model="m") == {
            "status": "recorded"
        }
        assert (len(calls), slept) == (3, [0.5, 1.0])
        assert len(message_ids) == 3 and len(set(message_ids)) == 1
    finally:
        server.shutdown()


def test_webhook_target_plugs_into_the_sdk_config() -> None:
    target = webhook_target(
        "https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/assemblyai",
        "acme-corp",
        auth_header_value="s3cr3t-from-secrets-manager",
        project="eu",
        dimensions={"plan": "pro team"},
    )
    config = configure_webhook(aai.TranscriptionConfig(speaker_labels=True), target)

    assert config.webhook_url == target.url
    assert config.webhook_auth_header_name == "X-Usage-Meter-Webhook-Secret"
    assert config.webhook_auth_header_value == "s3cr3t-from-secrets-manager"
    assert dict(parse_qsl(urlsplit(config.webhook_url).query)) == {
        "customer_id": "acme-corp",
        "project": "eu",
        "plan": "pro team",
    }
    assert "s3cr3t" not in repr(target)


@pytest.mark.parametrize("customer", ["", "a/b", "=cmd", "a#b", "x" * 129])
def test_webhook_target_refuses_ids_the_service_would_reject(customer: str) -> None:
    assert not is_customer_id(customer)  # the service's own rule refuses it too
    with pytest.raises(InvalidIdentifier):
        webhook_target("https://x/webhooks/assemblyai", customer, auth_header_value="v")
