"""Identifier rules shared by every entry point (webhooks, queue messages, reports, queries, the
application helper): ONE definition of what a customer id, project and dimension may be.

Customer ids are what real customers use: letters of any script (NFC-normalized first, so
``müller-gmbh`` typed on a Mac and on Windows is one customer), digits, single inner spaces
(``acme corp``) and ``. _ : @ -``. They must start with a letter or digit (no formula prefixes
such as ``=``, ``+``, ``-``, ``@``; no ``.``/``..`` path tricks) and are bounded in length.
``#``, ``/``, ``\\``, ``%``, ``?``, ``&`` and control characters never belong to an id. What ends
up inside storage keys is made safe by encoding in the one adapter that knows the keys, not by
refusing ids here.

Dimension names (the webhook URL's extra query parameters) are what applications write: letters,
digits and ``_`` starting with a letter, any case (``moduleId``, ``plan_tier``).

Plain ``re``/``unicodedata`` on purpose: the webhook intake validates with these and must not pay
for pydantic's import on its cold start (see docs/decisions.md).
"""

from __future__ import annotations

import re
import unicodedata

MAX_CUSTOMER_ID_LENGTH = 128
CUSTOMER_ID_PUNCTUATION = frozenset("._:@-")
PROJECT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
DIMENSION_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,39}$"
MAX_DIMENSION_VALUE_LENGTH = 128
# How many billing dimensions one usage may carry: webhook URLs (intake, processor,
# reconciliation), queued messages, streaming and product reports and the app helpers.
MAX_DIMENSIONS = 8
RESERVED_PARAMETERS = frozenset({"customer_id", "project"})
# The BillingDimensions allow-list: comma-separated dimension names, or empty (template parameter
# BillingDimensions' AllowedPattern and settings.py's BILLING_DIMENSIONS).
BILLING_DIMENSIONS_PATTERN = (
    f"^({DIMENSION_NAME_PATTERN[1:-1]}(,{DIMENSION_NAME_PATTERN[1:-1]})*)?$"
)

_PROJECT = re.compile(PROJECT_PATTERN)
_SOURCE_ID = re.compile(SOURCE_ID_PATTERN)
_DIMENSION_NAME = re.compile(DIMENSION_NAME_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

CUSTOMER_ID_RULE = (
    "customer_id must be 1-128 characters of letters (any script), digits, single inner spaces "
    "and . _ : @ -, starting with a letter or digit"
)
PROJECT_RULE = "project must be 1-64 characters of lower-case letters, digits, _ and -"
# A plan (models.limits) is named like a project.
PLAN_PATTERN = PROJECT_PATTERN
PLAN_RULE = "a plan name is 1-64 characters: lower-case letters, digits, '_' and '-'"
SOURCE_ID_RULE = "id must be 1-128 characters of letters, digits, _ and -"
DIMENSION_NAME_RULE = (
    "extra query parameter names must be 1-40 characters of letters, digits and _, "
    "starting with a letter"
)


class InvalidIdentifier(ValueError):
    """An identifier or dimension broke a rule; ``code`` names the rule for API answers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalize_customer_id(value: str) -> str:
    """The one spelling of a customer id: Unicode NFC (``u`` + combining diaeresis -> ``ü``)."""
    return unicodedata.normalize("NFC", value)


def _customer_character(char: str) -> bool:
    if char.isalnum() or char in CUSTOMER_ID_PUNCTUATION or char == " ":
        return True
    return unicodedata.category(char).startswith("M")  # combining marks of scripts NFC keeps


def is_customer_id(value: object) -> bool:
    """Whether ``value`` is a valid customer id *as given* (already NFC-normalized)."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CUSTOMER_ID_LENGTH:
        return False
    if value != normalize_customer_id(value) or not value[0].isalnum() or value.endswith(" "):
        return False
    return "  " not in value and all(_customer_character(c) for c in value)


def is_project(value: object) -> bool:
    return isinstance(value, str) and _PROJECT.fullmatch(value) is not None


def is_plan_name(value: object) -> bool:
    return isinstance(value, str) and _PROJECT.fullmatch(value) is not None


def is_source_id(value: object) -> bool:
    return isinstance(value, str) and _SOURCE_ID.fullmatch(value) is not None


def dimension_value_problem(value: str) -> str | None:
    """Why a dimension value is unacceptable, or None when it is fine."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_DIMENSION_VALUE_LENGTH:
        return f"must be at most {MAX_DIMENSION_VALUE_LENGTH} characters"
    if _CONTROL.search(value):
        return "must not contain control characters"
    return None


def check_attribution(
    customer_id: object, project: object, dimensions: object, max_dimensions: int
) -> None:
    """Raise InvalidIdentifier unless customer, project and dimensions all follow the rules."""
    if not is_customer_id(customer_id):
        raise InvalidIdentifier("invalid_customer_id", CUSTOMER_ID_RULE)
    if not is_project(project):
        raise InvalidIdentifier("invalid_project", PROJECT_RULE)
    if not isinstance(dimensions, dict):
        raise InvalidIdentifier("invalid_dimensions", "dimensions must be an object")
    if len(dimensions) > max_dimensions:
        raise InvalidIdentifier(
            "too_many_dimensions", f"at most {max_dimensions} extra query parameters allowed"
        )
    for name, value in dimensions.items():
        if not isinstance(name, str) or not _DIMENSION_NAME.fullmatch(name):
            raise InvalidIdentifier("invalid_dimension_name", DIMENSION_NAME_RULE)
        if name in RESERVED_PARAMETERS:
            raise InvalidIdentifier("invalid_dimension_name", f"'{name}' is reserved")
        problem = dimension_value_problem(value) if isinstance(value, str) else "must be text"
        if problem:
            raise InvalidIdentifier(
                "invalid_dimension_value", f"query parameter '{name}' {problem}"
            )
