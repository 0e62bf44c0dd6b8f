"""Threshold events out: the meter's EventBridge bus, and an optional SNS topic.

EventBridge entry: ``Source`` ``usage-meter``, ``DetailType`` ``Usage Threshold Reached``,
``Detail`` the ThresholdEvent as JSON (decimals as strings), ``Resources`` empty. A rule on the
bus matching ``{"source": ["usage-meter"], "detail-type": ["Usage Threshold Reached"]}`` delivers
it to the application (SQS, Lambda, API destination...). The SNS message is the same JSON, with
the subject ``usage threshold <percent>% reached: <customer> <month>``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.logic.errors import TransientFailure
from usage_meter.models.limits import ThresholdEvent
from usage_meter.models.notification_event import EVENT_SOURCE

SOURCE = EVENT_SOURCE  # the one source of every event the meter publishes
DETAIL_TYPE = "Usage Threshold Reached"


class EventBridgeThresholdPublisher:
    """Publishes to ``bus_name``; also to ``topic_arn`` when it is set. Raises TransientFailure
    when either refuses (the marker is released and the caller retries)."""

    def __init__(
        self, events: Any, bus_name: str, sns: Any | None = None, topic_arn: str | None = None
    ) -> None:
        self._events = events
        self._bus = bus_name
        self._sns = sns
        self._topic = topic_arn

    def publish(self, event: ThresholdEvent) -> None:
        detail = event.model_dump_json()
        try:
            answer = (
                {}
                if not self._bus
                else self._events.put_events(
                    Entries=[
                        {
                            "EventBusName": self._bus,
                            "Source": SOURCE,
                            "DetailType": DETAIL_TYPE,
                            "Detail": detail,
                            "Time": event.reached_at,
                        }
                    ]
                )
            )
            if answer.get("FailedEntryCount"):
                failed = answer.get("Entries", [{}])[0]
                raise TransientFailure(
                    f"EventBridge refused the threshold event: {failed.get('ErrorCode')}"
                )
            if self._sns is not None and self._topic:
                self._sns.publish(
                    TopicArn=self._topic,
                    Subject=f"usage threshold {event.threshold_percent}% reached: "
                    f"{event.customer_id} {event.month}"[:100],
                    Message=detail,
                )
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(f"could not publish the threshold event: {exc}") from exc
