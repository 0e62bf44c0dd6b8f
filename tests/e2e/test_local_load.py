"""The embedded default holds a load: the small version of ``benchmarks/local_load.py``.

300 webhooks at concurrency 24 through the stack ``make local`` serves (its defaults, including
the meter's default share of AssemblyAI's request budget): every one accepted, the queue drained,
each transcript billed exactly once with the seconds that were sent, nothing dead-lettered, and
the memory of the stack's process and of every function worker below a fixed bound. The 10,000
run and its figures are in README ("Load on the local stack").
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from benchmarks import local_load

pytestmark = pytest.mark.slow

WEBHOOKS = 300
CONCURRENCY = 24
# 300 transcripts cycling through 61.5 s, 120 s and 7.25 s: 100 x 188.75 s.
EXPECTED_SECONDS = Decimal("18875")
# Seen: 133-183 MiB for the stack's process, 550-610 MiB with the function workers. Before the
# local DynamoDB stopped copying the whole table per transaction, the stack's process grew by
# ~0.5 MiB a webhook (killed at ~3,000).
STACK_MIB_BOUND = 320
TOTAL_MIB_BOUND = 1100


def test_300_webhooks_at_concurrency_24_drain_with_exact_books_and_bounded_memory() -> None:
    result = local_load.run(WEBHOOKS, CONCURRENCY, customers=20)

    assert result["accepted_200"] == WEBHOOKS, result
    assert result["other_statuses"] == []
    assert result["drained"] is True
    assert result["billed_count"] == WEBHOOKS
    assert Decimal(result["expected_seconds"]) == EXPECTED_SECONDS
    assert Decimal(result["billed_seconds"]) == EXPECTED_SECONDS
    assert result["dead_letters"] == 0
    assert result["books_exact"] is True
    assert 0 < result["peak_rss_stack_mib"] < STACK_MIB_BOUND, result
    assert result["peak_rss_stack_mib"] < result["peak_rss_total_mib"] < TOTAL_MIB_BOUND, result
    assert set(result["peak_rss_by_function_mib"]) >= {
        "WebhookIntakeFunction",
        "UsageProcessorFunction",
    }
