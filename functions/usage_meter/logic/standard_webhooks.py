"""Standard Webhooks signatures (https://www.standardwebhooks.com/), standard library only.

Two directions use it: the forwarder signs each delivery to the application, which verifies it
with ``verify`` (re-exported by the client package ``usage_meter_client``); the application signs
its usage reports (streaming sessions, LLM Gateway, Voice Agent, Sync) with ``signed_headers``,
which the report function checks with ``verify_any``. Any language's Standard Webhooks library
can sign or verify either. The scheme, from the Standard Webhooks specification:

- headers ``webhook-id`` (the notification id, the same for every copy of one notification),
  ``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature``
  (space-separated ``v1,<base64 signature>``: one per secret while a secret rotates);
- signature = base64(HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<raw body>"));
- the secret is ``whsec_`` + base64(key); the key is the decoded bytes.

Each attempt is signed when it is sent, so a retry hours later still carries a fresh timestamp.

This module is the one definition of the scheme: infra/gen_client_rules.py copies it verbatim
into the client package, so it must import only the standard library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(ValueError):
    """The delivery is unsigned, stale, or its signature does not match (do not process it)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret. Raises ValueError for another shape."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from exc
    if len(key) < 16:
        raise ValueError("a Standard Webhooks secret needs at least 16 bytes of key")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``"<id>.<timestamp>.<body>"``."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return f"{VERSION},{base64.b64encode(mac.digest()).decode()}"


def signed_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every given secret (current first)."""
    if not secrets:
        raise ValueError("no signing secret")
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check a forwarded delivery; returns its ``webhook-id`` (keep it to drop duplicates).

    ``headers`` may use any letter case; ``body`` must be the raw request body. Raises
    ValueError when ``secret`` is not ``whsec_<base64>``, and InvalidSignature when a header is
    missing, the timestamp is more than ``tolerance_seconds`` from ``now`` (replay protection),
    or no ``v1`` signature matches.
    """
    secret_key(secret)  # a malformed secret is the caller's error, not a bad delivery
    return verify_any([secret], headers, body, now=now, tolerance_seconds=tolerance_seconds)


def verify_any(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """``verify`` against several secrets (current and previous, while one rotates).

    Returns the ``webhook-id``. Secrets that are not ``whsec_<base64>`` (at least 16 bytes of
    key) are skipped; with none usable, or with any problem ``verify`` names, raises
    InvalidSignature. Every usable secret is compared, each in constant time.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get(ID_HEADER, "")
    raw_timestamp = lower.get(TIMESTAMP_HEADER, "")
    signatures = lower.get(SIGNATURE_HEADER, "")
    # ASCII digits only ("²".isdigit() is True), and few of them: int() refuses > 4300 digits.
    timestamp_ok = raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= 12
    if not (msg_id and timestamp_ok and signatures):
        raise InvalidSignature("missing or malformed webhook-id/-timestamp/-signature header")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    candidates = [c.encode() for c in signatures.split() if c.startswith(f"{VERSION},")]
    usable = False
    matched = False
    for secret in secrets:
        try:
            expected = sign(secret, msg_id, timestamp, body).encode()
        except ValueError:
            continue
        usable = True
        for candidate in candidates:
            matched |= hmac.compare_digest(candidate, expected)
    if not usable:
        raise InvalidSignature("no usable signing secret (whsec_ followed by base64)")
    if not matched:
        raise InvalidSignature("no matching v1 signature")
    return msg_id
