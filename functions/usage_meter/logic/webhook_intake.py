"""Store-first webhook intake: authenticate, validate, enqueue, answer.

AssemblyAI gives a webhook 10 seconds and stops retrying on any 4xx, so this never calls
AssemblyAI and refuses only what is truly unusable: bad or missing auth, a body that is not JSON
or names no transcript id, an oversized body. An authenticated delivery that names a transcript is
always queued, even when its attribution (customer id, project, dimensions) breaks a rule: the
message then carries the problem, and the processor bills the transcript from its own
``webhook_url`` or quarantines it with the reason. A failure to enqueue surfaces as
TransientFailure (answered 5xx, so AssemblyAI retries).

Every accepted notification (``redacted_audio_ready`` included) is then published on the meter's
EventBridge bus, after the usage is stored, so the books never wait on it; if the event cannot be
published the answer is still 503, so AssemblyAI's retry gives forwarding another chance (the
usage queued twice is billed once). See docs/decisions.md, "Forwarding".

Only the query parameters named in the billing allow-list (``BILLING_DIMENSIONS``) become billing
dimensions; the application's other parameters are not checked, stored or logged, only passed on
in the event.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from usage_meter.logic.errors import Rejection, RequestRejected, TransientFailure
from usage_meter.logic.ports import EventPublisher, SecretValues, UsageQueue
from usage_meter.logic.webhook_auth import verify_webhook_auth
from usage_meter.models.identifiers import MAX_DIMENSIONS, InvalidIdentifier, is_source_id
from usage_meter.models.notification_event import RECEIVED_DETAIL_TYPE, received_detail
from usage_meter.models.webhook import (
    MAX_QUERY_LENGTH,
    WEBHOOK_STATUSES,
    UsageMessage,
    WebhookStatus,
    attribution_from_query,
    billing_query,
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
    billing_dimensions: frozenset[str]  # the query parameters that are billing dimensions


@dataclass(frozen=True)
class IntakeResult:
    outcome: Literal["accepted", "ignored"]
    message: UsageMessage | None = None
    reason: str | None = None


def _reject(kind: Rejection, code: str, message: str) -> RequestRejected:
    return RequestRejected(kind, code, message)


class NotificationNotPublished(TransientFailure):
    """The usage is stored but the notification's event could not be published (answered 503, so
    AssemblyAI sends it again)."""


def _decode_body(request: WebhookRequest, max_body_bytes: int) -> bytes:
    body = request.body or ""
    if request.body_is_base64:
        if len(body) > (max_body_bytes * 4) // 3 + 4:
            raise _reject(
                Rejection.TOO_LARGE, "body_too_large", f"body exceeds {max_body_bytes} bytes"
            )
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _reject(Rejection.INVALID, "invalid_body", "body is not valid base64") from exc
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > max_body_bytes:
        raise _reject(Rejection.TOO_LARGE, "body_too_large", f"body exceeds {max_body_bytes} bytes")
    if not raw:
        raise _reject(Rejection.INVALID, "empty_body", "body must be a JSON object")
    return raw


NOTIFICATION_SHAPE = '{"transcript_id": "<id>", "status": "completed" | "error"}'


@dataclass(frozen=True)
class Notification:
    """What the intake reads of AssemblyAI's body: the status, the transcript id (none for
    ``redacted_audio_ready``) and whether it is usage to bill."""

    status: str
    transcript_id: str | None
    billable: bool


def _parse_notification(raw: bytes) -> Notification:
    """Read the body. Unknown extra fields are ignored, so a new field from AssemblyAI never
    turns into a 4xx (which would stop its retries for good)."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _reject(Rejection.INVALID, "invalid_json", "body must be UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise _reject(
            Rejection.INVALID, "invalid_body", f"body must be a JSON object: {NOTIFICATION_SHAPE}"
        )
    status = document.get("status")
    if isinstance(status, str) and status in IGNORED_STATUSES:
        transcript_id = document.get("transcript_id")
        return Notification(status, transcript_id if is_source_id(transcript_id) else None, False)
    if not is_source_id(document.get("transcript_id")):
        raise _reject(
            Rejection.INVALID,
            "invalid_body",
            f"body must be {NOTIFICATION_SHAPE}; invalid: transcript_id",
        )
    if not (isinstance(status, str) and status in WEBHOOK_STATUSES):
        status = "unknown"  # the processor reads the transcript's own status
    return Notification(str(status), str(document["transcript_id"]), True)


def _publish(
    events: EventPublisher, request: WebhookRequest, raw: bytes, notification: Notification
) -> None:
    """The Received event; the customer and project only when the query names them validly."""
    customer_id: str | None = None
    project: str | None = None
    try:
        attribution = attribution_from_query(request.raw_query, 0, frozenset())
        customer_id, project = attribution.customer_id, attribution.project
    except InvalidIdentifier:
        pass  # named nowhere valid: the processor bills it from the transcript or quarantines
    detail = received_detail(
        raw_body=raw,
        raw_query=request.raw_query,
        received_at=request.received_at,
        status=notification.status,
        transcript_id=notification.transcript_id,
        customer_id=customer_id,
        project=project,
    )
    try:
        events.publish(RECEIVED_DETAIL_TYPE, detail)
    except TransientFailure as exc:
        raise NotificationNotPublished(str(exc)) from exc


def accept_webhook(
    request: WebhookRequest,
    limits: IntakeLimits,
    secrets: SecretValues,
    queue: UsageQueue,
    events: EventPublisher,
) -> IntakeResult:
    """Validate one delivery, enqueue it (with its attribution, or with what is wrong with it),
    then publish its Received event. Raises RequestRejected (401/400/413, only for the unusable
    requests listed above) or TransientFailure (5xx; NotificationNotPublished when only the event
    is missing)."""
    if not verify_webhook_auth(request.headers.get(limits.auth_header_name), secrets):
        raise _reject(Rejection.UNAUTHENTICATED, "unauthorized", "unauthorized")
    raw = _decode_body(request, limits.max_body_bytes)
    notification = _parse_notification(raw)
    if not notification.billable or notification.transcript_id is None:
        _publish(events, request, raw, notification)
        return IntakeResult(outcome="ignored", reason="not a transcript completion")
    transcript_id = notification.transcript_id
    status = cast("WebhookStatus", notification.status)
    try:
        attribution = attribution_from_query(
            request.raw_query, MAX_DIMENSIONS, limits.billing_dimensions
        )
    except InvalidIdentifier as exc:
        # Never a 4xx: AssemblyAI would stop retrying and the usage it bills would be lost.
        message = UsageMessage(
            transcript_id=transcript_id,
            webhook_status=status,
            attribution=None,
            received_at=request.received_at,
            attribution_problem=f"{exc.code}: {exc.message}",
            # Only the billing part: the application's own parameters are never stored.
            query=billing_query(request.raw_query, limits.billing_dimensions)[
                :KEPT_QUERY_CHARACTERS
            ],
        )
    else:
        message = UsageMessage(
            transcript_id=transcript_id,
            webhook_status=status,
            attribution=attribution,
            received_at=request.received_at,
        )
    queue.enqueue(message)  # the books first: forwarding never holds up metering
    _publish(events, request, raw, notification)
    return IntakeResult(outcome="accepted", message=message)
