"""A local stand-in for the *application's* own webhook endpoint (the forwarding target).

It keeps every delivery (path, query, headers, body, receipt time), checks each signature with the
application helper ``usage_meter_client.verify_forwarded_notification`` and answers 200, or
the status set in ``fail_with`` (to show a failing application ending in the forwarding DLQ).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from usage_meter_client import InvalidSignature, verify_forwarded_notification
from usage_meter_local.background_server import BackgroundServer, StatefulHTTPServer
from usage_meter_local.recent import RecentList

PATH = "/app/assemblyai-webhook"


@dataclass
class Delivery:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received: float  # time.time() when it arrived
    answered: int
    verified: bool
    problem: str | None = None


@dataclass
class ReceiverState:
    signing_secret: str = ""
    fail_with: int | None = None
    deliveries: list[Delivery] = field(default_factory=RecentList)  # the newest 10,000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if 200 <= d.answered < 300]


class _Handler(BaseHTTPRequestHandler):
    server: StatefulHTTPServer[ReceiverState]

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        state = self.server.state
        received = time.time()
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified, problem = True, None
        try:
            verify_forwarded_notification(state.signing_secret, headers, body)
        except InvalidSignature as exc:
            verified, problem = False, str(exc)
        status = state.fail_with or (200 if verified else 401)
        parts = urlsplit(self.path)
        delivery = Delivery(
            parts.path, parts.query, headers, body, received, status, verified, problem
        )
        with state.lock:
            state.deliveries.append(delivery)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


class AppReceiver(BackgroundServer):
    """``AppReceiver(host, port).start()``; ``.url`` is the endpoint to forward to."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = ReceiverState()
        super().__init__(StatefulHTTPServer((host, port), _Handler, self.state), "app-receiver")

    @property
    def url(self) -> str:
        return f"{super().url}{PATH}"
