"""The coverage report: how much of what AssemblyAI will invoice no customer pays for.

Reconciliation lists every transcript of each configured project. A completed transcript whose
``webhook_url`` is missing, points elsewhere, or carries no usable attribution is never billed to
a customer; reconciliation records it (``UncoveredTranscript``, once per transcript) and counts
``ReconcileUncovered`` / ``ReconcileUncoveredSeconds`` (alarmed above ``CoverageAlarmSeconds`` a
day). Failed transcripts are left out: AssemblyAI does not charge them
(shared/reference/assemblyai-api-facts.md, "Failed transcripts are not charged").

Per month and project the report gives the count, the seconds, the reasons, the transcript ids
and an estimated cost: the seconds priced with the month's price table exactly like an export row
(model + add-ons, rounded once per project x model). A model or add-on without a price is never
guessed: those seconds are reported as unpriced.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from usage_meter.logic.pricing import price_aggregate
from usage_meter.models.billing import PriceTable, UsageAggregate
from usage_meter.models.coverage import UncoveredTranscript

MAX_IDS_PER_PROJECT = 1000  # the manifest stays small; `usage-meter-ops coverage` lists them all


def coverage_report(
    month: str, uncovered: Iterable[UncoveredTranscript], prices: PriceTable
) -> dict[str, Any]:
    """``{"transcripts", "billable_seconds", "estimated_cost", "unpriced_seconds", "currency",
    "projects": {project: {..., "reasons": {reason: n}, "transcript_ids": [...],
    "transcript_ids_truncated": bool}}}`` with decimals as exact strings."""
    version = prices.for_month(month)
    projects: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[str, str], UsageAggregate] = {}
    for item in uncovered:
        entry = projects.setdefault(
            item.project,
            {"transcripts": 0, "billable_seconds": Decimal(0), "reasons": {}, "transcript_ids": []},
        )
        entry["transcripts"] += 1
        entry["billable_seconds"] += item.billable_seconds
        entry["reasons"][item.reason.value] = entry["reasons"].get(item.reason.value, 0) + 1
        entry["transcript_ids"].append(item.transcript_id)
        current = groups.get((item.project, item.model))
        addons = dict(current.addon_seconds) if current else {}
        for feature in item.features:
            addons[feature] = addons.get(feature, Decimal(0)) + item.billable_seconds
        groups[(item.project, item.model)] = UsageAggregate(
            customer_id="-",
            month=month,
            product="async",
            project=item.project,
            model=item.model,
            usage_count=(current.usage_count if current else 0) + 1,
            billable_seconds=(current.billable_seconds if current else 0) + item.billable_seconds,
            addon_seconds=addons,
        )
    for entry in projects.values():
        entry["estimated_cost"] = Decimal(0)
        entry["unpriced_seconds"] = Decimal(0)
    for (project, _), aggregate in sorted(groups.items()):
        row = price_aggregate(aggregate, version)
        if row.cost is None:
            projects[project]["unpriced_seconds"] += aggregate.billable_seconds
        else:
            projects[project]["estimated_cost"] += row.cost
    report_projects = {
        name: {
            "transcripts": e["transcripts"],
            "billable_seconds": f"{e['billable_seconds']:f}",
            "estimated_cost": f"{e['estimated_cost']:f}",
            "unpriced_seconds": f"{e['unpriced_seconds']:f}",
            "reasons": dict(sorted(e["reasons"].items())),
            "transcript_ids": sorted(e["transcript_ids"])[:MAX_IDS_PER_PROJECT],
            "transcript_ids_truncated": len(e["transcript_ids"]) > MAX_IDS_PER_PROJECT,
        }
        for name, e in sorted(projects.items())
    }

    def total(field: str) -> str:
        return f"{sum((Decimal(p[field]) for p in report_projects.values()), Decimal(0)):f}"

    return {
        "transcripts": sum(p["transcripts"] for p in report_projects.values()),
        "billable_seconds": total("billable_seconds"),
        "estimated_cost": total("estimated_cost"),
        "unpriced_seconds": total("unpriced_seconds"),
        "currency": version.currency if version else None,
        "projects": report_projects,
    }
