"""What a reseller's application does to hear the meter's threshold events: a rule on the meter's
bus delivering to the application's own SQS queue. Used by the demo and the tests.

The pattern is written as README "Plans and limits" tells an application to write it (the
documented source and detail-type, spelled out here rather than imported, so a change on the
meter's side shows up as a failing test or demo).
"""

from __future__ import annotations

import json
from typing import Any

THRESHOLD_EVENTS_PATTERN = {"source": ["usage-meter"], "detail-type": ["Usage Threshold Reached"]}


def subscribe_queue(sqs: Any, events: Any, bus: str, queue_name: str, rule_name: str) -> str:
    """Create queue ``queue_name`` and rule ``rule_name`` on ``bus`` that delivers every
    threshold event to it; returns the queue URL. ``sqs``/``events`` are boto3 clients."""
    url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=rule_name, EventBusName=bus, EventPattern=json.dumps(THRESHOLD_EVENTS_PATTERN)
    )
    events.put_targets(Rule=rule_name, EventBusName=bus, Targets=[{"Id": "app", "Arn": arn}])
    return url
