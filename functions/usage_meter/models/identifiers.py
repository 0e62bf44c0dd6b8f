"""Identifier rules shared by every entry point (webhooks, streaming reports, usage queries).

Identifiers end up inside DynamoDB keys (``#`` is our separator), S3 keys, CSV cells and logs, so
they are restricted to a conservative character set, must start with a letter or digit (no
``=``/``+``/``-``/``@`` formula prefixes, no ``.``/``..`` path tricks) and are bounded in length.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
PROJECT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
DIMENSION_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
MAX_DIMENSION_VALUE_LENGTH = 128

CustomerId = Annotated[str, StringConstraints(pattern=CUSTOMER_ID_PATTERN)]
ProjectName = Annotated[str, StringConstraints(pattern=PROJECT_PATTERN)]
SourceId = Annotated[str, StringConstraints(pattern=SOURCE_ID_PATTERN)]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def dimension_value_problem(value: str) -> str | None:
    """Why a dimension value is unacceptable, or None when it is fine."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_DIMENSION_VALUE_LENGTH:
        return f"must be at most {MAX_DIMENSION_VALUE_LENGTH} characters"
    if _CONTROL.search(value):
        return "must not contain control characters"
    return None
