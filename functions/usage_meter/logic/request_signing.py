"""Signed server-to-server requests: the streaming session reports from the app's backend.

The sender computes ``HMAC-SHA256(secret, "<unix seconds>.<raw body>")`` and sends
``X-Usage-Meter-Timestamp: <unix seconds>`` and ``X-Usage-Meter-Signature: v1=<hex digest>``.
We accept the current or the previous secret (rotation), compare in constant time, and refuse
timestamps more than the allowed skew away from our clock, so a captured request cannot be
replayed later.
"""

from __future__ import annotations

import hashlib
import hmac

from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.logic.ports import SecretValues

TIMESTAMP_HEADER = "x-usage-meter-timestamp"
SIGNATURE_HEADER = "x-usage-meter-signature"
SCHEME = "v1="


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}{digest}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def _unauthorized() -> RequestRejected:
    return RequestRejected(Rejection.UNAUTHENTICATED, "unauthorized", "unauthorized")


def verify_signed_request(
    headers: dict[str, str], body: bytes, secrets: SecretValues, now: float, max_skew_seconds: int
) -> None:
    """Raise RequestRejected (UNAUTHENTICATED) unless the request is signed, fresh, untampered."""
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
