"""Putting usage aside for a person: the one way every flow quarantines something.

The item is stored with its reason (the operator's CLI lists and resolves it), and two metrics are
counted when it is new: ``UsageQuarantined`` (what the QuarantineAlarm watches; CloudWatch alarms
cannot SEARCH over metric names) and ``Quarantined_<reason>`` (for the dashboard's breakdown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from usage_meter.logic.ports import UsageMetrics
    from usage_meter.models.usage import QuarantineItem

QUARANTINE_METRIC = "UsageQuarantined"


class QuarantineStore(Protocol):
    def quarantine(self, item: QuarantineItem) -> bool:
        """Store the item; False when the same item was already quarantined."""
        ...


def quarantine_item(store: QuarantineStore, metrics: UsageMetrics, item: QuarantineItem) -> None:
    if store.quarantine(item):
        metrics.count(QUARANTINE_METRIC)
        metrics.count(f"Quarantined_{item.reason.value}")
