"""EventBridge: publishing the meter's events on its bus (one adapter for every publisher).

``EventBridgePublisher.publish(detail_type, detail)`` puts one event with ``source`` =
``usage-meter`` on the configured bus; any AWS error, throttling, or a per-entry failure that
PutEvents reports in its answer (``FailedEntryCount``) becomes TransientFailure, so the caller
decides: the intake answers 503 (AssemblyAI retries), the processor retries the message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.logic.errors import TransientFailure
from usage_meter.models.notification_event import EVENT_SOURCE

MAX_EVENT_BYTES = 256 * 1024  # EventBridge's limit per entry


CORRELATION_FIELD = "correlation_id"


class EventBridgePublisher:
    """Publishes JSON details on one bus (name or ARN). ``client`` is a botocore events client;
    ``correlation_id()``: the id of the request being handled (or None), added to each detail
    as ``correlation_id`` (handlers/correlation.py)."""

    def __init__(
        self,
        client: Any,
        bus_name: str,
        source: str = EVENT_SOURCE,
        correlation_id: Callable[[], str | None] | None = None,
    ) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source
        self._correlation_id = correlation_id

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Put one event. Raises TransientFailure when EventBridge did not take it."""
        correlation = self._correlation_id() if self._correlation_id else None
        if correlation and CORRELATION_FIELD not in detail:
            detail = {**detail, CORRELATION_FIELD: correlation}
        body = json.dumps(detail, separators=(",", ":"), sort_keys=True)
        if len(body.encode()) > MAX_EVENT_BYTES:
            raise ValueError(f"event detail exceeds {MAX_EVENT_BYTES} bytes")
        entry = {
            "EventBusName": self._bus,
            "Source": self._source,
            "DetailType": detail_type,
            "Detail": body,
        }
        try:
            answer = self._client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(f"could not publish event: {type(exc).__name__}") from exc
        if answer.get("FailedEntryCount"):
            code = (answer.get("Entries") or [{}])[0].get("ErrorCode", "unknown")
            raise TransientFailure(f"EventBridge refused the event: {code}")


class NoConsumerPublisher:
    """The stand-in for the bus when nothing consumes notification events (template parameter
    NotificationEvents ``auto`` with no ForwardUrl, no EventsEndpointUrl and the stack's own bus):
    publishing is skipped, so a webhook costs no PutEvents (EventBridge bills $1.00 per million
    events published, https://aws.amazon.com/eventbridge/pricing/)."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Publish nothing (there is no consumer); never raises."""
        del detail_type, detail


def notification_publisher(
    enabled: bool,
    client_factory: Any,
    bus_name: str,
    correlation_id: Callable[[], str | None] | None = None,
) -> EventBridgePublisher | NoConsumerPublisher:
    """The notification events' publisher: EventBridge when ``enabled`` (each detail with the
    ``correlation_id()`` of the request being handled), else nothing (the events client,
    ``client_factory()``, is then never created)."""
    if not enabled:
        return NoConsumerPublisher()
    return EventBridgePublisher(client_factory(), bus_name, correlation_id=correlation_id)
