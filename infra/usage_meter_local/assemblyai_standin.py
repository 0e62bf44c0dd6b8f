"""A local stand-in for AssemblyAI's transcript API, so the real ``assemblyai`` SDK has something to
talk to on a machine with no internet: ``GET /v2/transcript/{id}`` and ``GET /v2/transcript``
(``limit``, ``status``, ``before_id``, ``after_id``, ``created_on``), in AssemblyAI's JSON shapes,
with per-project API keys and injectable faults (429 with Retry-After, 5xx, 401, slow answers).
A transcript created with ``api_key=`` belongs to that key's project, as on AssemblyAI: other keys
neither list it nor get it (404).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from usage_meter_local.background_server import BackgroundServer, StatefulHTTPServer
from usage_meter_local.recent import RecentList

MAX_LIST_LIMIT = 200


@dataclass
class Fault:
    status: int
    remaining: int
    retry_after: int | str | None = None  # a str is sent as is (e.g. "inf")
    delay_seconds: float = 0.0


@dataclass
class StandInState:
    """Transcripts by id (newest last in insertion order), accepted keys, faults, request log."""

    transcripts: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_keys: set[str] = field(default_factory=set)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=RecentList)  # the newest 10,000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, transcript: dict[str, Any]) -> None:
        with self.lock:
            self.transcripts[transcript["id"]] = transcript

    def fail(
        self,
        key: str,
        status: int,
        times: int = 1,
        retry_after: int | str | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        """Answer requests for ``key`` (a transcript id, or ``"list"``) with ``status``."""
        with self.lock:
            self.faults[key] = Fault(status, times, retry_after, delay_seconds)

    def take_fault(self, key: str) -> Fault | None:
        with self.lock:
            fault = self.faults.get(key)
            if fault is None or fault.remaining <= 0:
                return None
            fault.remaining -= 1
            return fault


def transcript(
    transcript_id: str,
    *,
    webhook_url: str | None,
    status: str = "completed",
    audio_duration: float | int | None = 60,
    speech_model_used: str | None = "universal-3-pro",
    multichannel: bool = False,
    audio_channels: int | None = None,
    language_code: str = "en_us",
    error: str | None = None,
    created: str | None = None,
    completed: str | None = None,
    api_key: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """A transcript object shaped like AssemblyAI's ``GET /v2/transcript/{id}`` answer."""
    body: dict[str, Any] = {
        "id": transcript_id,
        "status": status,
        "audio_url": f"https://example.invalid/audio/{transcript_id}.wav",
        "audio_duration": audio_duration if status == "completed" else None,
        "language_code": language_code,
        "speech_model": None,
        "speech_models": ["universal-3-pro", "universal-2"],
        "speech_model_used": speech_model_used if status == "completed" else None,
        "multichannel": multichannel or None,
        "text": "Stand-in transcript text. It must never be stored or logged."
        if status == "completed"
        else None,
        "words": [],
        "confidence": 0.93 if status == "completed" else None,
        "punctuate": True,
        "format_text": True,
        "webhook_url": webhook_url,
        "webhook_status_code": 200 if webhook_url else None,
        "webhook_auth": bool(webhook_url),
        "webhook_auth_header_name": "X-Usage-Meter-Webhook-Secret" if webhook_url else None,
        "speaker_labels": False,
        "entity_detection": False,
        "sentiment_analysis": False,
        "iab_categories": False,
        "content_safety": False,
        "auto_highlights": False,
        "summarization": False,
        "redact_pii": False,
        "redact_pii_audio": False,
        "filter_profanity": False,
        "error": error,
        # List-only metadata, stripped from GET answers (the real object has no timestamps).
        "_created": created or _now(),
        "_completed": completed or (_now() if status in ("completed", "error") else None),
        "_api_key": api_key,  # the project it belongs to (None: visible to every key)
    }
    if multichannel:
        body["audio_channels"] = audio_channels or 2
    body.update(options)
    return body


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


class _Handler(BaseHTTPRequestHandler):
    server: StatefulHTTPServer[StandInState]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        state.requests.append(("GET", parts.path))
        if state.api_keys and self.headers.get("authorization") not in state.api_keys:
            self._send(401, {"error": "Authentication error, API token missing/invalid"})
            return
        if parts.path == "/v2/transcript":
            self._fault_or(("list"), lambda: self._list(parse_qs(parts.query)))
            return
        prefix = "/v2/transcript/"
        if parts.path.startswith(prefix) and "/" not in parts.path[len(prefix) :]:
            transcript_id = parts.path[len(prefix) :]
            self._fault_or(transcript_id, lambda: self._get(transcript_id))
            return
        self._send(404, {"error": "Not found"})

    def _fault_or(self, key: str, action: Any) -> None:
        fault = self.server.state.take_fault(key)
        if fault is None:
            action()
            return
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
        message = "Too Many Requests" if fault.status == 429 else HTTPStatus(fault.status).phrase
        self._send(fault.status, {"error": message}, headers)

    def _visible(self, item: dict[str, Any]) -> bool:
        return item.get("_api_key") in (None, self.headers.get("authorization"))

    def _get(self, transcript_id: str) -> None:
        with self.server.state.lock:
            item = self.server.state.transcripts.get(transcript_id)
        if item is None or not self._visible(item):
            self._send(404, {"error": "Transcript not found"})
            return
        self._send(200, _public(item))

    def _list(self, query: dict[str, list[str]]) -> None:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        try:
            limit = int(one("limit") or 10)
        except ValueError:
            self._send(400, {"error": "limit must be an integer"})
            return
        if not 1 <= limit <= MAX_LIST_LIMIT:
            self._send(400, {"error": f"limit must be between 1 and {MAX_LIST_LIMIT}"})
            return
        with self.server.state.lock:
            items = list(reversed(self.server.state.transcripts.values()))  # newest first
        items = [i for i in items if self._visible(i)]
        if status := one("status"):
            items = [i for i in items if i["status"] == status]
        if created_on := one("created_on"):
            items = [i for i in items if str(i["_created"]).startswith(created_on)]
        ids = [i["id"] for i in items]
        if (before := one("before_id")) and before in ids:
            items = items[ids.index(before) + 1 :]
        if (after := one("after_id")) and after in ids:
            items = items[: ids.index(after)]
        page = items[:limit]
        base = f"http://{self.headers.get('host')}/v2/transcript"
        older = f"{base}?limit={limit}&before_id={page[-1]['id']}" if len(items) > limit else None
        newer = f"{base}?limit={limit}&after_id={page[0]['id']}" if page else None
        self._send(
            200,
            {
                "page_details": {
                    "limit": limit,
                    "result_count": len(page),
                    "current_url": f"{base}?{urlsplit(self.path).query}",
                    "prev_url": older,
                    "next_url": newer,
                },
                "transcripts": [
                    {
                        "id": i["id"],
                        "resource_url": f"{base}/{i['id']}",
                        "status": i["status"],
                        "created": i["_created"],
                        "completed": i["_completed"],
                        "audio_url": i["audio_url"],
                        "error": i.get("error"),
                    }
                    for i in page
                ],
            },
        )


class AssemblyAIStandIn(BackgroundServer):
    """Runs the stand-in on a background thread: ``with AssemblyAIStandIn() as api: api.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state: StandInState | None = None):
        self.state = state or StandInState()
        self._http: StatefulHTTPServer[StandInState] = StatefulHTTPServer(
            (host, port), _Handler, self.state
        )
        super().__init__(self._http, "assemblyai-standin")

    def reset(self) -> StandInState:
        """Forget every transcript, key, fault and logged request: one server can serve many
        tests, each starting from an empty state."""
        self.state = StandInState()
        self._http.state = self.state
        return self.state


@contextmanager
def running_standin(**kwargs: Any) -> Iterator[AssemblyAIStandIn]:
    with AssemblyAIStandIn(**kwargs) as api:
        yield api
