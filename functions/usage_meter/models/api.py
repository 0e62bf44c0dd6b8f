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


class ReportAnswer(BaseModel):
    """A signed report's 200: ``recorded`` or ``duplicate`` (the same report again), with the
    session's id (streaming) or the usage's source id (product reports)."""

    status: str
    session_id: str | None = None
    source_id: str | None = None


def ok(description: str, model: type[BaseModel] | None = None, csv: bool = False) -> Any:
    """An OpenAPI 200 response: ``model``'s JSON (a JSON object when None), optionally CSV too."""
    content: dict[str, Any] = {"application/json": {"model": model} if model else {}}
    if csv:
        content["text/csv"] = {}
    return {"description": description, "content": content}


def error_responses(*statuses: int) -> dict[int, Any]:
    """OpenAPI ``responses`` for these error statuses, each an ``ErrorAnswer``."""
    meaning = {
        400: "Invalid request (the error code says which rule)",
        401: "Not authenticated (signature or webhook auth header)",
        404: "No such route",
        409: "Conflicts with what is recorded, or the feature is off in this deployment",
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


class AssemblyAIWebhook(BaseModel):
    """What AssemblyAI POSTs to ``webhook_url`` (documentation only: the intake checks it without
    pydantic, ``logic/webhook_intake.py``, to keep its cold start short).

    Source: AssemblyAI's docs ("Webhooks") and API spec (``assemblyai-api-spec`` openapi.yml):
    ``{"transcript_id", "status": "completed" | "error"}``, or ``{"status":
    "redacted_audio_ready", "redacted_audio_url"}`` (no transcript id, not billable); no
    transcript text, no signature."""

    transcript_id: str | None = Field(default=None, description="The transcript's id.")
    status: str = Field(description="completed, error or redacted_audio_ready.")
    redacted_audio_url: str | None = None


class WebhookAnswer(BaseModel):
    """The intake's 200: ``accepted`` (queued, with the transcript id) or ``ignored`` (with the
    reason, e.g. ``redacted_audio_ready``)."""

    status: str
    transcript_id: str | None = None
    reason: str | None = None
