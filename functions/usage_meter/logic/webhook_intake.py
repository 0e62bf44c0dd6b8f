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
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qsl

from pydantic import ValidationError

from usage_meter.logic.errors import RequestRejected
from usage_meter.logic.ports import SecretValues, UsageQueue
from usage_meter.logic.webhook_auth import verify_webhook_auth
from usage_meter.models.identifiers import (
    CUSTOMER_ID_PATTERN,
    DIMENSION_NAME_PATTERN,
    PROJECT_PATTERN,
    dimension_value_problem,
)
from usage_meter.models.webhook import (
    DEFAULT_PROJECT,
    Attribution,
    TranscriptNotification,
    UsageMessage,
)

MAX_QUERY_LENGTH = 2048
RESERVED_PARAMETERS = frozenset({"customer_id", "project"})
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
        pairs = parse_qsl(
            raw_query, keep_blank_values=True, strict_parsing=bool(raw_query), errors="strict"
        )
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
    if not re.fullmatch(CUSTOMER_ID_PATTERN, customer_id):
        raise _reject(
            400,
            "invalid_customer_id",
            "customer_id must be 1-128 characters of letters, digits and . _ : @ -, "
            "starting with a letter or digit",
        )
    project = seen.pop("project", DEFAULT_PROJECT)
    if not re.fullmatch(PROJECT_PATTERN, project):
        raise _reject(
            400,
            "invalid_project",
            "project must be 1-64 characters of lower-case letters, digits, _ and -",
        )
    if len(seen) > max_dimensions:
        raise _reject(
            400, "too_many_dimensions", f"at most {max_dimensions} extra query parameters allowed"
        )
    for name, value in seen.items():
        if not re.fullmatch(DIMENSION_NAME_PATTERN, name):
            raise _reject(
                400,
                "invalid_dimension_name",
                "extra query parameter names must be 1-40 characters of lower-case letters, "
                "digits and _, starting with a letter",
            )
        problem = dimension_value_problem(value)
        if problem:
            raise _reject(400, "invalid_dimension_value", f"query parameter '{name}' {problem}")
    return Attribution(
        customer_id=customer_id, project=project, dimensions=dict(sorted(seen.items()))
    )


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


def _parse_notification(raw: bytes) -> TranscriptNotification | None:
    """The notification, or None for a delivery that is valid but not billable."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _reject(400, "invalid_json", "body must be UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise _reject(400, "invalid_body", "body must be a JSON object")
    if document.get("status") in IGNORED_STATUSES:
        return None
    try:
        return TranscriptNotification.model_validate(document)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise _reject(
            400,
            "invalid_body",
            'body must be {"transcript_id": <id>, "status": "completed"|"error"}; '
            f"invalid: {', '.join(fields)}",
        ) from exc


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
    message = UsageMessage(
        transcript_id=notification.transcript_id,
        webhook_status=notification.status,
        attribution=attribution,
        received_at=request.received_at,
    )
    queue.enqueue(message)
    return IntakeResult(outcome="accepted", message=message)
