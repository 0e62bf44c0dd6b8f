"""Fixed rules that settings.py, the domain and template.yaml share, each defined once here.

Plain Python (no pydantic): settings.py, which the webhook intake imports, reads them.
tests/unit/test_template_rules.py ties template.yaml's parameters and environment values to them.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

# AssemblyAI closes (and bills) a streaming session that was never closed after 3 hours (docs
# "Billing and Pricing"); it is also the largest ``max_session_duration_seconds`` a temporary
# token may set (spec ``GET /v3/token``: 60..10800, fern/.definition/streamingApi.yml).
SESSION_LIMIT_SECONDS = 10800

# How far an app's clock (a report's ``began_at``) may be from AssemblyAI's (the Begin's
# ``expires_at``) in one streaming report. The same 5 minutes the Standard Webhooks signature
# allows between a sender's clock and ours (standardwebhooks.com: timestamp tolerance).
REPORT_CLOCK_SKEW_SECONDS = 300


class OrphanPolicy(StrEnum):
    """What the orphan sweep does with a session that never reported its termination
    (template parameter ``OrphanPolicy``)."""

    BILL = "bill"  # bill AssemblyAI's 3-hour charge, marked as estimated
    FLAG = "flag"  # quarantine for a human, bill nothing


# How many days of open sessions each orphan sweep looks back over (sessions older than this
# were swept, or flagged, by earlier runs).
ORPHAN_LOOKBACK_DAYS = 7

# The most transcripts one ``GET /v2/transcript`` page returns (``limit`` 1..200, default 10;
# /work/shared/reference/assemblyai-api-facts.md, spec ``ListTranscriptParams``): reconciliation
# pages with it.
TRANSCRIPT_LIST_PAGE_LIMIT = 200

# Stripe meter event value per billable second, by the template's ``StripeValueUnit``.
STRIPE_VALUE_UNITS = {"seconds": Decimal(1), "milliseconds": Decimal(1000)}
