"""Scheduled sweep: streaming sessions that began longer ago than AssemblyAI's limit and never
reported a termination are billed at the limit (estimated) or flagged, per ORPHAN_POLICY."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.session_store import DynamoSessionStore
from usage_meter.handlers.limits_wiring import watched_ledger
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.streaming_sessions import settle_orphans
from usage_meter.models.rules import OrphanPolicy
from usage_meter.settings import OrphanSettings, orphan_settings

SETTINGS = OrphanSettings
logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = orphan_settings()
    report = settle_orphans(
        watched_ledger(settings, settings.table_name, PowertoolsMetrics(metrics)),
        DynamoSessionStore(aws_clients.dynamodb(), settings.table_name),
        PowertoolsMetrics(metrics),
        OrphanPolicy(settings.policy),
        now=datetime.now(UTC),
        lookback=timedelta(days=settings.lookback_days),
    )
    summary = {"policy": settings.policy, **asdict(report)}
    logger.info("orphaned sessions settled", extra=summary)
    return summary
