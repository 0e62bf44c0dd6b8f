"""Billing months and moments: one rule for every month and timestamp read from outside.

A month is ``YYYY-MM`` in ASCII digits (``\\d`` would also take full-width and other Unicode
digits) with a year this service can bill: 2000..2999 (year 0 is not a date Python can build, and
a year past 9999 cannot be stored in ISO 8601). A moment read from outside must be timezone-aware
and, once in UTC, inside the same years (an offset can push 9999-12-31 past the calendar).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

FIRST_YEAR = 2000
LAST_YEAR = 2999
# Pydantic's (Rust) regex and Python's ``fullmatch`` both read this the same way.
MONTH_PATTERN = r"^2[0-9]{3}-(0[1-9]|1[0-2])$"
_MONTH = re.compile(r"2[0-9]{3}-(0[1-9]|1[0-2])")
MONTH_RULE = f"month must be YYYY-MM (ASCII digits), year {FIRST_YEAR}..{LAST_YEAR}"


def is_month(value: object) -> bool:
    """Whether ``value`` is a billing month string (``2026-11``)."""
    return isinstance(value, str) and _MONTH.fullmatch(value) is not None


def usage_month(moment: datetime) -> str:
    """The billing month (``YYYY-MM``, UTC) an aware moment belongs to: the one month format of
    ledger rows, aggregates, audit partitions, the usage API, allowances and the export."""
    return f"{moment.astimezone(UTC):%Y-%m}"


def current_month() -> str:
    """The billing month (``YYYY-MM``, UTC) of now."""
    return usage_month(datetime.now(UTC))


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; ValueError when it is naive or its UTC date is outside the years."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("timestamp is outside the calendar once converted to UTC") from exc
    if not FIRST_YEAR <= utc.year <= LAST_YEAR:
        raise ValueError(f"timestamp year must be {FIRST_YEAR}..{LAST_YEAR} (UTC)")
    return utc
