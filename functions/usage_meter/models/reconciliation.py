"""Reconciliation state: counts of a run and the resumable checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any


@dataclass
class ReconcileCounts:
    """What a run did with the transcripts it listed. Every finished transcript whose webhook_url
    points here ends ``already_recorded``, ``recovered`` or ``quarantined`` (with a reason);
    ``not_ours`` points elsewhere (remembered, never fetched again); ``failed`` was listed and then
    gone (404); ``unchecked`` could not be checked after retries within the run (checked next run).
    """

    checked: int = 0
    already_recorded: int = 0
    recovered: int = 0
    quarantined: int = 0
    not_ours: int = 0
    failed: int = 0
    pending: int = 0
    uncovered: int = 0  # newly found transcripts no customer is billed for (coverage report)
    unchecked: int = 0
    retried: int = 0

    def add(self, other: ReconcileCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    @classmethod
    def from_stored(cls, values: dict[str, Any]) -> ReconcileCounts:
        """Counts saved by any version (names this version does not know are dropped)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in values.items() if k in known})


@dataclass
class Checkpoint:
    """Where a pass over AssemblyAI's list stands (UTC ``created`` times of transcripts).

    A pass pages newest first, from the newest transcript back to the later of ``horizon`` and
    ``watermark``; ``before_id`` is where an unfinished pass resumes (None: the next run starts
    a new pass). ``watermark``: every transcript created before it was checked by an earlier
    complete pass and was finished then, so a pass stops there (each run pages only what is
    new since). ``pass_newest`` / ``pass_floor``: the newest transcript this pass saw, and the
    oldest it must see again (still queued or processing, or not checked after retries); a
    complete pass moves the watermark to the earlier of the two."""

    horizon: datetime
    before_id: str | None = None
    counts: ReconcileCounts = field(default_factory=ReconcileCounts)
    watermark: datetime | None = None
    pass_newest: datetime | None = None
    pass_floor: datetime | None = None
