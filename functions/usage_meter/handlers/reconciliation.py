"""Scheduled reconciliation with AssemblyAI (also invocable with ``{"project": "...",
"horizon_days": N}``): records usage whose webhook never arrived, exactly once.

An invocation naming a project the meter does not know answers ``{"refused": "<why>"}`` (one line,
no traceback) and reconciles nothing."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.assemblyai_api import transcript_source
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.reconcile_store import DynamoReconcileStore
from usage_meter.handlers.limits_wiring import watched_ledger
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.reconciliation import reconcile_project
from usage_meter.logic.usage_processing import ProcessorDeps
from usage_meter.settings import (
    HORIZON_DAYS_MAX,
    HORIZON_DAYS_MIN,
    ReconcileSettings,
    reconcile_settings,
)

SETTINGS = ReconcileSettings
SAFETY_MARGIN_SECONDS = 30
logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = reconcile_settings()
    ledger = watched_ledger(settings, settings.table_name, PowertoolsMetrics(metrics))
    source = transcript_source(settings, settings.table_name)
    deps = ProcessorDeps(
        transcripts=source,
        ledger=ledger,
        metrics=PowertoolsMetrics(metrics),
        known_projects=frozenset(settings.projects),
        billing_dimensions=settings.billing_dimensions,
    )
    days = int(event.get("horizon_days") or settings.horizon_days)
    projects = [event["project"]] if event.get("project") else sorted(settings.projects)
    unknown = [p for p in projects if p not in settings.projects]
    if unknown:
        known = ", ".join(sorted(settings.projects))
        return {"refused": f"unknown project {str(unknown[0])[:64]!r} (the meter's: {known})"}
    reports = []
    for project in projects:
        report = reconcile_project(
            project,
            lister=source,
            store=DynamoReconcileStore(aws_clients.dynamodb(), settings.table_name),
            deps=deps,
            webhook_base_url=settings.webhook_base_url,
            horizon=timedelta(days=min(max(days, HORIZON_DAYS_MIN), HORIZON_DAYS_MAX)),
            max_items=settings.max_items_per_run,
            time_left=lambda: context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS,
            now=datetime.now(UTC),
            concurrency=settings.concurrency,
            # an operator's explicit horizon pages back to it, whatever earlier passes checked
            use_watermark=not event.get("horizon_days"),
        )
        summary = {
            "project": project,
            "complete": report.complete,
            "stopped_because": report.stopped_because,
            **asdict(report.counts),
        }
        logger.info("reconciliation report", extra=summary)
        reports.append(summary)
    return {"reports": reports}
