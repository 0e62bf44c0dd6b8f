"""Signed server-to-server requests: the usage reports from the application's backend.

The signature is Standard Webhooks (``logic/standard_webhooks.py``, the one definition the
forwarder uses too): headers ``webhook-id``, ``webhook-timestamp`` (unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")>``, with the
``whsec_<base64 key>`` secret of ``<SecretsPrefix>/report-signing``. Any language's Standard
Webhooks library can sign.

Deprecated, accepted until the removal announced in docs/decisions.md (2026-11-29): the
project's first scheme, ``X-Usage-Meter-Timestamp: <unix seconds>`` and
``X-Usage-Meter-Signature: v1=<hex HMAC-SHA256(secret as UTF-8, "<timestamp>.<raw body>")>``.
A request that carries any ``webhook-*`` header is judged by Standard Webhooks alone.

Either way we accept the current or the previous secret (rotation), compare in constant time,
re-read the secret once on a miss, and refuse timestamps more than the allowed skew away from
our clock, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

from usage_meter.logic import standard_webhooks
from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.logic.ports import SecretValues

TIMESTAMP_HEADER = "x-usage-meter-timestamp"
SIGNATURE_HEADER = "x-usage-meter-signature"
SCHEME = "v1="
STANDARD_HEADERS = (
    standard_webhooks.ID_HEADER,
    standard_webhooks.TIMESTAMP_HEADER,
    standard_webhooks.SIGNATURE_HEADER,
)


class SignatureScheme(StrEnum):
    """Which scheme a request was signed with (``LEGACY`` is deprecated)."""

    STANDARD_WEBHOOKS = "standard-webhooks"
    LEGACY = "x-usage-meter-signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The deprecated scheme's ``v1=<hex>`` signature (kept to verify, and for its tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}{digest}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The deprecated scheme's two headers."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def _unauthorized() -> RequestRejected:
    return RequestRejected(Rejection.UNAUTHENTICATED, "unauthorized", "unauthorized")


def _verify_standard(
    headers: dict[str, str], body: bytes, secrets: SecretValues, now: float, max_skew_seconds: int
) -> None:
    for refresh in (False, True):
        try:
            standard_webhooks.verify_any(
                secrets.accepted_values(refresh=refresh),
                headers,
                body,
                now=now,
                tolerance_seconds=max_skew_seconds,
            )
            return
        except standard_webhooks.InvalidSignature:
            continue
    raise _unauthorized()


def _verify_legacy(
    headers: dict[str, str], body: bytes, secrets: SecretValues, now: float, max_skew_seconds: int
) -> None:
    raw_timestamp = headers.get(TIMESTAMP_HEADER, "")
    presented = headers.get(SIGNATURE_HEADER, "")
    # isascii(): "²".isdigit() is True but int("²") raises; only ASCII digits are a timestamp.
    well_formed = raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= 12
    if not well_formed or not presented.startswith(SCHEME):
        raise _unauthorized()
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > max_skew_seconds:
        raise _unauthorized()
    for refresh in (False, True):
        matched = False
        for secret in secrets.accepted_values(refresh=refresh):
            matched |= hmac.compare_digest(
                presented.encode(), sign(secret, timestamp, body).encode()
            )
        if matched:
            return
    raise _unauthorized()


def verify_signed_request(
    headers: dict[str, str], body: bytes, secrets: SecretValues, now: float, max_skew_seconds: int
) -> SignatureScheme:
    """Raise RequestRejected (UNAUTHENTICATED) unless the request is signed, fresh and untampered.

    ``headers`` have lower-case names. Returns the scheme that signed it, so the caller can
    count requests still on the deprecated one.
    """
    if any(name in headers for name in STANDARD_HEADERS):
        _verify_standard(headers, body, secrets, now, max_skew_seconds)
        return SignatureScheme.STANDARD_WEBHOOKS
    _verify_legacy(headers, body, secrets, now, max_skew_seconds)
    return SignatureScheme.LEGACY
