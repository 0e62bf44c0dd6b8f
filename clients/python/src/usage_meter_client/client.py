"""Helpers for the *application* that uses AssemblyAI (standard library only; not in the Lambda).

Async transcripts: build the webhook URL and auth header for a customer, ready for
``assemblyai.TranscriptionConfig(...).set_webhook(...)``::

    target = webhook_target("https://<api>/webhooks/assemblyai", "acme-corp",
                            auth_header_value=webhook_secret,  # from your secret store
                            dimensions={"plan": "pro"})
    config = configure_webhook(aai.TranscriptionConfig(speech_models=["universal-3-pro"]), target)

Streaming: report each session's begin and termination, signed, with retries::

    reporter = UsageReporter("https://<api>", report_signing_secret)
    client = StreamingClient(StreamingClientOptions(api_key=...))
    params = StreamingParameters(sample_rate=16000, keyterms_prompt=["AcmeCloud"])
    reporter.attach(client, customer_id="acme-corp", model="universal-streaming-english",
                    params=params)          # add-ons read from params (keyterms_prompt here)
    client.connect(params)

or, for apps that read AssemblyAI's raw ``Begin``/``Termination`` JSON themselves::

    reporter.report_message(raw_json, customer_id="acme-corp", model="u3-rt-pro")

Plans and limits: ask before starting work (SigV4-signed; see ``entitlement``)::

    answer = EntitlementClient("https://<api>", region="eu-west-1").check("acme-corp", "async")
    if not answer.allowed: ...
Other products (``products``): LLM Gateway responses, Sync API results, Voice Agent sessions::

    completion = openai_client.chat.completions.create(model="claude-sonnet-4-6", ...)
    reporter.report_llm_gateway(completion, customer_id="acme-corp",
                                base_url=str(openai_client.base_url))
    reporter.report_sync(sync_result, customer_id="acme-corp", model="universal-3-5-pro")
    reporter.report_voice_agent(session_id=..., customer_id="acme-corp", duration_seconds=312)

``attach`` also reports the ``LLMGatewayResponse`` events of a streaming session that runs LLM
Gateway on its turns (``StreamingParameters(llm_gateway=...)``).

Forwarded notifications: check that a notification the meter forwarded to your webhook endpoint
really comes from the meter (Standard Webhooks headers), before trusting its body::

    notification_id = verify_forwarded_notification(forward_signing_secret, headers, raw_body)
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

from usage_meter_client._identifiers import (
    InvalidIdentifier,
    check_attribution,
    normalize_customer_id,
)
from usage_meter_client._limits import WEBHOOK_MAX_DIMENSIONS
from usage_meter_client._standard_webhooks import (
    InvalidSignature,
    secret_key,
    signed_headers,
    verify,
)
from usage_meter_client.entitlement import (
    EntitlementAnswer,
    EntitlementClient,
    EntitlementUnavailable,
)
from usage_meter_client.products import (
    LLM_GATEWAY_PATH,
    SYNC_PATH,
    VOICE_AGENT_PATH,
    field_of,
    llm_gateway_document,
    sync_document,
    voice_agent_document,
)

DEFAULT_AUTH_HEADER_NAME = "X-Usage-Meter-Webhook-Secret"
BEGIN_PATH = "/streaming/sessions/begin"
TERMINATION_PATH = "/streaming/sessions/termination"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
logger = logging.getLogger(__name__)


__all__ = [
    "EntitlementAnswer",
    "EntitlementClient",
    "EntitlementUnavailable",
    "InvalidIdentifier",
    "InvalidSignature",
    "ReportRejected",
    "UsageReporter",
    "WebhookTarget",
    "configure_webhook",
    "streaming_add_ons",
    "verify_forwarded_notification",
    "webhook_target",
]


def verify_forwarded_notification(
    signing_secret: str,
    headers: dict[str, str],
    raw_body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> str:
    """Verify a notification the meter forwarded; returns its ``webhook-id``.

    ``signing_secret`` is the ``current`` value of ``<SecretsPrefix>/forward-signing``
    (``whsec_...``); ``headers`` are the request's headers (any case); ``raw_body`` the bytes as
    received, before any JSON parsing. Raises InvalidSignature when the ``webhook-signature``
    does not match, the ``webhook-timestamp`` is more than ``tolerance_seconds`` from now, or a
    header is missing. The id is the same for every copy of one AssemblyAI notification: keep
    the ids you processed to drop duplicates. Standard library only (Standard Webhooks, v1).
    """
    return verify(signing_secret, headers, raw_body, now=now, tolerance_seconds=tolerance_seconds)


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
    """The webhook URL that attributes a transcript to ``customer_id`` (NFC-normalized and
    checked with the same rules the service applies, so a bad id fails here with
    ``InvalidIdentifier`` rather than as usage held in quarantine).

    Raises ``ValueError`` for a base URL that is not http(s), has no host, or carries a query
    string or fragment (the service would see two ``customer_id``s and quarantine the usage),
    and for an empty ``auth_header_value`` (the intake answers 401 and AssemblyAI stops
    retrying a 4xx)."""
    _check_webhook_base(webhook_base_url, auth_header_value)
    dimensions = dimensions or {}
    customer_id = normalize_customer_id(customer_id)
    check_attribution(customer_id, project, dimensions, max_dimensions=WEBHOOK_MAX_DIMENSIONS)
    query: dict[str, str] = {"customer_id": customer_id}
    if project != "default":
        query["project"] = project
    query.update(sorted(dimensions.items()))
    return WebhookTarget(
        url=f"{webhook_base_url}?{urlencode(query)}",
        auth_header_name=auth_header_name,
        auth_header_value=auth_header_value,
    )


def _check_webhook_base(webhook_base_url: str, auth_header_value: str) -> None:
    parts = urlsplit(webhook_base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"webhook base URL must be an http(s) URL with a host, got {webhook_base_url[:80]!r}"
        )
    if parts.query or parts.fragment or "?" in webhook_base_url or "#" in webhook_base_url:
        raise ValueError(
            "webhook base URL must have no query string or fragment (the attribution is added "
            f"as the query), got {webhook_base_url[:80]!r}"
        )
    if not auth_header_value or not auth_header_value.strip():
        raise ValueError(
            "auth_header_value must not be empty: the intake answers 401 and AssemblyAI does "
            "not retry a 4xx"
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


def _expiry(value: Any) -> str | None:
    """A Begin's ``expires_at`` as ISO 8601 UTC: unix seconds on the wire, a datetime in the SDK
    (naive datetimes are UTC). None when absent or unreadable (the report is still sent)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, str) and value:
        try:
            return _expiry(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


# Streaming parameters that AssemblyAI bills as add-ons, as the price table names them. Sources:
# docs "Keyterms prompting for Universal-Streaming" ($0.04/hour); "Streaming Diarization"
# (``speaker_labels``); the Medical Mode / PII options exist on streaming too (SDK 1.8.2
# ``StreamingParameters.domain`` / ``redact_pii``) and are reported so the price table decides.
STREAMING_BOOLEAN_ADD_ONS = ("speaker_labels", "redact_pii")


def streaming_add_ons(params: Any) -> tuple[str, ...]:
    """The billable add-ons of an assemblyai ``StreamingParameters`` (or a dict of them):
    ``keyterms_prompt`` when the list is not empty, ``speaker_labels`` / ``redact_pii`` when
    true, ``domain:<value>`` when a domain is set. Sorted, without duplicates."""
    if params is None:
        return ()

    def read(name: str) -> Any:
        return params.get(name) if isinstance(params, dict) else getattr(params, name, None)

    found = [name for name in STREAMING_BOOLEAN_ADD_ONS if read(name) is True]
    if read("keyterms_prompt"):
        found.append("keyterms_prompt")
    domain = read("domain")
    if domain:
        found.append(f"domain:{getattr(domain, 'value', domain)}")
    return tuple(sorted(set(found)))


@dataclass
class UsageReporter:
    """Signs (Standard Webhooks) and sends usage reports, retrying transient failures with
    backoff. ``signing_secret``: the ``current`` value of ``<SecretsPrefix>/report-signing``,
    ``whsec_<base64 key>``; any other shape raises ValueError here."""

    base_url: str
    signing_secret: str = field(repr=False)
    timeout_seconds: float = 5.0
    attempts: int = 4
    backoff_seconds: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    failures: list[Exception] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            secret_key(self.signing_secret)
        except ValueError as exc:
            raise ValueError(
                "signing_secret must be the report-signing secret's current value, "
                "whsec_ followed by base64 (Standard Webhooks)"
            ) from exc

    def _post(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        """POST one report signed with Standard Webhooks: one ``webhook-id`` for the report,
        a fresh ``webhook-timestamp`` and signature for each attempt."""
        body = json.dumps(document, separators=(",", ":"), default=str).encode()
        message_id = f"msg_{uuid.uuid4().hex}"
        last: Exception | None = None
        for attempt in range(self.attempts):
            headers = {
                "content-type": "application/json",
                **signed_headers([self.signing_secret], message_id, int(time.time()), body),
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
        add_ons: tuple[str, ...] | list[str] = (),
        expires_at: Any = None,
        max_session_duration_seconds: int | None = None,
    ) -> dict[str, Any]:
        """``expires_at``: the Begin's (unix seconds or datetime); ``max_session_duration_seconds``:
        the cap of the temporary token the session was opened with. Either bounds the estimate
        billed if the session's termination is never reported."""
        document: dict[str, Any] = {
            "session_id": session_id,
            "customer_id": customer_id,
            "project": project,
            "dimensions": dimensions or {},
            "model": model,
            "began_at": _iso(began_at),
            "add_ons": sorted(set(add_ons)),
        }
        expiry = _expiry(expires_at)
        if expiry:
            document["expires_at"] = expiry
        if max_session_duration_seconds is not None:
            document["max_session_duration_seconds"] = max_session_duration_seconds
        return self._post(BEGIN_PATH, document)

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
        add_ons: tuple[str, ...] | list[str] = (),
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "session_id": session_id,
            "customer_id": customer_id,
            "project": project,
            "dimensions": dimensions or {},
            "ended_at": _iso(ended_at),
            "session_duration_seconds": str(session_duration_seconds),
            "audio_duration_seconds": str(audio_duration_seconds),
            "add_ons": sorted(set(add_ons)),
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
        add_ons: tuple[str, ...] | list[str] = (),
        max_session_duration_seconds: int | None = None,
    ) -> str | None:
        """Report AssemblyAI's raw ``Begin`` or ``Termination`` JSON. A Termination carries no
        session id: pass the one returned for its Begin. ``add_ons``: the session's billable
        options (``streaming_add_ons(params)``). A Begin's ``expires_at`` is sent along. Returns
        the session id (None for other message types, which are ignored)."""
        data = json.loads(message) if isinstance(message, str) else message
        kind = data.get("type")
        if kind == "Begin":
            self.report_begin(
                session_id=data["id"],
                customer_id=customer_id,
                model=model,
                project=project,
                dimensions=dimensions,
                add_ons=add_ons,
                expires_at=data.get("expires_at"),
                max_session_duration_seconds=max_session_duration_seconds,
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
                add_ons=add_ons,
                session_duration_seconds=session_seconds,
                audio_duration_seconds=audio_seconds,
            )
            return session_id
        return None

    def report_llm_gateway(
        self, response: Any, *, customer_id: str, **options: Any
    ) -> dict[str, Any]:
        """Report one LLM Gateway chat-completions response (dict or SDK object); ``options`` as
        ``products.llm_gateway_document`` (``base_url`` or ``region``, ``project``,
        ``dimensions``, ``model``, ``session_id``)."""
        document = llm_gateway_document(response, customer_id=customer_id, **options)
        return self._post(LLM_GATEWAY_PATH, document)

    def report_sync(
        self, result: Any, *, customer_id: str, model: str, **options: Any
    ) -> dict[str, Any]:
        """Report one Sync API result (``SyncTranscriptResponse`` or its JSON)."""
        document = sync_document(result, customer_id=customer_id, model=model, **options)
        return self._post(SYNC_PATH, document)

    def report_voice_agent(self, **fields: Any) -> dict[str, Any]:
        """Report one Voice Agent session (``products.voice_agent_document`` fields)."""
        return self._post(VOICE_AGENT_PATH, voice_agent_document(**fields))

    def attach(
        self,
        client: Any,
        *,
        customer_id: str,
        model: str,
        project: str = "default",
        dimensions: dict[str, str] | None = None,
        params: Any = None,
        add_ons: tuple[str, ...] | list[str] = (),
        max_session_duration_seconds: int | None = None,
    ) -> None:
        """Report the Begin and Termination of every session of an assemblyai ``StreamingClient``.

        ``params``: the ``StreamingParameters`` passed to ``client.connect`` (the SDK does not
        keep them): its billable add-ons are reported (``streaming_add_ons``), with any given in
        ``add_ons``. ``max_session_duration_seconds``: the cap of the temporary token, if any;
        the Begin's ``expires_at`` is sent either way. The SDK swallows exceptions raised in
        event handlers, so failures (after retries) are logged and kept in ``self.failures``
        for the application to inspect or alert on."""
        from assemblyai.streaming.v3 import StreamingEvents

        billed = tuple(sorted({*streaming_add_ons(params), *add_ons}))

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
                add_ons=billed,
                expires_at=getattr(event, "expires_at", None),
                max_session_duration_seconds=max_session_duration_seconds,
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
                add_ons=billed,
                session_duration_seconds=session_seconds,
                audio_duration_seconds=audio_seconds,
            )

        llm_model = field_of(field_of(params, "llm_gateway"), "model")

        def on_llm_response(_client: Any, event: Any) -> None:
            with lock:
                session_id = state.get("session_id")
            if session_id is None:
                self.failures.append(ValueError("LLMGatewayResponse without a Begin"))
                return
            self._guard(
                self.report_llm_gateway,
                response=field_of(event, "data"),
                customer_id=customer_id,
                project=project,
                dimensions=dimensions,
                model=llm_model,
                session_id=session_id,
                fallback_id=f"{session_id}-turn-{field_of(event, 'turn_order')}",
            )

        client.on(StreamingEvents.Begin, on_begin)
        client.on(StreamingEvents.Termination, on_termination)
        client.on(StreamingEvents.LLMGatewayResponse, on_llm_response)

    def _guard(self, call: Callable[..., dict[str, Any]], **kwargs: Any) -> None:
        try:
            call(**kwargs)
        except Exception as exc:
            logger.exception("usage report failed for session %s", kwargs.get("session_id"))
            self.failures.append(exc)
