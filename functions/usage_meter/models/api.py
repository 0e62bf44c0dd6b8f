"""The HTTP API's own request and answer shapes (besides the report models in ``streaming.py``
and ``products.py``): what the resolver validates and ``docs/openapi.json`` documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from usage_meter.models.limits import MAX_LIMITS, Limit


class ErrorAnswer(BaseModel):
    """Every 4xx/5xx body: ``error`` is a stable code (``invalid_month``, ``unknown_parameter``,
    ``conflict``, ``unavailable``...), ``message`` says what was wrong, for a person."""

    error: str
    message: str


class _Change(BaseModel):
    # Other keys are the caller's and ignored, as before this model existed.
    model_config = ConfigDict(extra="ignore")

    reason: str = Field(default="", description="Why, for the audit trail.")


class CustomerAllowanceChange(_Change):
    """``PUT /customers/{customer_id}/allowance``: the customer's own limits, or ``null`` to drop
    them and inherit the plan's again."""

    limits: list[Limit] | None = Field(max_length=MAX_LIMITS)


class PlanChange(_Change):
    """``PUT /customers/{customer_id}/plan``: the plan the customer is on (``null``: none)."""

    plan: str | None


class PlanAllowanceChange(_Change):
    """``PUT /plans/{plan}/allowance``: the plan's default limits."""

    limits: list[Limit] = Field(max_length=MAX_LIMITS)


def error_responses(*statuses: int) -> dict[int, Any]:
    """OpenAPI ``responses`` for these error statuses, each an ``ErrorAnswer``."""
    meaning = {
        400: "Invalid request (the error code says which rule)",
        401: "Missing or invalid signature",
        404: "No such route",
        409: "Conflict",
        413: "Body too large",
        422: "Cannot be stored as it stands (the reason says why)",
        503: "Temporarily unavailable: retry",
    }
    return {
        status: {
            "description": meaning[status],
            "content": {"application/json": {"model": ErrorAnswer}},
        }
        for status in statuses
    }
