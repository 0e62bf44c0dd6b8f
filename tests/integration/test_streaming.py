"""Streaming session reports (signed), exactly-once termination billing and orphaned sessions.

Reports are signed with Standard Webhooks (https://www.standardwebhooks.com/: ``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``);
the deprecated ``X-Usage-Meter-Signature`` scheme is still accepted (docs/decisions.md,
2026-11-29) and keeps its own tests here."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from conftest import PREVIOUS_REPORT_SECRET, REPORT_SECRET, Stack
from usage_meter.logic import request_signing, standard_webhooks

SESSION = "b6a3f5d2-1c4e-4a7b-9e8f-0a1b2c3d4e5f"
NOW = datetime.now(UTC).replace(microsecond=0)
# A well-formed Standard Webhooks secret that is not the report-signing secret.
WRONG_SECRET = "whsec_bm90LXRoZS1yZXBvcnQta2V5LTAw"  # base64("not-the-report-key-00")
LEGACY = "legacy"
STANDARD = "standard-webhooks"


def report_event(
    path: str,
    body: dict[str, Any] | str,
    *,
    secret: str = REPORT_SECRET,
    at: float | None = None,
    headers: dict[str, str] | None = None,
    scheme: str = STANDARD,
) -> dict[str, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    timestamp = int(time.time() if at is None else at)
    if scheme == LEGACY:
        signed = request_signing.signed_headers(secret, timestamp, raw.encode())
    else:
        signed = standard_webhooks.signed_headers([secret], "msg_test", timestamp, raw.encode())
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **signed, **(headers or {})},
        "requestContext": {"http": {"method": "POST", "path": path}},
        "body": raw,
        "isBase64Encoded": False,
    }


def begin_body(**overrides: Any) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "customer_id": "acme",
        "model": "universal-streaming-english",
        "began_at": (NOW - timedelta(minutes=10)).isoformat(),
        "dimensions": {"plan": "pro"},
        **overrides,
    }


def termination_body(**overrides: Any) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "customer_id": "acme",
        "session_duration_seconds": 600,
        "audio_duration_seconds": 598,
        "ended_at": NOW.isoformat(),
        **overrides,
    }


def begin(stack: Stack, **overrides: Any) -> dict[str, Any]:
    return stack.invoke(
        "StreamingReportFunction",
        report_event("/streaming/sessions/begin", begin_body(**overrides)),
    )


def terminate(stack: Stack, **overrides: Any) -> dict[str, Any]:
    return stack.invoke(
        "StreamingReportFunction",
        report_event("/streaming/sessions/termination", termination_body(**overrides)),
    )


def status_of(response: dict[str, Any]) -> tuple[int, str]:
    body = json.loads(response["body"])
    return response["statusCode"], body.get("status") or body.get("error")


def sweep(stack: Stack, policy: str = "bill") -> dict[str, Any]:
    stack.overrides["ORPHAN_POLICY"] = policy
    return stack.invoke("OrphanSessionsFunction", {})


class TestSigning:
    @pytest.mark.parametrize("scheme", [STANDARD, LEGACY])
    def test_current_and_previous_secrets_are_accepted(self, stack: Stack, scheme: str) -> None:
        assert status_of(begin(stack)) == (200, "recorded")
        event = report_event(
            "/streaming/sessions/begin", begin_body(), secret=PREVIOUS_REPORT_SECRET, scheme=scheme
        )
        assert status_of(stack.invoke("StreamingReportFunction", event)) == (200, "duplicate")

    @pytest.mark.parametrize(
        "mutate",
        [
            pytest.param(lambda e: e["headers"].pop("x-usage-meter-signature"), id="unsigned"),
            pytest.param(lambda e: e["headers"].pop("x-usage-meter-timestamp"), id="no-timestamp"),
            pytest.param(
                lambda e: e["headers"].update({"x-usage-meter-signature": "v1=" + "0" * 64}),
                id="bad-signature",
            ),
            pytest.param(
                lambda e: e["headers"].update({"x-usage-meter-signature": "sha1=abc"}),
                id="other-scheme",
            ),
            pytest.param(
                lambda e: e.update(body=e["body"].replace("acme", "evil")), id="tampered-body"
            ),
            pytest.param(
                lambda e: e["headers"].update({"x-usage-meter-timestamp": "12ab"}),
                id="bad-timestamp",
            ),
            pytest.param(
                lambda e: e["headers"].update({"x-usage-meter-timestamp": "\u00b2" * 10}),
                id="unicode-digit-timestamp",
            ),
        ],
    )
    def test_unsigned_or_badly_signed_is_401(self, stack: Stack, mutate: Any) -> None:
        """The deprecated scheme's headers, each broken in one way."""
        event = report_event("/streaming/sessions/begin", begin_body(), scheme=LEGACY)
        mutate(event)
        response = stack.invoke("StreamingReportFunction", event)
        assert status_of(response) == (401, "unauthorized")
        assert stack.items("session") == []

    @pytest.mark.parametrize(
        "mutate",
        [
            pytest.param(lambda e: e["headers"].pop("webhook-signature"), id="unsigned"),
            pytest.param(lambda e: e["headers"].pop("webhook-timestamp"), id="no-timestamp"),
            pytest.param(lambda e: e["headers"].pop("webhook-id"), id="no-id"),
            pytest.param(
                lambda e: e["headers"].update({"webhook-signature": "v1," + "A" * 44}),
                id="bad-signature",
            ),
            pytest.param(
                lambda e: e["headers"].update(
                    {"webhook-signature": e["headers"]["webhook-signature"].replace("v1,", "v2,")}
                ),
                id="other-version",
            ),
            pytest.param(lambda e: e["headers"].update({"webhook-id": "msg_other"}), id="other-id"),
            pytest.param(
                lambda e: e.update(body=e["body"].replace("acme", "evil")), id="tampered-body"
            ),
            pytest.param(
                lambda e: e["headers"].update({"webhook-timestamp": "12ab"}), id="bad-timestamp"
            ),
            pytest.param(
                lambda e: e["headers"].update({"webhook-timestamp": "\u00b2" * 10}),
                id="unicode-digit-timestamp",
            ),
            pytest.param(
                # A valid deprecated signature does not rescue a broken Standard Webhooks one.
                lambda e: e["headers"].update(
                    {
                        "webhook-signature": "v1," + "A" * 44,
                        **request_signing.signed_headers(
                            REPORT_SECRET, int(time.time()), e["body"].encode()
                        ),
                    }
                ),
                id="bad-standard-with-good-legacy",
            ),
        ],
    )
    def test_standard_webhooks_unsigned_or_badly_signed_is_401(
        self, stack: Stack, mutate: Any
    ) -> None:
        event = report_event("/streaming/sessions/begin", begin_body())
        mutate(event)
        response = stack.invoke("StreamingReportFunction", event)
        assert status_of(response) == (401, "unauthorized")
        assert stack.items("session") == []

    @pytest.mark.parametrize(
        ("scheme", "secret"),
        [(STANDARD, WRONG_SECRET), (LEGACY, "not-the-secret"), (LEGACY, WRONG_SECRET)],
    )
    def test_wrong_secret_is_401(self, stack: Stack, scheme: str, secret: str) -> None:
        event = report_event(
            "/streaming/sessions/begin", begin_body(), secret=secret, scheme=scheme
        )
        assert status_of(stack.invoke("StreamingReportFunction", event))[0] == 401

    def test_a_report_signed_by_the_official_standard_webhooks_library_is_accepted(
        self, stack: Stack
    ) -> None:
        """Signed by ``standardwebhooks`` (the reference Python implementation, 1.1.0), not by
        our code: any language's Standard Webhooks library can sign a report."""
        from standardwebhooks.webhooks import Webhook

        raw = json.dumps(begin_body())
        moment = datetime.now(UTC)
        signature = Webhook(REPORT_SECRET).sign("msg_2pZx", moment, raw)
        event = report_event("/streaming/sessions/begin", raw)
        event["headers"].update(
            {
                "webhook-id": "msg_2pZx",
                "webhook-timestamp": str(int(moment.timestamp())),
                "webhook-signature": signature,
            }
        )
        assert status_of(stack.invoke("StreamingReportFunction", event)) == (200, "recorded")
        event["body"] = raw.replace("acme", "evil")  # the same library's signature, other body
        assert status_of(stack.invoke("StreamingReportFunction", event))[0] == 401

    def test_only_the_deprecated_scheme_is_counted_as_legacy(
        self, stack: Stack, capsys: pytest.CaptureFixture[str]
    ) -> None:
        capsys.readouterr()
        assert status_of(begin(stack)) == (200, "recorded")
        assert "ReportsLegacySignature" not in capsys.readouterr().out
        event = report_event("/streaming/sessions/begin", begin_body(), scheme=LEGACY)
        assert status_of(stack.invoke("StreamingReportFunction", event)) == (200, "duplicate")
        assert "ReportsLegacySignature" in capsys.readouterr().out

    # The signature carries whole seconds: +-302 is outside the 300 s window whatever the
    # fraction of the current second; +-298 is inside it.
    @pytest.mark.parametrize("scheme", [STANDARD, LEGACY])
    @pytest.mark.parametrize("offset", [-302, 302, -86_400])
    def test_stale_or_future_timestamps_are_401(
        self, stack: Stack, offset: int, scheme: str
    ) -> None:
        event = report_event(
            "/streaming/sessions/begin", begin_body(), at=time.time() + offset, scheme=scheme
        )
        assert status_of(stack.invoke("StreamingReportFunction", event))[0] == 401

    @pytest.mark.parametrize("scheme", [STANDARD, LEGACY])
    @pytest.mark.parametrize("offset", [-298, 298])
    def test_timestamps_inside_the_skew_are_accepted(
        self, stack: Stack, offset: int, scheme: str
    ) -> None:
        event = report_event(
            "/streaming/sessions/begin", begin_body(), at=time.time() + offset, scheme=scheme
        )
        assert status_of(stack.invoke("StreamingReportFunction", event)) == (200, "recorded")

    @pytest.mark.parametrize("scheme", [STANDARD, LEGACY])
    def test_replay_of_an_old_signed_request_is_refused(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch, scheme: str
    ) -> None:
        captured = report_event(
            "/streaming/sessions/termination", termination_body(), scheme=scheme
        )
        assert status_of(stack.invoke("StreamingReportFunction", captured)) == (200, "recorded")
        later = time.time() + 3600
        monkeypatch.setattr("usage_meter.handlers.streaming_report.time.time", lambda: later)
        assert status_of(stack.invoke("StreamingReportFunction", captured))[0] == 401


BAD_BEGINS = [
    ("began-tomorrow", {"began_at": "2099-01-01T00:00:00Z"}),
    ("missing-session", {"session_id": None}),
    ("session-slash", {"session_id": "a/b"}),
    ("session-too-long", {"session_id": "a" * 129}),
    ("missing-customer", {"customer_id": None}),
    ("customer-formula", {"customer_id": "=cmd"}),
    ("customer-hash", {"customer_id": "a#b"}),
    ("customer-control", {"customer_id": "a\nb"}),
    ("bad-project", {"project": "EU"}),
    ("bad-model", {"model": "Universal Streaming"}),
    ("missing-model", {"model": None}),
    ("naive-time", {"began_at": "2026-11-03T10:00:00"}),
    ("not-a-time", {"began_at": "yesterday"}),
    ("bad-dimension-name", {"dimensions": {"plan-tier": "pro"}}),
    ("reserved-dimension", {"dimensions": {"customer_id": "x"}}),
    ("dimension-control", {"dimensions": {"plan": "a\u0000"}}),
    ("unknown-field", {"surprise": 1}),
    # began_at is NOW - 10 min; the clocks may differ by REPORT_CLOCK_SKEW_SECONDS (300 s)
    ("expires-long-before-it-began", {"expires_at": (NOW - timedelta(minutes=16)).isoformat()}),
    ("expires-in-2000", {"expires_at": "2000-01-01T00:00:00Z"}),
]
BAD_TERMINATIONS = [
    ("ended-in-the-future", {"ended_at": "2099-01-01T00:00:00Z"}),
    ("negative-session", {"session_duration_seconds": -1}),
    ("negative-audio", {"audio_duration_seconds": -0.5}),
    ("audio-longer-than-session", {"audio_duration_seconds": 700}),
    ("over-three-hours", {"session_duration_seconds": 10_861, "audio_duration_seconds": 100}),
    ("duration-not-a-number", {"session_duration_seconds": "ten"}),
    ("duration-nan", {"session_duration_seconds": "NaN"}),
    ("duration-infinite", {"session_duration_seconds": "Infinity"}),
    ("missing-ended-at", {"ended_at": None}),
    ("missing-customer", {"customer_id": None}),
    ("too-precise", {"session_duration_seconds": "1.0001"}),
]


def _drop_nones(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


class TestBadInput:
    @pytest.mark.parametrize(("name", "change"), BAD_BEGINS, ids=[b[0] for b in BAD_BEGINS])
    def test_bad_begin_is_400_and_writes_nothing(
        self, stack: Stack, name: str, change: dict[str, Any]
    ) -> None:
        event = report_event("/streaming/sessions/begin", _drop_nones(begin_body(**change)))
        response = stack.invoke("StreamingReportFunction", event)
        assert status_of(response) == (400, "invalid_report"), response
        assert json.loads(response["body"])["message"]
        assert stack.items("session") == [] and stack.items("ledger") == []

    @pytest.mark.parametrize(
        ("name", "change"), BAD_TERMINATIONS, ids=[b[0] for b in BAD_TERMINATIONS]
    )
    def test_bad_termination_is_400_and_writes_nothing(
        self, stack: Stack, name: str, change: dict[str, Any]
    ) -> None:
        event = report_event(
            "/streaming/sessions/termination", _drop_nones(termination_body(**change))
        )
        response = stack.invoke("StreamingReportFunction", event)
        assert status_of(response) == (400, "invalid_report"), response
        assert stack.items("ledger") == [] and stack.items("aggregate") == []

    def test_a_begin_that_expires_within_the_clock_skew_is_recorded_with_the_smallest_cap(
        self, stack: Stack
    ) -> None:
        """The app's clock (began_at) may run ahead of AssemblyAI's (expires_at): a Begin whose
        expires_at is 2 minutes before began_at is usable (never refused: a 4xx would lose the
        orphan sweep's bound) and bounded at 60 s, the smallest ``max_session_duration_seconds``
        a token may set (spec ``GET /v3/token``: 60..10800)."""
        from usage_meter.models.streaming import SessionBegin

        began = NOW - timedelta(minutes=10)
        body = begin_body(expires_at=(began - timedelta(minutes=2)).isoformat())
        response = stack.invoke(
            "StreamingReportFunction", report_event("/streaming/sessions/begin", body)
        )
        assert response["statusCode"] == 200, response
        assert SessionBegin.model_validate(body).bound_seconds() == Decimal(60)

    @pytest.mark.parametrize("raw", ["", "not json", "[]", "null", '{"session_id": 5}'])
    def test_malformed_json_is_400(self, stack: Stack, raw: str) -> None:
        response = stack.invoke(
            "StreamingReportFunction", report_event("/streaming/sessions/begin", raw)
        )
        assert response["statusCode"] == 400

    def test_oversized_body_is_413(self, stack: Stack) -> None:
        body = json.dumps(begin_body()) + " " * 9000
        response = stack.invoke(
            "StreamingReportFunction", report_event("/streaming/sessions/begin", body)
        )
        assert response["statusCode"] == 413


class TestBilling:
    def test_termination_is_billed_on_session_duration(self, stack: Stack) -> None:
        assert status_of(begin(stack)) == (200, "recorded")
        assert stack.items("session")[0]["GSI1PK"].startswith("OPEN_SESSIONS#")

        assert status_of(
            terminate(stack, session_duration_seconds=612.5, audio_duration_seconds=600)
        ) == (200, "recorded")

        [row] = stack.items("ledger")
        assert row["PK"] == f"SOURCE#streaming#{SESSION}"
        assert (row["product"], row["billable_seconds"], row["audio_duration_seconds"]) == (
            "streaming",
            Decimal("612.5"),
            Decimal(600),
        )
        assert (row["model"], row["dimensions"], row["estimated"]) == (
            "universal-streaming-english",
            {"plan": "pro"},
            False,
        )
        assert row["month"] == NOW.strftime("%Y-%m")
        [aggregate] = stack.items("aggregate")
        assert aggregate["SK"].startswith(
            f"MONTH#{NOW:%Y-%m}#streaming#default#universal-streaming-english#"
        )
        assert "GSI1PK" not in stack.items("session")[0]  # no longer open

    def test_duplicate_termination_is_a_no_op(self, stack: Stack) -> None:
        begin(stack)
        terminate(stack)
        before = (stack.items("ledger"), stack.items("aggregate"))
        assert status_of(terminate(stack)) == (200, "duplicate")
        assert (stack.items("ledger"), stack.items("aggregate")) == before

    def test_conflicting_termination_is_quarantined(self, stack: Stack) -> None:
        begin(stack)
        terminate(stack)
        assert status_of(terminate(stack, session_duration_seconds=900)) == (409, "conflict")
        assert stack.items("aggregate")[0]["billable_seconds"] == 600
        assert [q["reason"] for q in stack.items("quarantine")] == ["session_conflict"]

    def test_termination_for_another_customer_than_the_begin_is_quarantined(
        self, stack: Stack
    ) -> None:
        begin(stack)
        assert status_of(terminate(stack, customer_id="mallory")) == (409, "conflict")
        assert stack.items("ledger") == []

    def test_termination_without_begin_is_accepted(self, stack: Stack) -> None:
        assert status_of(terminate(stack, model="u3-rt-pro")) == (200, "recorded")
        [row] = stack.items("ledger")
        assert (row["customer_id"], row["model"]) == ("acme", "u3-rt-pro")
        # a begin that arrives after its termination does not reopen the session
        assert status_of(begin(stack)) == (200, "recorded")
        assert sweep(stack)["found"] == 0

    def test_begin_for_another_customer_is_a_conflict(self, stack: Stack) -> None:
        begin(stack)
        assert status_of(begin(stack, customer_id="mallory")) == (409, "conflict")


class TestOrphans:
    def _old_begin(self, stack: Stack, hours: float = 4) -> None:
        assert (
            status_of(begin(stack, began_at=(NOW - timedelta(hours=hours)).isoformat()))[0] == 200
        )

    def test_recent_sessions_are_not_orphans(self, stack: Stack) -> None:
        self._old_begin(stack, hours=2)
        assert sweep(stack)["found"] == 0
        assert stack.items("ledger") == []

    def test_bill_policy_bills_three_hours_as_estimated(self, stack: Stack) -> None:
        self._old_begin(stack)
        assert sweep(stack) == {
            "policy": "bill",
            "found": 1,
            "billed": 1,
            "flagged": 0,
            "already_terminated": 0,
            "unstorable": 0,
            "unreadable": 0,
        }
        [row] = stack.items("ledger")
        assert (row["billable_seconds"], row["estimated"], row["origin"]) == (
            10800,
            True,
            "orphan_estimate",
        )
        assert sweep(stack)["found"] == 0  # settled once

    def test_late_real_termination_replaces_the_estimate(self, stack: Stack) -> None:
        self._old_begin(stack)
        sweep(stack)

        response = terminate(
            stack,
            session_duration_seconds=5400,
            audio_duration_seconds=5300,
            ended_at=(NOW - timedelta(hours=2, minutes=30)).isoformat(),
        )

        assert status_of(response) == (200, "replaced_estimate")
        [row] = stack.items("ledger")
        assert (row["billable_seconds"], row["estimated"]) == (5400, False)
        aggregates = [
            a for a in stack.items("aggregate") if a["usage_count"] or a["billable_seconds"]
        ]
        assert [(a["usage_count"], a["billable_seconds"]) for a in aggregates] == [(1, 5400)]
        assert status_of(
            terminate(
                stack,
                session_duration_seconds=5400,
                audio_duration_seconds=5300,
                ended_at=(NOW - timedelta(hours=2, minutes=30)).isoformat(),
            )
        ) == (200, "duplicate")

    def test_estimate_and_real_in_different_months_move_the_usage(self, stack: Stack) -> None:
        import boto3

        from conftest import REGION
        from usage_meter.adapters.session_store import DynamoSessionStore
        from usage_meter.adapters.usage_ledger import DynamoUsageLedger
        from usage_meter.logic.streaming_sessions import settle_orphans
        from usage_meter.models.rules import OrphanPolicy

        began = datetime(2025, 11, 30, 22, 30, tzinfo=UTC)  # estimate ends 01:30 on Dec 1
        ledger = DynamoUsageLedger(boto3.client("dynamodb", region_name=REGION), stack.table)
        sessions = DynamoSessionStore(boto3.client("dynamodb", region_name=REGION), stack.table)
        from usage_meter.models.streaming import SessionBegin

        sessions.put_begin(
            SessionBegin(session_id=SESSION, customer_id="acme", model="u3-rt-pro", began_at=began)
        )

        class Quiet:
            def count(self, *a: Any, **k: Any) -> None: ...

        settle_orphans(
            ledger,
            sessions,
            Quiet(),
            OrphanPolicy.BILL,
            now=began + timedelta(hours=4),
            lookback=timedelta(days=2),
        )
        assert {a["month"]: a["usage_count"] for a in stack.items("aggregate")} == {"2025-12": 1}

        terminate(
            stack,
            session_duration_seconds=1200,
            audio_duration_seconds=1100,
            ended_at=(began + timedelta(minutes=20)).isoformat(),
            model="u3-rt-pro",
        )

        by_month = {
            a["month"]: (a["usage_count"], a["billable_seconds"]) for a in stack.items("aggregate")
        }
        assert by_month == {"2025-11": (1, 1200)}  # no 0-count row left behind (issue 9)
        [row] = stack.items("ledger")
        assert (row["month"], row["billable_seconds"]) == ("2025-11", 1200)

    def test_flag_policy_quarantines_and_bills_nothing(self, stack: Stack) -> None:
        self._old_begin(stack)
        assert sweep(stack, "flag")["flagged"] == 1
        assert stack.items("ledger") == []
        assert [q["reason"] for q in stack.items("quarantine")] == ["orphaned_session"]
        assert status_of(terminate(stack))[0] == 200  # the real figure is still billed if it comes
        assert stack.items("ledger")[0]["billable_seconds"] == 600

    def test_real_termination_before_the_sweep_wins(self, stack: Stack) -> None:
        self._old_begin(stack)
        terminate(stack, ended_at=(NOW - timedelta(hours=3, minutes=50)).isoformat())
        assert sweep(stack)["found"] == 0
        assert stack.items("ledger")[0]["estimated"] is False
