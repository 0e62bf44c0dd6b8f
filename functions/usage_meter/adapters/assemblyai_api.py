"""AssemblyAI through the official ``assemblyai`` SDK: one client per project, one GET per attempt.

Never ``aai.Transcript.get_by_id``: it uses the global key and polls every 3 s with no timeout.
Each project has its own API key (a key cannot read another project's transcripts) and base URL
(US or EU). Every request first waits for a slot of the deployment's shared request budget
(adapters/request_budget.py), and a 429 pushes that budget back for every worker.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import assemblyai as aai
import httpx

from usage_meter.adapters import aws_clients
from usage_meter.adapters.request_budget import SharedRequestPacer
from usage_meter.adapters.secrets import CachedSecret, api_key_from_secret
from usage_meter.logic.errors import (
    ASSEMBLYAI_CLIENT_ERROR,
    PermanentFailure,
    TranscriptNotFound,
    TransientFailure,
)
from usage_meter.models.rules import TRANSCRIPT_LIST_PAGE_LIMIT
from usage_meter.settings import AssemblyAISettings, ProjectConfig

# Retry-After is delay-seconds (ASCII digits) or an HTTP-date (RFC 9110 section 10.2.3). A longer
# wait than this is not plausible from a rate limiter; such a value, like any unreadable one, is
# ignored and the normal backoff applies.
MAX_RETRY_AFTER_SECONDS = 3600
PENALTY_SECONDS = 30  # a 429 without a usable Retry-After holds the shared budget back this long
_DELAY_SECONDS = re.compile(r"[0-9]{1,9}")
AUTH_REASON = "assemblyai_auth"


class Pacer(Protocol):
    def wait(self) -> None:
        """Block until the next request may go."""
        ...

    def penalize(self, retry_after_seconds: float) -> None:
        """AssemblyAI answered 429: hold back for ``retry_after_seconds``."""
        ...


class RequestPacer:
    """At most ``rate`` requests per second from this process (a simple interval pacer; the
    deployed functions use the shared ``SharedRequestPacer``)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._sleep(self._next - now)
                now = self._next
            self._next = now + self._interval

    def penalize(self, retry_after_seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, self._clock() + retry_after_seconds)


def parse_retry_after(value: str | None, now: datetime | None = None) -> int | None:
    """Seconds to wait from a ``Retry-After`` header, or None when it is absent, unreadable or
    implausible (``inf``, ``nan``, ``1e9``, negative, full-width digits, a date in the past or
    more than ``MAX_RETRY_AFTER_SECONDS`` away): the caller then uses its normal backoff.

    RFC 9110 section 10.2.3: ``Retry-After = HTTP-date / delay-seconds``, delay-seconds being
    ``1*DIGIT`` (ASCII). Never raises.
    """
    text = (value or "").strip()
    if _DELAY_SECONDS.fullmatch(text):
        seconds = int(text)
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:
            return None
        remaining = (moment - (now or datetime.now(UTC))).total_seconds()
        seconds = int(remaining) if remaining > 0 else 0
    if seconds > MAX_RETRY_AFTER_SECONDS:
        return None
    return max(1, seconds)


class AssemblyAITranscripts:
    def __init__(
        self,
        projects: dict[str, ProjectConfig],
        api_key_for: Callable[[str, bool], str],
        http_timeout_seconds: float,
        pacer: Pacer,
    ) -> None:
        self._projects = projects
        self._api_key_for = api_key_for
        self._timeout = http_timeout_seconds
        self._pacer = pacer
        self._clients: dict[str, tuple[str, aai.Client]] = {}

    def _client(self, project: str, refresh: bool = False) -> aai.Client:
        key = self._api_key_for(project, refresh)
        cached = self._clients.get(project)
        if cached and cached[0] == key:
            return cached[1]
        config = self._projects[project]
        client = aai.Client(
            settings=aai.Settings(
                api_key=key,
                base_url=str(config.base_url).rstrip("/"),
                http_timeout=self._timeout,
            )
        )
        self._clients[project] = (key, client)
        return client

    def _get(self, project: str, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        client = self._client(project)
        try:
            return self._get_with(client, project, path, params)
        except PermanentFailure as exc:
            if exc.reason != AUTH_REASON:
                raise
            # The key may have been rotated since it was cached: read it again (at most every
            # 30 s), and try once more only if it changed.
            fresh = self._client(project, refresh=True)
            if fresh is client:
                raise
            return self._get_with(fresh, project, path, params)

    def _get_with(
        self, client: aai.Client, project: str, path: str, params: dict[str, Any] | None
    ) -> httpx.Response:
        self._pacer.wait()
        try:
            response: httpx.Response = client.http_client.get(path, params=params)
        except httpx.TimeoutException as exc:
            raise TransientFailure(f"AssemblyAI timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise TransientFailure(f"AssemblyAI unreachable ({type(exc).__name__})") from exc
        status = response.status_code
        if status == 200:
            return response
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            # slows every worker, not only this one (no usable Retry-After: the default wait)
            self._pacer.penalize(retry_after or PENALTY_SECONDS)
            raise TransientFailure("AssemblyAI rate limit (429)", retry_after)
        if status >= 500 or status == 408:
            raise TransientFailure(f"AssemblyAI server error ({status})")
        if status in (401, 403):
            raise PermanentFailure(
                AUTH_REASON, f"AssemblyAI rejected project '{project}' API key ({status})"
            )
        if status == 404:
            raise TranscriptNotFound(path)
        raise PermanentFailure(ASSEMBLYAI_CLIENT_ERROR, f"AssemblyAI answered {status}")

    def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
        response = self._get(project, f"/v2/transcript/{transcript_id}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise TransientFailure("AssemblyAI answered with invalid JSON") from exc
        if not isinstance(payload, dict):
            raise TransientFailure("AssemblyAI answered with an unexpected shape")
        return payload

    def list_page(
        self, project: str, before_id: str | None, limit: int = TRANSCRIPT_LIST_PAGE_LIMIT
    ) -> dict[str, Any]:
        """One page of the project's transcripts, newest first (``before_id`` pages older)."""
        params: dict[str, Any] = {"limit": limit}
        if before_id:
            params["before_id"] = before_id
        response = self._get(project, "/v2/transcript", params)
        try:
            payload = response.json()
        except ValueError as exc:
            raise TransientFailure("AssemblyAI answered with invalid JSON") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("transcripts"), list):
            raise TransientFailure("AssemblyAI list answered with an unexpected shape")
        return payload


def transcript_source(
    settings: AssemblyAISettings,
    table_name: str,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> AssemblyAITranscripts:
    """The per-project SDK clients, keys read from Secrets Manager (cached), paced by the
    deployment's shared request budget kept in the usage table.

    ``clock`` (epoch seconds) and ``sleep`` (seconds) are the budget's time: the functions use
    the real ones; a test passes a fake clock to see a 429's push-back without waiting for it."""
    key_secrets = {
        name: CachedSecret(
            aws_clients.secrets_manager(), config.api_key_secret_id, settings.secrets_cache_seconds
        )
        for name, config in settings.projects.items()
    }
    return AssemblyAITranscripts(
        projects={
            name: settings.project(name) or config for name, config in settings.projects.items()
        },
        api_key_for=lambda project, refresh: api_key_from_secret(
            key_secrets[project].value(refresh=refresh)
        ),
        http_timeout_seconds=settings.http_timeout_seconds,
        pacer=SharedRequestPacer(
            aws_clients.dynamodb(),
            table_name,
            settings.requests_per_5_minutes,
            clock=clock,
            sleep=sleep,
        ),
    )
