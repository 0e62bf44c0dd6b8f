"""Putting usage aside for a person: the one way every flow quarantines something.

The item is stored with its reason (the operator's CLI lists and resolves it), and two metrics are
counted when it is new: ``UsageQuarantined`` (what the QuarantineAlarm watches; CloudWatch alarms
cannot SEARCH over metric names) and ``Quarantined_<reason>`` (for the dashboard's breakdown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from usage_meter.logic.ports import UsageLedger, UsageMetrics
    from usage_meter.models.usage import QuarantineItem

QUARANTINE_METRIC = "UsageQuarantined"


def quarantine_item(store: UsageLedger, metrics: UsageMetrics, item: QuarantineItem) -> bool:
    """Store the item and count it; True when it is new (False: the same item was there)."""
    if not store.quarantine(item):
        return False
    metrics.count(QUARANTINE_METRIC)
    metrics.count(f"Quarantined_{item.reason.value}")
    return True
