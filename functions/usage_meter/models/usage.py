"""Ledger rows, aggregates and quarantined items: what the usage table stores."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from usage_meter.models.identifiers import (
    CUSTOMER_ID_RULE,
    MAX_DIMENSIONS,
    PROJECT_PATTERN,
    check_attribution,
    is_customer_id,
    normalize_customer_id,
)
from usage_meter.models.months import MONTH_PATTERN


def _nfc(value: object) -> object:
    return normalize_customer_id(value) if isinstance(value, str) else value


def _customer_id(value: str) -> str:
    if not is_customer_id(value):
        raise ValueError(CUSTOMER_ID_RULE)
    return value


# The one customer id rule (models/identifiers.py), NFC-normalized first, for every pydantic model.
CustomerId = Annotated[str, BeforeValidator(_nfc), AfterValidator(_customer_id)]
ProjectName = Annotated[str, StringConstraints(pattern=PROJECT_PATTERN)]


class AttributedReport(BaseModel):
    """What every report from the application's backend (streaming sessions, LLM Gateway, Voice
    Agent, Sync) says about who used it: customer, project and billing dimensions, checked by the
    one attribution rule (models/identifiers.py: at most ``MAX_DIMENSIONS`` dimensions)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    customer_id: CustomerId
    project: ProjectName = "default"
    dimensions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _attribution(self) -> Self:
        check_attribution(self.customer_id, self.project, self.dimensions, MAX_DIMENSIONS)
        return self


Product = Literal["async", "streaming", "sync", "voice_agent", "llm_gateway"]
PRODUCTS: tuple[Product, ...] = ("async", "streaming", "sync", "voice_agent", "llm_gateway")
Unit = Literal["seconds", "input_tokens", "output_tokens"]
# The unit each product is billed in (docs/products.md): audio or session seconds, or tokens.
PRODUCT_UNITS: dict[str, tuple[Unit, ...]] = {
    "async": ("seconds",),
    "streaming": ("seconds",),
    "sync": ("seconds",),
    "voice_agent": ("seconds",),
    "llm_gateway": ("input_tokens", "output_tokens"),
}
UNKNOWN_MODEL = "unknown"
UNKNOWN_MODEL_REASON = (
    "model unknown (AssemblyAI named none, e.g. the transcript was deleted before it was read)"
)


def canonical_decimal(value: Decimal) -> Decimal:
    """The one decimal form of an exact quantity everywhere (ledger, aggregates, files, API):
    no trailing zeros, no exponent. ``625.0`` -> ``625``, ``1293.250`` -> ``1293.25``,
    ``1E+3`` -> ``1000``. Raises InvalidOperation for NaN/Infinity."""
    return Decimal(f"{value.normalize():f}")


class UsageStatus(StrEnum):
    BILLABLE = "billable"  # counted in the aggregates and the export
    FAILED = "failed"  # AssemblyAI could not transcribe it: kept for debugging, billed 0


class UsageRecord(BaseModel):
    """One usage source (a transcript, a streaming or Voice Agent session, a Sync API request,
    an LLM Gateway response), billed at most once, forever.

    Quantities by unit: ``billable_seconds`` (seconds products) and ``input_tokens`` /
    ``output_tokens`` (LLM Gateway; 0 elsewhere). ``region`` is the endpoint region a product
    prices by (LLM Gateway ``us``/``eu``/``global``); empty for products priced the same
    everywhere. ``session_id``: the streaming session an LLM Gateway response belongs to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_id: str
    product: Product
    status: UsageStatus
    customer_id: CustomerId
    project: ProjectName
    month: str = Field(pattern=MONTH_PATTERN)
    billable_seconds: Decimal = Field(ge=0)
    audio_duration_seconds: Decimal | None = None
    audio_channels: int = 1
    model: str = UNKNOWN_MODEL
    language_code: str | None = None
    features: tuple[str, ...] = ()
    dimensions: dict[str, str] = Field(default_factory=dict)
    occurred_at: AwareDatetime
    origin: str = "webhook"
    estimated: bool = False  # an orphaned streaming session billed at its bound (3 h or its cap)
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    region: str = ""
    session_id: str | None = None
    error_message: str | None = Field(default=None, max_length=1000)
    # Why a row was billed in an unusual way, e.g. "transcript_deleted: ..." (a transcript deleted
    # at AssemblyAI before it was read: billed from the authenticated delivery, model unknown).
    note: str | None = Field(default=None, max_length=1000)

    @field_validator("billable_seconds", "audio_duration_seconds")
    @classmethod
    def _canonical(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else canonical_decimal(value)

    def addon_seconds(self) -> dict[str, Decimal]:
        """Seconds per add-on this record adds to its aggregate: every recorded add-on runs over
        the whole billed duration (AssemblyAI prices add-ons per hour of the same audio/session).
        A failed (unbilled) record adds none."""
        if self.status is not UsageStatus.BILLABLE:
            return {}
        return dict.fromkeys(self.features, self.billable_seconds)

    def same_facts_as(self, other: UsageRecord) -> bool:
        """Whether two records of one source agree on everything that is billed."""
        return self.billing_facts() == other.billing_facts()

    def billing_facts(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "project": self.project,
            "product": self.product,
            "status": self.status,
            "billable_seconds": self.billable_seconds,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "region": self.region,
            "estimated": self.estimated,
        }

    def quantities(self) -> dict[Unit, Decimal]:
        """What this record bills, by unit (0 for a failed record): ``{"seconds": 33}`` or
        ``{"input_tokens": 1200, "output_tokens": 85}``."""
        billed = self.status is UsageStatus.BILLABLE
        values: dict[Unit, Decimal] = {
            "seconds": self.billable_seconds,
            "input_tokens": Decimal(self.input_tokens),
            "output_tokens": Decimal(self.output_tokens),
        }
        return {u: (values[u] if billed else Decimal(0)) for u in PRODUCT_UNITS[self.product]}

    def describe_facts(self) -> str:
        """The billing facts for a person: ``customer_id=acme, ..., billable_seconds=33``; tokens
        and region only when the record has them."""
        optional = {"input_tokens": 0, "output_tokens": 0, "region": ""}
        return ", ".join(
            f"{k}={v}"
            for k, v in self.billing_facts().items()
            if k not in optional or v != optional[k]
        )


class RecordResult(StrEnum):
    """A write's outcome. Adapters report RECORDED or EXISTS (the row already there, with its
    values); ``logic.recording`` decides whether an existing row is a DUPLICATE or a CONFLICT."""

    RECORDED = "recorded"
    EXISTS = "exists"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


class RecordOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    result: RecordResult
    existing: UsageRecord | None = None


class QuarantineReason(StrEnum):
    INVALID_ATTRIBUTION = "invalid_attribution"  # neither delivery nor webhook_url is valid
    TRANSCRIPT_DELETED = "transcript_deleted"  # deleted at AssemblyAI, no attribution to use
    CONFLICT = "conflict"
    CUSTOMER_MISMATCH = "customer_mismatch"
    TRANSCRIPT_NOT_FOUND = "transcript_not_found"
    UNKNOWN_PROJECT = "unknown_project"
    UNBILLABLE_TRANSCRIPT = "unbillable_transcript"
    IMPLAUSIBLE_TRANSCRIPT = "implausible_transcript"
    # reconciliation: AssemblyAI refuses the transcript (a 4xx client error) or its list entry
    # cannot be read; held so one transcript never stops a project's run
    UNREADABLE_TRANSCRIPT = "unreadable_transcript"
    UNREADABLE_SESSION = "unreadable_session"  # an open session the orphan sweep cannot read
    UNSTORABLE = "unstorable"
    SESSION_CONFLICT = "session_conflict"
    REPORT_CONFLICT = "report_conflict"  # a product usage report re-sent with other figures
    ORPHANED_SESSION = "orphaned_session"


class QuarantineItem(BaseModel):
    """Something that could not be billed safely, kept with its reason for a human to resolve."""

    model_config = ConfigDict(frozen=True)

    source_id: str
    reason: QuarantineReason
    detail: str
    message: dict[str, Any]
    quarantined_at: datetime
