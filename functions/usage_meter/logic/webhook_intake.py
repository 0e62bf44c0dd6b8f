"""Store-first webhook intake: authenticate, validate, enqueue, answer.

AssemblyAI gives a webhook 10 seconds and stops retrying on any 4xx, so this never calls
AssemblyAI and refuses only what is truly unusable: bad or missing auth, a body that is not JSON
or names no transcript id, an oversized body. An authenticated delivery that names a transcript is
always queued, even when its attribution (customer id, project, dimensions) breaks a rule: the
message then carries the problem, and the processor bills the transcript from its own
``webhook_url`` or quarantines it with the reason. A failure to enqueue surfaces as
TransientFailure (answered 5xx, so AssemblyAI retries).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from usage_meter.logic.errors import RequestRejected
from usage_meter.logic.ports import SecretValues, UsageQueue
from usage_meter.logic.webhook_auth import verify_webhook_auth
from usage_meter.models.identifiers import InvalidIdentifier, is_source_id
from usage_meter.models.webhook import (
    MAX_QUERY_LENGTH,
    WEBHOOK_STATUSES,
    UsageMessage,
    WebhookStatus,
    attribution_from_query,
)

IGNORED_STATUSES = frozenset({"redacted_audio_ready"})
KEPT_QUERY_CHARACTERS = 2 * MAX_QUERY_LENGTH  # of an invalid query, kept for the operator


@dataclass(frozen=True)
class WebhookRequest:
    """What the intake needs of an HTTP request, independent of API Gateway's event shape."""

    headers: dict[str, str]  # names in lower case
    raw_query: str
    body: str | None
    body_is_base64: bool
    received_at: datetime


@dataclass(frozen=True)
class IntakeLimits:
    auth_header_name: str
    max_body_bytes: int
    max_dimensions: int


@dataclass(frozen=True)
class IntakeResult:
    outcome: Literal["accepted", "ignored"]
    message: UsageMessage | None = None
    reason: str | None = None


def _reject(status: int, code: str, message: str) -> RequestRejected:
    return RequestRejected(status, code, message)


def _decode_body(request: WebhookRequest, max_body_bytes: int) -> bytes:
    body = request.body or ""
    if request.body_is_base64:
        if len(body) > (max_body_bytes * 4) // 3 + 4:
            raise _reject(413, "body_too_large", f"body exceeds {max_body_bytes} bytes")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _reject(400, "invalid_body", "body is not valid base64") from exc
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > max_body_bytes:
        raise _reject(413, "body_too_large", f"body exceeds {max_body_bytes} bytes")
    if not raw:
        raise _reject(400, "empty_body", "body must be a JSON object")
    return raw


NOTIFICATION_SHAPE = '{"transcript_id": "<id>", "status": "completed" | "error"}'


def _parse_notification(raw: bytes) -> tuple[str, WebhookStatus] | None:
    """(transcript id, status), or None for a delivery that is valid but not billable.

    Unknown extra fields are ignored, so a new field from AssemblyAI never turns into a 4xx
    (which would stop its retries for good)."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _reject(400, "invalid_json", "body must be UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise _reject(400, "invalid_body", f"body must be a JSON object: {NOTIFICATION_SHAPE}")
    status = document.get("status")
    if isinstance(status, str) and status in IGNORED_STATUSES:
        return None
    if not is_source_id(document.get("transcript_id")):
        raise _reject(
            400, "invalid_body", f"body must be {NOTIFICATION_SHAPE}; invalid: transcript_id"
        )
    if not (isinstance(status, str) and status in WEBHOOK_STATUSES):
        status = "unknown"  # the processor reads the transcript's own status
    return str(document["transcript_id"]), cast("WebhookStatus", status)


def accept_webhook(
    request: WebhookRequest, limits: IntakeLimits, secrets: SecretValues, queue: UsageQueue
) -> IntakeResult:
    """Validate one delivery and enqueue it (with its attribution, or with what is wrong with
    it). Raises RequestRejected (401/400/413, only for the unusable requests listed above) or
    TransientFailure (5xx)."""
    if not verify_webhook_auth(request.headers.get(limits.auth_header_name), secrets):
        raise _reject(401, "unauthorized", "unauthorized")
    raw = _decode_body(request, limits.max_body_bytes)
    notification = _parse_notification(raw)
    if notification is None:
        return IntakeResult(outcome="ignored", reason="not a transcript completion")
    transcript_id, status = notification
    try:
        attribution = attribution_from_query(request.raw_query, limits.max_dimensions)
    except InvalidIdentifier as exc:
        # Never a 4xx: AssemblyAI would stop retrying and the usage it bills would be lost.
        message = UsageMessage(
            transcript_id=transcript_id,
            webhook_status=status,
            attribution=None,
            received_at=request.received_at,
            attribution_problem=f"{exc.code}: {exc.message}",
            query=request.raw_query[:KEPT_QUERY_CHARACTERS],
        )
    else:
        message = UsageMessage(
            transcript_id=transcript_id,
            webhook_status=status,
            attribution=attribution,
            received_at=request.received_at,
        )
    queue.enqueue(message)
    return IntakeResult(outcome="accepted", message=message)
