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

    def add(self, other: ReconcileCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class Checkpoint:
    """A project's reconciliation state: where an unfinished walk stopped (``before_id``) and
    the horizon it works towards; ``walk_top`` is the newest transcript's creation time when the
    walk began, ``unsettled`` the oldest creation time it left for later (pending or too fresh).
    ``watermark``: everything created before it was checked by a complete walk, so the next walk
    stops there (minus an overlap) instead of re-reading the whole horizon every hour."""

    horizon: datetime
    before_id: str | None = None
    counts: ReconcileCounts = field(default_factory=ReconcileCounts)
    watermark: datetime | None = None
    walk_top: datetime | None = None
    unsettled: datetime | None = None
