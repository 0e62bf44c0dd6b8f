"""The report signature rules (logic/request_signing.py over logic/standard_webhooks.py): which
scheme judges a request, rotation, and the secrets operators already have.

Standard Webhooks, https://www.standardwebhooks.com/ (v1: base64 HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<body>", key = base64-decoded secret after ``whsec_``)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from usage_meter.handlers.http_errors import rejection_status
from usage_meter.logic import request_signing, standard_webhooks
from usage_meter.logic.errors import RequestRejected
from usage_meter.logic.request_signing import SignatureScheme, verify_signed_request

NOW = 1_790_000_000
BODY = b'{"session_id":"s-1","customer_id":"acme"}'
CURRENT = "whsec_" + base64.b64encode(b"test-only-report-current").decode()
PREVIOUS = "whsec_" + base64.b64encode(b"test-only-report-previous").decode()
# What README told operators to create before Standard Webhooks: `openssl rand -hex 32`.
HEX_SECRET = "0123456789abcdef" * 4


class Secrets:
    def __init__(self, values: Sequence[str], fresh: Sequence[str] | None = None) -> None:
        self.values, self.fresh = list(values), list(fresh if fresh is not None else values)
        self.refreshes = 0

    def accepted_values(self, *, refresh: bool = False) -> Sequence[str]:
        self.refreshes += refresh
        return self.fresh if refresh else self.values


def standard(secret: str, at: int = NOW, body: bytes = BODY) -> dict[str, str]:
    return standard_webhooks.signed_headers([secret], "msg_1", at, body)


@pytest.mark.parametrize("secret", [CURRENT, PREVIOUS])
def test_current_and_previous_secrets_verify(secret: str) -> None:
    assert (
        verify_signed_request(standard(secret), BODY, Secrets([CURRENT, PREVIOUS]), NOW, 300)
        is SignatureScheme.STANDARD_WEBHOOKS
    )


def test_a_rotated_secret_is_picked_up_by_one_re_read() -> None:
    secrets = Secrets([PREVIOUS], fresh=[CURRENT, PREVIOUS])
    verify_signed_request(standard(CURRENT), BODY, secrets, NOW, 300)
    assert secrets.refreshes == 1


def test_an_existing_hex_secret_works_with_both_schemes_and_the_official_library() -> None:
    """No forced rotation: a hex secret is valid base64, so it is a Standard Webhooks secret."""
    secrets = Secrets([HEX_SECRET])
    moment = datetime.fromtimestamp(NOW, UTC)
    official = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": Webhook(HEX_SECRET).sign("msg_1", moment, BODY.decode()),
    }
    assert (
        verify_signed_request(official, BODY, secrets, NOW, 300)
        is SignatureScheme.STANDARD_WEBHOOKS
    )
    legacy = request_signing.signed_headers(HEX_SECRET, NOW, BODY)
    assert verify_signed_request(legacy, BODY, secrets, NOW, 300) is SignatureScheme.LEGACY


def test_a_secret_that_is_not_base64_cannot_verify_standard_webhooks_but_does_not_crash() -> None:
    secrets = Secrets(["local-only-plain-secret", CURRENT])
    verify_signed_request(standard(CURRENT), BODY, secrets, NOW, 300)
    with pytest.raises(RequestRejected) as raised:
        verify_signed_request(standard(CURRENT), BODY, Secrets(["not base64!"]), NOW, 300)
    assert rejection_status(raised.value) == 401


@pytest.mark.parametrize("offset", [-301, 301])
def test_the_skew_window_applies_to_standard_webhooks(offset: int) -> None:
    with pytest.raises(RequestRejected):
        verify_signed_request(
            standard(CURRENT, at=NOW + offset), BODY, Secrets([CURRENT]), NOW, 300
        )
    verify_signed_request(
        standard(CURRENT, at=NOW + offset), BODY, Secrets([CURRENT]), NOW, abs(offset)
    )


def test_any_webhook_header_means_standard_webhooks_judges_alone() -> None:
    headers = {**request_signing.signed_headers(CURRENT, NOW, BODY), "webhook-id": "msg_1"}
    with pytest.raises(RequestRejected):
        verify_signed_request(headers, BODY, Secrets([CURRENT]), NOW, 300)


def test_the_official_library_verifies_what_we_sign_with_two_secrets() -> None:
    headers = standard_webhooks.signed_headers([CURRENT, PREVIOUS], "msg_9", NOW, BODY)
    for secret in (CURRENT, PREVIOUS):
        webhook = Webhook(secret)
        expected = webhook.sign("msg_9", datetime.fromtimestamp(NOW, UTC), BODY.decode())
        assert expected in headers["webhook-signature"].split()


@pytest.mark.parametrize("timestamp", ["9" * 5000, "1" * 13, "\u00b2" * 10, "-1", ""])
def test_a_malformed_timestamp_is_401_not_a_crash(timestamp: str) -> None:
    headers = {**standard(CURRENT), "webhook-timestamp": timestamp}
    with pytest.raises(RequestRejected) as raised:
        verify_signed_request(headers, BODY, Secrets([CURRENT]), NOW, 300)
    assert rejection_status(raised.value) == 401
