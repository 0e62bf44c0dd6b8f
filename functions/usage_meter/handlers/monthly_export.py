"""Scheduled monthly billing export (EventBridge Scheduler), also invocable for any month with
``{"month": "YYYY-MM"}``. Without a month it exports the previous UTC month. With
``{"late_usage": true}`` (hourly) it exports again the months that changed after they ended."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from usage_meter.adapters import aws_clients
from usage_meter.adapters.export_store import S3ExportStore
from usage_meter.adapters.late_marks import DynamoLateUsageMarks
from usage_meter.adapters.metrics import PowertoolsMetrics
from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.handlers.tracing import tracer
from usage_meter.logic.late_usage import export_late_usage
from usage_meter.logic.monthly_export import check_month, export_month, previous_month
from usage_meter.settings import ExportSettings, export_settings

SETTINGS = ExportSettings
logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def _dependencies() -> tuple[DynamoUsageReader, DynamoLateUsageMarks, S3ExportStore, str]:
    settings = export_settings()
    return (
        DynamoUsageReader(
            aws_clients.dynamodb(),
            settings.table_name,
            ledger_workers=settings.ledger_workers,
            client_factory=aws_clients.new_dynamodb,
        ),
        DynamoLateUsageMarks(aws_clients.dynamodb(), settings.table_name),
        S3ExportStore(aws_clients.s3(), settings.bucket_name, settings.prefix),
        settings.price_table_path,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler()
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reader, marks, store, price_path = _dependencies()
    if event.get("late_usage") is True:
        run = export_late_usage(
            marks, reader, store, load_price_table(price_path), PowertoolsMetrics(metrics)
        )
        logger.info("late usage export finished", extra=run.summary())
        return run.summary()
    month = check_month(str(event.get("month") or previous_month(datetime.now(UTC))))
    logger.info("export started", extra={"month": month})
    result = export_month(
        month, reader, store, load_price_table(price_path), PowertoolsMetrics(metrics)
    )
    summary = {
        "month": result.month,
        "status": result.status,
        "version": result.version,
        "row_count": result.row_count,
        "totals": result.manifest.get("totals"),
        "unpriced_rows": len(result.manifest.get("unpriced") or []),
        "held_customers": result.manifest.get("held") or [],
        "line_items": result.manifest.get("line_items"),
        "uncovered": {
            k: (result.manifest.get("coverage") or {}).get(k)
            for k in ("transcripts", "billable_seconds", "estimated_cost")
        },
        "price_table_version": result.manifest.get("price_table_version"),
    }
    logger.info("export finished", extra=summary)
    return summary
