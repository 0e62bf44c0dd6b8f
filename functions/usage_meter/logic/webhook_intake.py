"""Store-first webhook intake: authenticate, validate, enqueue, answer.

AssemblyAI gives a webhook 10 seconds and stops retrying on any 4xx, so this never calls
AssemblyAI: it turns a delivery into a queue message or a clear rejection. 4xx only for requests
that are truly bad; a failure to enqueue surfaces as TransientFailure (answered 5xx, so AssemblyAI
retries).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast
from urllib.parse import parse_qsl

from usage_meter.logic.errors import RequestRejected
from usage_meter.logic.ports import SecretValues, UsageQueue
from usage_meter.logic.webhook_auth import verify_webhook_auth
from usage_meter.models.identifiers import InvalidIdentifier, check_attribution, is_source_id
from usage_meter.models.webhook import (
    DEFAULT_PROJECT,
    WEBHOOK_STATUSES,
    Attribution,
    UsageMessage,
    WebhookStatus,
)

MAX_QUERY_LENGTH = 2048
IGNORED_STATUSES = frozenset({"redacted_audio_ready"})


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


def parse_attribution(raw_query: str, max_dimensions: int) -> Attribution:
    """The customer, project and billing dimensions from the webhook URL's query string."""
    if len(raw_query) > MAX_QUERY_LENGTH:
        raise _reject(400, "query_too_long", f"query string exceeds {MAX_QUERY_LENGTH} characters")
    try:
        # Not strict: AssemblyAI echoes the URL exactly as submitted, so a stray "&" must not turn
        # every delivery of that job into a permanent 4xx.
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _reject(400, "invalid_query", "query string is not valid URL encoding") from exc
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in seen:
            raise _reject(400, "duplicate_parameter", f"query parameter '{name}' appears twice")
        seen[name] = value
    customer_id = seen.pop("customer_id", None)
    if customer_id is None:
        raise _reject(400, "missing_customer_id", "query parameter 'customer_id' is required")
    project = seen.pop("project", DEFAULT_PROJECT)
    dimensions = dict(sorted(seen.items()))
    try:
        check_attribution(customer_id, project, dimensions, max_dimensions)
    except InvalidIdentifier as exc:
        raise _reject(400, exc.code, exc.message) from exc
    return Attribution(customer_id=customer_id, project=project, dimensions=dimensions)


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
    invalid = [
        name
        for name, ok in (
            ("transcript_id", is_source_id(document.get("transcript_id"))),
            ("status", isinstance(status, str) and status in WEBHOOK_STATUSES),
        )
        if not ok
    ]
    if invalid:
        raise _reject(
            400,
            "invalid_body",
            f"body must be {NOTIFICATION_SHAPE}; invalid: {', '.join(invalid)}",
        )
    return str(document["transcript_id"]), cast("WebhookStatus", status)


def accept_webhook(
    request: WebhookRequest, limits: IntakeLimits, secrets: SecretValues, queue: UsageQueue
) -> IntakeResult:
    """Validate one delivery and enqueue it. Raises RequestRejected (4xx) or TransientFailure."""
    if not verify_webhook_auth(request.headers.get(limits.auth_header_name), secrets):
        raise _reject(401, "unauthorized", "unauthorized")
    raw = _decode_body(request, limits.max_body_bytes)
    attribution = parse_attribution(request.raw_query, limits.max_dimensions)
    notification = _parse_notification(raw)
    if notification is None:
        return IntakeResult(outcome="ignored", reason="not a transcript completion")
    transcript_id, status = notification
    message = UsageMessage(
        transcript_id=transcript_id,
        webhook_status=status,
        attribution=attribution,
        received_at=request.received_at,
    )
    queue.enqueue(message)
    return IntakeResult(outcome="accepted", message=message)
