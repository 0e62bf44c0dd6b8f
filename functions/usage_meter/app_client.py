"""Helpers for the *application* that uses AssemblyAI (not used by the Lambda functions).

Async transcripts: build the webhook URL and auth header for a customer, ready for
``assemblyai.TranscriptionConfig(...).set_webhook(...)``::

    target = webhook_target("https://<api>/webhooks/assemblyai", "acme-corp",
                            auth_header_value=webhook_secret,  # from your secret store
                            dimensions={"plan": "pro"})
    config = configure_webhook(aai.TranscriptionConfig(speech_models=["universal-3-pro"]), target)

Streaming: report each session's begin and termination, signed, with retries::

    reporter = UsageReporter("https://<api>", report_signing_secret)
    client = StreamingClient(StreamingClientOptions(api_key=...))
    reporter.attach(client, customer_id="acme-corp", model="universal-streaming-english")

or, for apps that read AssemblyAI's raw ``Begin``/``Termination`` JSON themselves::

    reporter.report_message(raw_json, customer_id="acme-corp", model="u3-rt-pro")

Plans and limits: ask before starting work (SigV4-signed; see app_entitlement)::

    answer = EntitlementClient("https://<api>", region="eu-west-1").check("acme-corp", "async")
    if not answer.allowed: ...
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from usage_meter.app_entitlement import (
    EntitlementAnswer,
    EntitlementClient,
    EntitlementUnavailable,
)
from usage_meter.logic.request_signing import signed_headers
from usage_meter.models.identifiers import check_attribution

__all__ = ["EntitlementAnswer", "EntitlementClient", "EntitlementUnavailable"]
DEFAULT_AUTH_HEADER_NAME = "X-Usage-Meter-Webhook-Secret"
BEGIN_PATH = "/streaming/sessions/begin"
TERMINATION_PATH = "/streaming/sessions/termination"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    auth_header_name: str
    auth_header_value: str = field(repr=False)


def webhook_target(
    webhook_base_url: str,
    customer_id: str,
    *,
    auth_header_value: str,
    project: str = "default",
    dimensions: dict[str, str] | None = None,
    auth_header_name: str = DEFAULT_AUTH_HEADER_NAME,
) -> WebhookTarget:
    """The webhook URL that attributes a transcript to ``customer_id`` (checked with the same
    rules the service applies, so a bad id fails here rather than as a lost webhook)."""
    dimensions = dimensions or {}
    check_attribution(customer_id, project, dimensions, max_dimensions=8)
    query: dict[str, str] = {"customer_id": customer_id}
    if project != "default":
        query["project"] = project
    query.update(sorted(dimensions.items()))
    separator = "&" if "?" in webhook_base_url else "?"
    return WebhookTarget(
        url=f"{webhook_base_url}{separator}{urlencode(query)}",
        auth_header_name=auth_header_name,
        auth_header_value=auth_header_value,
    )


def configure_webhook(config: Any, target: WebhookTarget) -> Any:
    """``config.set_webhook(url, header name, value)`` on an assemblyai TranscriptionConfig."""
    return config.set_webhook(target.url, target.auth_header_name, target.auth_header_value)


class ReportRejected(Exception):
    """The usage meter refused a report (4xx other than 408/429): retrying cannot help.
    ``code`` is the service's error code (``unauthorized``, ``invalid_report``, ``conflict``...)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"usage meter answered {status}: {body[:200]}")
        self.status = status
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        self.code = str(document.get("error")) if isinstance(document, dict) else ""


def _durations(session_seconds: Any, audio_seconds: Any) -> tuple[Decimal, Decimal]:
    """A Termination's durations. Without ``session_duration_seconds`` nothing is reported: a
    guessed 0 would close the session for free; left open, the orphan sweep bills it as
    AssemblyAI does (3 hours). A missing audio duration is only informational (0)."""
    if session_seconds is None:
        raise ValueError(
            "Termination without session_duration_seconds: not reported, so the session stays "
            "open and the orphan sweep bills it at AssemblyAI's limit"
        )
    return Decimal(str(session_seconds)), Decimal(str(audio_seconds or 0))


def _iso(moment: datetime | None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat()


@dataclass
class UsageReporter:
    """Signs and sends streaming session reports, retrying transient failures with backoff."""

    base_url: str
    signing_secret: str = field(repr=False)
    timeout_seconds: float = 5.0
    attempts: int = 4
    backoff_seconds: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    failures: list[Exception] = field(default_factory=list)

    def _post(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(document, separators=(",", ":"), default=str).encode()
        last: Exception | None = None
        for attempt in range(self.attempts):
            headers = {
                "content-type": "application/json",
                **signed_headers(self.signing_secret, int(time.time()), body),
            }
            request = urllib.request.Request(  # noqa: S310 - the configured https endpoint
                self.base_url.rstrip("/") + path, data=body, headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310
                    answer: dict[str, Any] = json.loads(response.read() or b"{}")
                    return answer
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")
                if exc.code not in RETRYABLE_STATUSES:
                    raise ReportRejected(exc.code, text) from exc
                last = exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = exc
            if attempt + 1 < self.attempts:
                self.sleep(self.backoff_seconds * 2**attempt)
        assert last is not None
        raise last

    def report_begin(
        self,
        *,
        session_id: str,
        customer_id: str,
        model: str,
        began_at: datetime | None = None,
        project: str = "default",
        dimensions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return self._post(
            BEGIN_PATH,
            {
                "session_id": session_id,
                "customer_id": customer_id,
                "project": project,
                "dimensions": dimensions or {},
                "model": model,
                "began_at": _iso(began_at),
            },
        )

    def report_termination(
        self,
        *,
        session_id: str,
        customer_id: str,
        session_duration_seconds: int | Decimal,
        audio_duration_seconds: int | Decimal,
        ended_at: datetime | None = None,
        model: str | None = None,
        project: str = "default",
        dimensions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "session_id": session_id,
            "customer_id": customer_id,
            "project": project,
            "dimensions": dimensions or {},
            "ended_at": _iso(ended_at),
            "session_duration_seconds": str(session_duration_seconds),
            "audio_duration_seconds": str(audio_duration_seconds),
        }
        if model:
            document["model"] = model
        return self._post(TERMINATION_PATH, document)

    def report_message(
        self,
        message: str | dict[str, Any],
        *,
        customer_id: str,
        model: str,
        session_id: str | None = None,
        project: str = "default",
        dimensions: dict[str, str] | None = None,
    ) -> str | None:
        """Report AssemblyAI's raw ``Begin`` or ``Termination`` JSON. A Termination carries no
        session id: pass the one returned for its Begin. Returns the session id (None for other
        message types, which are ignored)."""
        data = json.loads(message) if isinstance(message, str) else message
        kind = data.get("type")
        if kind == "Begin":
            self.report_begin(
                session_id=data["id"],
                customer_id=customer_id,
                model=model,
                project=project,
                dimensions=dimensions,
            )
            return str(data["id"])
        if kind == "Termination":
            if not session_id:
                raise ValueError("a Termination needs the session_id of its Begin")
            session_seconds, audio_seconds = _durations(
                data.get("session_duration_seconds"), data.get("audio_duration_seconds")
            )
            self.report_termination(
                session_id=session_id,
                customer_id=customer_id,
                model=model,
                project=project,
                dimensions=dimensions,
                session_duration_seconds=session_seconds,
                audio_duration_seconds=audio_seconds,
            )
            return session_id
        return None

    def attach(
        self,
        client: Any,
        *,
        customer_id: str,
        model: str,
        project: str = "default",
        dimensions: dict[str, str] | None = None,
    ) -> None:
        """Report the Begin and Termination of every session of an assemblyai ``StreamingClient``.

        The SDK swallows exceptions raised in event handlers, so failures (after retries) are
        logged and kept in ``self.failures`` for the application to inspect or alert on."""
        from assemblyai.streaming.v3 import StreamingEvents

        state: dict[str, str] = {}
        lock = threading.Lock()

        def on_begin(_client: Any, event: Any) -> None:
            with lock:
                state["session_id"] = event.id
            self._guard(
                self.report_begin,
                session_id=event.id,
                customer_id=customer_id,
                model=model,
                project=project,
                dimensions=dimensions,
            )

        def on_termination(_client: Any, event: Any) -> None:
            with lock:
                session_id = state.get("session_id")
            if session_id is None:
                self.failures.append(ValueError("Termination without a Begin"))
                return
            try:
                session_seconds, audio_seconds = _durations(
                    event.session_duration_seconds, event.audio_duration_seconds
                )
            except ValueError as exc:
                self.failures.append(exc)
                return
            self._guard(
                self.report_termination,
                session_id=session_id,
                customer_id=customer_id,
                model=model,
                project=project,
                dimensions=dimensions,
                session_duration_seconds=session_seconds,
                audio_duration_seconds=audio_seconds,
            )

        client.on(StreamingEvents.Begin, on_begin)
        client.on(StreamingEvents.Termination, on_termination)

    def _guard(self, call: Callable[..., dict[str, Any]], **kwargs: Any) -> None:
        try:
            call(**kwargs)
        except Exception as exc:
            logger.exception("usage report failed for session %s", kwargs.get("session_id"))
            self.failures.append(exc)
