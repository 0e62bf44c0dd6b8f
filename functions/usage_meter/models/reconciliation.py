"""Reconciliation state: counts of a run and the resumable checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass
class ReconcileCounts:
    checked: int = 0
    already_recorded: int = 0
    recovered: int = 0
    ignored: int = 0
    failed: int = 0
    pending: int = 0
    uncovered: int = 0  # newly found transcripts no customer is billed for (coverage report)

    def add(self, other: ReconcileCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class Checkpoint:
    """Where an unfinished run stopped (and the horizon it was working towards)."""

    horizon: datetime
    before_id: str | None = None
    counts: ReconcileCounts = field(default_factory=ReconcileCounts)
