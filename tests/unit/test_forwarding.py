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
from usage_meter.app_client import InvalidSignature, verify_forwarded_notification
from usage_meter.logic.errors import RequestRejected
from usage_meter.logic.forwarding import target_url
from usage_meter.logic.standard_webhooks import sign, signed_headers
from usage_meter.logic.webhook_intake import parse_attribution
from usage_meter.models.notification_event import notification_id
from usage_meter.settings import SettingsError, _billing_dimensions

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
    with pytest.raises(RequestRejected):  # an allow-listed dimension still follows the rules
        parse_attribution("customer_id=acme&plan=", 8, frozenset({"plan"}))


def test_the_allow_list_setting_refuses_names_that_cannot_be_dimensions() -> None:
    assert _billing_dimensions(" plan, team ,") == frozenset({"plan", "team"})
    assert _billing_dimensions("") == frozenset()
    for bad in ("Plan", "customer_id", "project", "a-b"):
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
