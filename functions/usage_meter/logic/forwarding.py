"""Forwarding one notification to the application's own webhook endpoint.

Input: a Received event (as EventBridge hands it to the forward queue). Output: one signed POST
of AssemblyAI's original body to the configured endpoint, with the webhook URL's own query string
appended; or a retry later; or the forwarding DLQ with the reason. The destination is the
configured URL and nothing else: the event's query string only ever becomes the query part
(percent-encoded where needed, never a scheme, host, path or fragment), and redirects are not
followed (the sender refuses them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.ports import DeadLetters, RetryScheduler, SecretValues, UsageMetrics
from usage_meter.logic.queued_delivery import backoff_seconds
from usage_meter.logic.standard_webhooks import signed_headers
from usage_meter.models.notification_event import EVENT_SOURCE, RECEIVED_DETAIL_TYPE

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
QUERY_SAFE = "=&;+%/?:@!$'()*,-._~"  # kept as is; anything else (e.g. '#', spaces) is encoded
USER_AGENT = "usage-meter-forwarder/1"


class DeliveryError(Exception):
    """The endpoint could not be reached (DNS, connection, TLS, timeout)."""


class HttpSender(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST and return the HTTP status (redirects are answers, not followed). Raises
        DeliveryError when no answer came."""
        ...


class AuthHeader(Protocol):
    def header(self) -> tuple[str, str] | None:
        """The application's own auth header (name, value), or None."""
        ...


@dataclass(frozen=True)
class ForwardDeps:
    endpoint: str
    sender: HttpSender
    signing: SecretValues  # whsec_ secrets: current (and previous while rotating)
    auth: AuthHeader
    retries: RetryScheduler
    dead_letters: DeadLetters
    metrics: UsageMetrics
    max_attempts: int
    timeout_seconds: float


@dataclass(frozen=True)
class ForwardResult:
    outcome: Literal["delivered", "dead_lettered"]
    status: int | None
    reason: str | None = None


def target_url(endpoint: str, raw_query: str) -> str:
    """The configured endpoint with the webhook URL's query string appended to its own."""
    parts = urlsplit(endpoint)
    extra = quote(raw_query, safe=QUERY_SAFE)
    query = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _received_detail(body: str) -> dict[str, Any]:
    event = json.loads(body)
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != RECEIVED_DETAIL_TYPE:
        raise ValueError("not a Received notification event")
    detail = event["detail"]
    if not isinstance(detail.get("body"), str) or not isinstance(detail.get("query"), str):
        raise ValueError("detail needs string 'body' and 'query'")
    if not str(detail.get("notification_id", "")).startswith("msg_"):
        raise ValueError("detail needs a notification_id")
    return dict(detail)


def _dead_letter(deps: ForwardDeps, body: str, reason: str, detail: str) -> ForwardResult:
    deps.metrics.count("ForwardsDeadLettered")
    deps.dead_letters.send(body, reason, detail)
    return ForwardResult("dead_lettered", None, reason)


def forward_notification(
    body: str, receipt_handle: str, receive_count: int, deps: ForwardDeps, now: int
) -> ForwardResult:
    """Deliver one queued Received event. Raises TransientFailure (after scheduling the retry)
    for a retryable failure before the last attempt; the last one goes to the DLQ with its
    reason, as do malformed events and answers that retrying cannot change (other 3xx/4xx)."""
    try:
        detail = _received_detail(body)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return _dead_letter(deps, body, "malformed_event", str(exc)[:200])
    payload = detail["body"].encode("utf-8")
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signed_headers(deps.signing.accepted_values(), detail["notification_id"], now, payload),
    }
    auth = deps.auth.header()
    if auth is not None:
        headers[auth[0]] = auth[1]
    url = target_url(deps.endpoint, detail["query"])
    try:
        status: int | None = deps.sender.post(url, payload, headers, deps.timeout_seconds)
        problem = None if status is None else f"HTTP {status}"
    except DeliveryError as exc:
        status, problem = None, f"no answer: {exc}"
    if status is not None and 200 <= status < 300:
        deps.metrics.count("NotificationsForwarded")
        return ForwardResult("delivered", status)
    if status is not None and status not in RETRYABLE_STATUSES:
        return _dead_letter(deps, body, "endpoint_rejected", f"{problem}; not retried")
    if receive_count >= deps.max_attempts:
        return _dead_letter(
            deps, body, "endpoint_unavailable", f"{problem} on attempt {receive_count}"
        )
    deps.metrics.count("ForwardsRetried")
    deps.retries.retry_after(receipt_handle, backoff_seconds(receive_count))
    raise TransientFailure(f"forward failed ({problem}); retrying")
