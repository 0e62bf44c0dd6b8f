"""A list for the local stand-ins' observation logs that keeps only its newest entries.

The AssemblyAI stand-in logs every request and the application receiver every delivery, for the
tests and the demos to look at. ``make local`` serves for as long as a developer leaves it running,
so these logs keep the newest ``RECENT_LIMIT`` entries instead of growing with every webhook.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")
RECENT_LIMIT = 10_000  # entries; a local test or demo looks at far fewer


class RecentList(list[T]):
    """``list`` whose ``append`` drops the oldest entry beyond ``limit`` entries."""

    def __init__(self, limit: int = RECENT_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def append(self, item: T) -> None:
        super().append(item)
        if len(self) > self.limit:
            del self[0]
