"""Who a usage event belongs to, and the message the intake puts on the usage queue.

Frozen dataclasses with explicit checks (no pydantic): the webhook intake builds them and its
cold start stays free of pydantic. The processor parses queue messages back with
``UsageMessage.from_json``, which applies the same identifier rules, so nothing unchecked reaches
the ledger.

An authenticated delivery whose query string breaks an attribution rule is still queued: the
message then carries no ``attribution`` but the ``attribution_problem`` (what was wrong) and the
raw ``query``, and the processor bills it from the transcript's own ``webhook_url`` when that one
is valid, or quarantines it as ``invalid_attribution``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from usage_meter.models.identifiers import (
    MAX_DIMENSIONS,
    RESERVED_PARAMETERS,
    SOURCE_ID_RULE,
    InvalidIdentifier,
    check_attribution,
    is_project,
    is_source_id,
    normalize_customer_id,
)
from usage_meter.models.months import usage_month

DEFAULT_PROJECT = "default"
MAX_QUERY_LENGTH = 2048
# The one dimension count (models.identifiers), under the name the application helper imports.
WEBHOOK_MAX_DIMENSIONS = MAX_DIMENSIONS
# "unknown": the delivery named a transcript but no status we know; the processor reads the
# transcript's own status anyway, so such a delivery is stored rather than refused.
WEBHOOK_STATUSES = ("completed", "error", "unknown")
ORIGINS = ("webhook", "reconciliation", "operator")
WebhookStatus = Literal["completed", "error", "unknown"]
Origin = Literal["webhook", "reconciliation", "operator"]


class InvalidMessage(ValueError):
    """A queue message that does not follow schema version 1."""


@dataclass(frozen=True)
class Attribution:
    """Who a usage event belongs to: taken from the webhook URL's query string."""

    customer_id: str
    project: str = DEFAULT_PROJECT
    dimensions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_attribution(self.customer_id, self.project, self.dimensions, MAX_DIMENSIONS)


@dataclass(frozen=True)
class UsageMessage:
    """One accepted webhook delivery, as queued for the usage processor (schema version 1)."""

    transcript_id: str
    webhook_status: WebhookStatus
    attribution: Attribution | None
    received_at: datetime
    origin: Origin = "webhook"
    schema_version: int = 1
    attribution_problem: str | None = None  # set (with ``query``) when attribution is None
    query: str | None = None  # the delivery's raw query string, kept only when it was invalid

    def __post_init__(self) -> None:
        if (self.attribution is None) == (self.attribution_problem is None):
            raise InvalidMessage("a message has either an attribution or an attribution_problem")
        if not is_source_id(self.transcript_id):
            raise InvalidMessage(f"transcript_id: {SOURCE_ID_RULE}")
        if self.webhook_status not in WEBHOOK_STATUSES:
            raise InvalidMessage(f"webhook_status must be one of {WEBHOOK_STATUSES}")
        if self.origin not in ORIGINS:
            raise InvalidMessage(f"origin must be one of {ORIGINS}")
        if self.received_at.tzinfo is None:
            raise InvalidMessage("received_at must carry a timezone")
        if self.schema_version != 1:
            raise InvalidMessage("unsupported schema_version")

    @property
    def month(self) -> str:
        return usage_month(self.received_at)

    @property
    def project(self) -> str:
        """The project whose API key reads the transcript (for an invalid attribution: the
        query's ``project`` if it is a well-formed name, else the default project)."""
        if self.attribution is not None:
            return self.attribution.project
        named = [v for k, v in parse_qsl(self.query or "", errors="replace") if k == "project"]
        return named[-1] if named and is_project(named[-1]) else DEFAULT_PROJECT

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "schema_version": self.schema_version,
            "transcript_id": self.transcript_id,
            "webhook_status": self.webhook_status,
            "received_at": self.received_at.astimezone(UTC).isoformat(),
            "origin": self.origin,
        }
        if self.attribution is not None:
            document["attribution"] = {
                "customer_id": self.attribution.customer_id,
                "project": self.attribution.project,
                "dimensions": self.attribution.dimensions,
            }
        else:
            document["attribution_problem"] = self.attribution_problem
            document["query"] = self.query
        return json.dumps(document, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UsageMessage:
        """Parse and check a queued message; InvalidMessage says what is wrong."""
        try:
            document: Any = json.loads(text)
            received_at = datetime.fromisoformat(document["received_at"])
            problem = document.get("attribution_problem")
            attribution = None
            if problem is None:
                named = document["attribution"]
                attribution = Attribution(
                    customer_id=named["customer_id"],
                    project=named.get("project", DEFAULT_PROJECT),
                    dimensions=named.get("dimensions") or {},
                )
            return cls(
                transcript_id=document["transcript_id"],
                webhook_status=cast("WebhookStatus", document["webhook_status"]),
                attribution=attribution,
                received_at=received_at,
                origin=cast("Origin", document.get("origin", "webhook")),
                schema_version=document.get("schema_version", 1),
                attribution_problem=None if problem is None else str(problem),
                query=document.get("query"),
            )
        except InvalidMessage:
            raise
        except InvalidIdentifier as exc:
            raise InvalidMessage(f"attribution: {exc.message}") from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidMessage(f"{type(exc).__name__}: {exc}") from exc


def attribution_from_query(
    raw_query: str,
    max_dimensions: int,
    billing_dimensions: frozenset[str],
    default_project: str = DEFAULT_PROJECT,
) -> Attribution:
    """The customer, project and billing dimensions of a webhook URL's query string: the one
    reading used by the intake (the delivery), the processor (the transcript's own
    ``webhook_url``) and reconciliation. The customer id is NFC-normalized; the parameters named
    in ``billing_dimensions`` (the ``BillingDimensions`` allow-list) become dimensions, sorted by
    name; every other parameter is the application's and is ignored here (never checked, never
    stored). Without a ``project`` parameter the project is ``default_project`` (reconciliation
    passes the project that lists the transcript).

    Raises InvalidIdentifier (``code`` names the rule: ``query_too_long``, ``invalid_query``,
    ``duplicate_parameter``, ``missing_customer_id``, ``invalid_customer_id``, ...).
    """
    if len(raw_query) > MAX_QUERY_LENGTH:
        raise InvalidIdentifier(
            "query_too_long", f"query string exceeds {MAX_QUERY_LENGTH} characters"
        )
    try:
        # Not strict: AssemblyAI echoes the URL exactly as submitted, so a stray "&" is harmless.
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidIdentifier("invalid_query", "query string is not valid URL encoding") from exc
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name not in RESERVED_PARAMETERS and name not in billing_dimensions:
            continue  # the application's own parameter: passed on to it, nothing else
        if name in seen:
            raise InvalidIdentifier(
                "duplicate_parameter", f"query parameter '{name}' appears twice"
            )
        seen[name] = value
    customer_id = seen.pop("customer_id", None)
    if customer_id is None:
        raise InvalidIdentifier("missing_customer_id", "query parameter 'customer_id' is required")
    project = seen.pop("project", default_project)
    dimensions = dict(sorted(seen.items()))
    customer_id = normalize_customer_id(customer_id)
    check_attribution(customer_id, project, dimensions, max_dimensions)
    return Attribution(customer_id=customer_id, project=project, dimensions=dimensions)


def webhook_url_is_ours(webhook_url: str | None, webhook_base_url: str) -> bool:
    """Whether a transcript's ``webhook_url`` is the meter's intake (``webhook_base_url``): same
    scheme, host (any case) and path (trailing ``/`` ignored); its query is the attribution."""
    if not webhook_url:
        return False
    ours, theirs = urlsplit(webhook_base_url), urlsplit(webhook_url)
    return (ours.scheme, ours.netloc.lower(), ours.path.rstrip("/")) == (
        theirs.scheme,
        theirs.netloc.lower(),
        theirs.path.rstrip("/"),
    )


def billing_query(raw_query: str, billing_dimensions: frozenset[str]) -> str:
    """The part of a query string the meter may keep (for an operator looking at a broken
    attribution): ``customer_id``, ``project`` and the allow-listed dimensions, their names
    compared without case so a mistyped ``Customer_ID`` stays visible, in their order. The
    application's own parameters are dropped. The kept part is the raw text, unchanged."""
    kept = {name.lower() for name in (*RESERVED_PARAMETERS, *billing_dimensions)}
    parts = [p for p in raw_query.split("&") if p]
    return "&".join(
        p for p in parts if unquote_plus(p.split("=", 1)[0], errors="replace").lower() in kept
    )
