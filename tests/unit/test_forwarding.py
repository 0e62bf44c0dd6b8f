"""Forwarding rules without AWS: Standard Webhooks signatures, the destination, the billing
allow-list and the notification id.

Signatures: the Standard Webhooks specification (https://www.standardwebhooks.com/, "Signature
scheme") and its published test vector, which every conforming library reproduces.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from usage_meter.adapters.http_delivery import UrllibSender
from usage_meter.adapters.secrets import ForwardAuthHeader
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.forwarding import (
    DeliveryError,
    ForwardDeps,
    forward_notification,
    target_url,
)
from usage_meter.logic.standard_webhooks import sign, signed_headers
from usage_meter.models.identifiers import InvalidIdentifier
from usage_meter.models.notification_event import notification_id
from usage_meter.models.webhook import attribution_from_query as parse_attribution
from usage_meter.models.webhook import billing_query
from usage_meter.settings import SettingsError, _billing_dimensions
from usage_meter_client import InvalidSignature, verify_forwarded_notification

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signing_reproduces_the_standard_webhooks_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_the_app_helper_verifies_the_spec_vector_and_refuses_any_change() -> None:
    headers = {
        "Webhook-Id": SPEC_ID,
        "Webhook-Timestamp": str(SPEC_TIMESTAMP),
        "Webhook-Signature": SPEC_SIGNATURE,
    }
    now = SPEC_TIMESTAMP + 10

    assert verify_forwarded_notification(SPEC_SECRET, headers, SPEC_BODY, now=now) == SPEC_ID
    for changed_body in (b'{"test": 2432232315}', SPEC_BODY + b" ", b""):
        with pytest.raises(InvalidSignature):
            verify_forwarded_notification(SPEC_SECRET, headers, changed_body, now=now)
    for name, value in (("Webhook-Id", "msg_other"), ("Webhook-Timestamp", "1614265331")):
        with pytest.raises(InvalidSignature):
            verify_forwarded_notification(SPEC_SECRET, {**headers, name: value}, SPEC_BODY, now=now)
    with pytest.raises(InvalidSignature, match="tolerance"):  # a replay ten minutes later
        verify_forwarded_notification(SPEC_SECRET, headers, SPEC_BODY, now=now + 600)
    with pytest.raises(InvalidSignature, match="missing"):
        verify_forwarded_notification(SPEC_SECRET, {}, SPEC_BODY, now=now)


def test_during_a_rotation_either_secret_verifies() -> None:
    old = "whsec_" + "b2xkLXNpZ25pbmcta2V5LTAwMDA="
    headers = signed_headers([SPEC_SECRET, old], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)

    assert headers["webhook-signature"].split()[0] == SPEC_SIGNATURE
    for secret in (SPEC_SECRET, old):
        verify_forwarded_notification(secret, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize(
    ("raw_query", "expected"),
    [
        ("customer_id=a&order=7", "https://app.example/hook?v=1&customer_id=a&order=7"),
        (
            "customer_id=a&x=1#@evil.example/",
            "https://app.example/hook?v=1&customer_id=a&x=1%23@evil.example/",
        ),
        (
            "url=https://evil.example/&a=b",
            "https://app.example/hook?v=1&url=https://evil.example/&a=b",
        ),
        ("a=1%0D%0AHost:%20evil", "https://app.example/hook?v=1&a=1%0D%0AHost:%20evil"),
        ("a=b c\r\nX: y", "https://app.example/hook?v=1&a=b%20c%0D%0AX:%20y"),
        ("", "https://app.example/hook?v=1"),
    ],
)
def test_the_query_string_can_never_choose_the_destination(raw_query: str, expected: str) -> None:
    url = target_url("https://app.example/hook?v=1", raw_query)

    assert url == expected
    assert url.startswith("https://app.example/hook?")


class _Redirecting(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        self.hits.append(self.path)
        self.send_response(307 if self.path == "/hook" else 200)
        self.send_header("location", "/elsewhere")
        self.send_header("content-length", "0")
        self.end_headers()


@pytest.fixture
def redirecting() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_redirect_is_an_answer_never_a_new_destination(redirecting: str) -> None:
    _Redirecting.hits = []
    status = UrllibSender().post(redirecting + "/hook", b"{}", {}, timeout=5)

    assert status == 307  # not retried, dead-lettered as endpoint_rejected by the forwarder
    assert _Redirecting.hits == ["/hook"]


def test_only_allow_listed_parameters_become_dimensions_the_others_are_never_checked() -> None:
    query = "customer_id=acme&plan=pro&token=abc&Order-Id=%2Fx&tag=a&tag=b&team=support"

    attribution = parse_attribution(query, 8, frozenset({"plan", "team"}))

    assert attribution.dimensions == {"plan": "pro", "team": "support"}
    assert parse_attribution(query, 8, frozenset()).dimensions == {}
    with pytest.raises(InvalidIdentifier):  # an allow-listed dimension still follows the rules
        parse_attribution("customer_id=acme&plan=", 8, frozenset({"plan"}))
    # What the meter may keep of a query (e.g. for an operator): never the application's part.
    assert billing_query(query, frozenset({"plan"})) == "customer_id=acme&plan=pro"


def test_the_allow_list_setting_refuses_names_that_cannot_be_dimensions() -> None:
    assert _billing_dimensions(" plan, team ,") == frozenset({"plan", "team"})
    assert _billing_dimensions("") == frozenset()
    for bad in ("1plan", "customer_id", "project", "a-b"):
        with pytest.raises(ValueError):
            _billing_dimensions(bad)
    assert issubclass(SettingsError, ValueError)


def test_every_copy_of_one_notification_has_one_id_and_others_differ() -> None:
    completed = notification_id("t1", "completed", b'{"status": "completed"}')

    assert completed == notification_id("t1", "completed", b"other bytes")
    assert completed != notification_id("t1", "error", b"")
    assert completed != notification_id("t2", "completed", b"")
    redacted = json.dumps({"status": "redacted_audio_ready", "redacted_audio_url": "u"}).encode()
    assert notification_id(None, "redacted_audio_ready", redacted) == notification_id(
        None, "redacted_audio_ready", redacted
    )
    assert completed.startswith("msg_") and len(completed) == 36


# -- the forwarder's decisions, with in-memory ports ----------------------------------------------


class _Fakes:
    def __init__(self, answer: int | Exception) -> None:
        self.answer = answer
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []
        self.dead: list[tuple[str, str, str]] = []
        self.retries: list[tuple[str, int]] = []
        self.counts: list[str] = []

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        self.posts.append((url, body, headers))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def accepted_values(self, *, refresh: bool = False) -> list[str]:
        return [SPEC_SECRET]

    def header(self) -> tuple[str, str] | None:
        return None

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        self.retries.append((receipt_handle, seconds))

    def send(self, body: str, reason: str, detail: str) -> None:
        self.dead.append((body, reason, detail))

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.counts.append(name)


def _deps(fakes: _Fakes) -> ForwardDeps:
    return ForwardDeps(
        endpoint="https://app.example/hook",
        sender=fakes,
        signing=fakes,
        auth=fakes,
        retries=fakes,
        dead_letters=fakes,
        metrics=fakes,
        max_attempts=3,
        timeout_seconds=5,
    )


def _event(body: str = '{"transcript_id": "t1", "status": "completed"}') -> str:
    detail = {"notification_id": "msg_" + "0" * 32, "body": body, "query": "customer_id=a"}
    return json.dumps(
        {
            "source": "usage-meter",
            "detail-type": "AssemblyAI Notification Received",
            "detail": detail,
        }
    )


def test_a_network_failure_is_retried_then_dead_lettered_with_the_cause() -> None:
    fakes = _Fakes(DeliveryError("ConnectionRefusedError"))

    with pytest.raises(TransientFailure):
        forward_notification(_event(), "h", 1, _deps(fakes), now=SPEC_TIMESTAMP)
    result = forward_notification(_event(), "h", 3, _deps(fakes), now=SPEC_TIMESTAMP)

    assert fakes.retries == [("h", 20)]
    assert result.outcome == "dead_lettered"
    assert [(r, d) for _, r, d in fakes.dead] == [
        ("endpoint_unavailable", "no answer: ConnectionRefusedError on attempt 3")
    ]


@pytest.mark.parametrize(("status", "outcome"), [(204, "delivered"), (302, "dead_lettered")])
def test_2xx_is_delivered_and_a_redirect_is_not_retried(status: int, outcome: str) -> None:
    fakes = _Fakes(status)

    result = forward_notification(_event(), "h", 1, _deps(fakes), now=SPEC_TIMESTAMP)

    assert result.outcome == outcome
    [(url, body, headers)] = fakes.posts
    assert url == "https://app.example/hook?customer_id=a"
    assert body == b'{"transcript_id": "t1", "status": "completed"}'
    assert headers["webhook-id"] == "msg_" + "0" * 32
    assert fakes.retries == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"source": "usage-meter", "detail-type": "AssemblyAI Notification Processed"}),
        json.dumps({"source": "other", "detail-type": "AssemblyAI Notification Received"}),
        _event().replace('"query": "customer_id=a"', '"query": 7'),
    ],
)
def test_a_malformed_event_goes_to_the_dlq_unsent(body: str) -> None:
    fakes = _Fakes(200)

    result = forward_notification(body, "h", 1, _deps(fakes), now=SPEC_TIMESTAMP)

    assert result.outcome == "dead_lettered"
    assert fakes.posts == []
    assert [r for _, r, _ in fakes.dead] == ["malformed_event"]


class _Secret:
    def __init__(self, value: str) -> None:
        self._value = value

    def value(self, *, refresh: bool = False) -> str:
        return self._value


def test_the_app_auth_header_secret_is_optional_but_never_half_set() -> None:
    def header(raw: str) -> tuple[str, str] | None:
        return ForwardAuthHeader(_Secret(raw)).header()  # type: ignore[arg-type]

    assert header("{}") is None
    assert header('{"header_name": "X-App", "header_value": "v"}') == ("X-App", "v")
    for bad in ('{"header_name": "X-App"}', '{"header_value": "v"}', "not json"):
        with pytest.raises(TransientFailure):
            header(bad)
