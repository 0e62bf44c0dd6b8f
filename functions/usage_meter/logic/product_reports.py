"""Recording a product usage report (LLM Gateway, Voice Agent API, Sync API) exactly once.

The same one-transaction ledger + aggregate write as transcripts and streaming sessions, keyed by
the product and the report's usage source id: a retry with the same figures is a duplicate
(nothing added), the same id with other figures is a conflict (quarantined with both versions,
refused), never billed twice nor silently replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from usage_meter.logic.errors import Rejection, RequestRejected
from usage_meter.logic.ports import UsageLedger, UsageMetrics
from usage_meter.logic.quarantine import quarantine_item
from usage_meter.logic.recording import record_once
from usage_meter.models.products import ProductUsage
from usage_meter.models.usage import QuarantineItem, QuarantineReason, RecordResult

RECORDED_METRIC = {
    "llm_gateway": "LlmGatewayResponsesRecorded",
    "voice_agent": "VoiceAgentSessionsRecorded",
    "sync": "SyncRequestsRecorded",
}


@dataclass(frozen=True)
class ProductReportResult:
    outcome: Literal["recorded", "duplicate"]
    source_id: str


def record_product_usage(
    report: ProductUsage, ledger: UsageLedger, metrics: UsageMetrics
) -> ProductReportResult:
    """Bill ``report`` once. Raises RequestRejected (CONFLICT) after quarantining a conflict, and
    TransientFailure when the table is unavailable (the app retries; the retry is a duplicate
    if the first write landed)."""
    record = report.to_record()
    outcome = record_once(ledger, record)
    if outcome.result is RecordResult.RECORDED:
        metrics.count(RECORDED_METRIC[record.product])
        if record.product == "llm_gateway":
            metrics.count("LlmGatewayInputTokens", record.input_tokens)
            metrics.count("LlmGatewayOutputTokens", record.output_tokens)
        else:
            metrics.count("UsageSecondsRecorded", float(record.billable_seconds), "Seconds")
        return ProductReportResult("recorded", record.source_id)
    if outcome.result is RecordResult.DUPLICATE:
        metrics.count("DuplicateReport")
        return ProductReportResult("duplicate", record.source_id)
    existing = outcome.existing
    detail = (
        f"{record.product} usage {record.source_id} was already reported with different "
        f"figures: ({existing.describe_facts() if existing else '?'}) vs "
        f"({record.describe_facts()})"
    )
    quarantine_item(
        ledger,
        metrics,
        QuarantineItem(
            source_id=record.source_id,
            reason=QuarantineReason.REPORT_CONFLICT,
            detail=detail,
            message={"product": record.product, **json.loads(report.model_dump_json())},
            quarantined_at=datetime.now(UTC),
        ),
    )
    metrics.count("UsageConflict")
    raise RequestRejected(Rejection.CONFLICT, "conflict", detail)
