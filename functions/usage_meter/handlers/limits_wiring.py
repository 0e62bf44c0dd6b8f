"""Wiring shared by every function that records usage: a ledger that evaluates allowance
thresholds after each write (see logic/thresholds.py)."""

from __future__ import annotations

from usage_meter.adapters import aws_clients
from usage_meter.adapters.limits_table import DynamoLimits
from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.threshold_events import EventBridgeThresholdPublisher
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.ports import UsageMetrics
from usage_meter.logic.thresholds import ThresholdWatcher
from usage_meter.settings import ThresholdAlertSettings


def threshold_watcher(
    settings: ThresholdAlertSettings, table_name: str, metrics: UsageMetrics
) -> ThresholdWatcher:
    topic = settings.limit_alert_topic_arn or None
    return ThresholdWatcher(
        store=DynamoLimits(aws_clients.dynamodb(), table_name),
        publisher=EventBridgeThresholdPublisher(
            aws_clients.events(),
            settings.event_bus_name,
            aws_clients.sns() if topic else None,
            topic,
        ),
        prices=load_price_table(settings.price_table_path),
        metrics=metrics,
    )


def watched_ledger(
    settings: ThresholdAlertSettings, table_name: str, metrics: UsageMetrics
) -> DynamoUsageLedger:
    """The usage ledger, evaluating thresholds after every change of a customer's usage (not
    at all when neither an event bus nor a topic is configured). With allowances off (template
    parameter Allowances) it keeps no customer-month summary and evaluates nothing."""
    if not settings.allowances:
        return DynamoUsageLedger(aws_clients.dynamodb(), table_name, usage_summary=False)
    if not settings.event_bus_name and not settings.limit_alert_topic_arn:
        return DynamoUsageLedger(aws_clients.dynamodb(), table_name)
    watcher = threshold_watcher(settings, table_name, metrics)
    return DynamoUsageLedger(aws_clients.dynamodb(), table_name, watcher.evaluate)
