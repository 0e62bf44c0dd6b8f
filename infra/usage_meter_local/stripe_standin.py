"""A local stand-in for Stripe's ``POST /v1/billing/meter_events``, for the official ``stripe`` SDK.

It answers as Stripe's API reference documents ("Create a billing meter event"): a form-encoded
body with ``event_name``, ``payload[stripe_customer_id]``, ``payload[value]``, ``identifier`` and
``timestamp``; Bearer authentication; the ``billing.meter_event`` object back. It enforces what the
reference states: a known meter's event name, a timestamp within the past 35 days or up to 5
minutes ahead, a unique identifier. Stripe does not document its answer to a repeated identifier;
the stand-in answers 400 ``invalid_request_error`` and does not count the event, which is all the
sink relies on (it never counts a refused event and never resends a marked one).

Test controls: ``state.fail_next`` (HTTP statuses to answer before succeeding) and
``state.events`` (what was accepted).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from usage_meter_local.background_server import BackgroundServer, StatefulHTTPServer

MAX_AGE_SECONDS = 35 * 24 * 3600
MAX_FUTURE_SECONDS = 5 * 60


@dataclass
class StripeState:
    api_key: str = "sk_test_local_standin"
    meters: set[str] = field(default_factory=lambda: {"assemblyai_audio_seconds"})
    events: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def totals(self) -> dict[str, Decimal]:
        """Summed ``payload[value]`` per Stripe customer (what a sum meter would show)."""
        out: dict[str, Decimal] = {}
        for event in self.events:
            customer = event["payload"]["stripe_customer_id"]
            out[customer] = out.get(customer, Decimal(0)) + Decimal(event["payload"]["value"])
        return out


def _error(status: int, kind: str, message: str, code: str | None = None) -> tuple[int, Any]:
    return status, {"error": {"type": kind, "message": message, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    server: StatefulHTTPServer[StripeState]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        status, body = self._create(form)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _create(self, form: dict[str, str]) -> tuple[int, Any]:
        state = self.server.state
        with state.lock:
            state.requests += 1
            if self.path != "/v1/billing/meter_events":
                return _error(404, "invalid_request_error", f"Unrecognized request URL {self.path}")
            if self.headers.get("authorization") != f"Bearer {state.api_key}":
                return _error(401, "invalid_request_error", "Invalid API Key provided")
            if state.fail_next:
                failure = state.fail_next.pop(0)
                return _error(failure, "api_error", "stand-in failure")
            name, identifier = form.get("event_name", ""), form.get("identifier", "")
            customer, value = form.get("payload[stripe_customer_id]"), form.get("payload[value]")
            if name not in state.meters:
                return _error(400, "invalid_request_error", f"No active meter for {name!r}")
            if not customer or value is None:
                return _error(400, "invalid_request_error", "payload is missing a required key")
            now, stamp = int(time.time()), int(form.get("timestamp") or time.time())
            if not now - MAX_AGE_SECONDS <= stamp <= now + MAX_FUTURE_SECONDS:
                return _error(400, "invalid_request_error", "timestamp out of range")
            if any(e["identifier"] == identifier for e in state.events):
                return _error(400, "invalid_request_error", "identifier already used")
            event = {
                "object": "billing.meter_event",
                "created": now,
                "event_name": name,
                "identifier": identifier,
                "livemode": False,
                "payload": {"stripe_customer_id": customer, "value": value},
                "timestamp": stamp,
            }
            state.events.append(event)
            return 200, event


class StripeStandIn(BackgroundServer):
    """``with StripeStandIn() as stripe_api: stripe_api.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = StripeState()
        super().__init__(StatefulHTTPServer((host, port), _Handler, self.state), "stripe-standin")
