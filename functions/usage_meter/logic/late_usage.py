"""Late usage reaches a billing file: months that changed after they ended are exported again.

Usage recorded into a month that has ended (reconciliation of a transcript completed on its last
day, a late streaming termination, an orphan estimate replaced, an operator's "bill to", a row
moved to the month of its first receipt) marks that month in the usage table, in the same
transaction as the usage itself. A schedule (hourly, ``MonthlyExportFunction`` with
``{"late_usage": true}``) exports each marked month that already has a published version again:
``export_month`` publishes version N+1 with its ``changes`` only when the files differ. Each new
version counts ``LateUsageExported`` (an alarm tells finance a month's file was superseded). A
month not yet exported keeps its mark until its first export has been published, then is checked
once more and cleared. One month's failure never stops the others: it is counted
(``LateUsageExportFailed``), reported and retried on the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.monthly_export import (
    ExportStore,
    LedgerMismatch,
    UsageReader,
    export_month,
)
from usage_meter.logic.ports import UsageMetrics
from usage_meter.models.billing import PriceTable
from usage_meter.models.months import usage_month

LATE_EXPORTED_METRIC = "LateUsageExported"
LATE_FAILED_METRIC = "LateUsageExportFailed"


def usage_is_late(month: str, now: datetime) -> bool:
    """Whether billable usage recorded ``now`` into ``month`` (YYYY-MM) is late: the month is
    before the current UTC month, so the write marks it for another export."""
    return month < usage_month(now)


class LateUsageMarks(Protocol):
    def late_months(self) -> list[tuple[str, int]]:
        """(month, marks seen so far) of every month marked since its last check."""
        ...

    def clear_late_month(self, month: str, seen: int) -> bool:
        """Unmark ``month`` unless a mark came after ``seen`` (then False, it stays marked)."""
        ...


@dataclass
class LateUsageRun:
    """What one run did, per month: ``published`` (version), ``unchanged``, ``waiting`` (no
    export published yet) or ``failed`` (reason)."""

    published: dict[str, int] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "unchanged": self.unchanged,
            "waiting": self.waiting,
            "failed": self.failed,
        }


def export_late_usage(
    marks: LateUsageMarks,
    reader: UsageReader,
    store: ExportStore,
    prices: PriceTable,
    metrics: UsageMetrics,
) -> LateUsageRun:
    """Export again every marked month that has a published export; see the module docstring.

    Raises TransientFailure only when the marks themselves cannot be read.
    """
    run = LateUsageRun()
    for month, seen in marks.late_months():
        try:
            if store.latest(month) is None:
                run.waiting.append(month)  # its first export will include the late usage
                continue
            result = export_month(month, reader, store, prices, metrics)
            marks.clear_late_month(month, seen)
        except (TransientFailure, LedgerMismatch) as exc:
            metrics.count(LATE_FAILED_METRIC)
            run.failed[month] = f"{type(exc).__name__}: {exc}"
            continue
        if result.status == "published":
            metrics.count(LATE_EXPORTED_METRIC)
            run.published[month] = result.version
        else:
            run.unchanged.append(month)
    return run
