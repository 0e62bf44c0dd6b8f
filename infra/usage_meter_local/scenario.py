"""The local stack's fixture data and the demo's script: AssemblyAI projects, fixture transcripts,
the webhook deliveries the demo sends, and what each must lead to.

The transcript ids are fixed so that events/*.json (for ``sam local invoke`` and the Docker-free
invoke) name transcripts the AssemblyAI stand-in knows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple
from urllib.parse import urlencode

from usage_meter_local.assemblyai_standin import transcript

# Fixed, clearly local secret values: events/*.json carry the webhook one in their auth header.
LOCAL_WEBHOOK_SECRET = "local-only-webhook-secret"  # noqa: S105 - the local stack's, on purpose
LOCAL_PREVIOUS_WEBHOOK_SECRET = "local-only-webhook-secret-previous"  # noqa: S105
# Usage reports are signed with Standard Webhooks: whsec_ + base64 of a 24-byte key (local only).
LOCAL_REPORT_SIGNING_SECRETS = (
    "whsec_bG9jYWwtb25seS1yZXBvcnQta2V5LTAx",
    "whsec_bG9jYWwtb25seS1yZXBvcnQta2V5LTAw",
)
LOCAL_SECRETS = {
    "WEBHOOK_SECRET_ID": (LOCAL_WEBHOOK_SECRET, LOCAL_PREVIOUS_WEBHOOK_SECRET),
    "REPORT_SIGNING_SECRET_ID": LOCAL_REPORT_SIGNING_SECRETS,
}


# Forwarding: the Standard Webhooks signing secret (whsec_ + base64 of a 24-byte key; local only)
# and the application's own webhook header, which the forwarder sends on.
LOCAL_FORWARD_SIGNING_SECRETS = (
    "whsec_bG9jYWwtb25seS1mb3J3YXJkLWtleS0x",
    "whsec_bG9jYWwtb25seS1mb3J3YXJkLWtleS0w",
)
LOCAL_APP_AUTH_HEADER = {"header_name": "X-App-Webhook-Secret", "header_value": "local-only-app"}


def local_secret(variable: str) -> tuple[str, str]:
    """Local (current, previous) values for the secret a ``*_SECRET_ID`` variable names."""
    slug = variable.lower().removesuffix("_secret_id").replace("_", "-")
    return f"local-only-{slug}-secret", f"local-only-{slug}-secret-previous"


WEBHOOK_PATH = "/webhooks/assemblyai"
PLACEHOLDER_API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"  # when not served
PLACEHOLDER_WEBHOOK_URL = PLACEHOLDER_API_URL + WEBHOOK_PATH

# AssemblyAI projects of the local stack, beyond those of the template's default: "eu" (EU
# region) and "legacy", whose key AssemblyAI no longer accepts (its deliveries are dead-lettered).
EXTRA_PROJECTS = {
    "eu": "https://api.eu.assemblyai.com",
    "legacy": "https://api.assemblyai.com",
}
REVOKED_PROJECTS = frozenset({"legacy"})

COMPLETED_ID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01"
ERROR_ID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a02"
MULTICHANNEL_ID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a03"
UNKNOWN_MODEL_ID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a04"
LEGACY_ID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a05"
EU_ID = "e7d1c2b3-8f40-4c6e-a1f2-3b4c5d6e7f80"
LOST_ID = (
    "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a06"  # its webhook never arrives: reconciliation finds it
)
UNKNOWN_MODEL = "universal-4-preview"  # a model name the assemblyai SDK has never heard of


@dataclass(frozen=True)
class Submission:
    """A transcript as the app submitted it: who it belongs to and what AssemblyAI made of it."""

    transcript_id: str
    customer_id: str
    params: dict[str, str] = field(default_factory=dict)  # project and billing dimensions
    fields: dict[str, Any] = field(default_factory=dict)  # for assemblyai_standin.transcript()

    def query(self, customer_id: str | None = None) -> str:
        return urlencode({"customer_id": customer_id or self.customer_id, **self.params})


SUBMISSIONS = (
    Submission(
        COMPLETED_ID,
        "acme-corp",
        {"plan": "pro"},
        {"audio_duration": 754, "speaker_labels": True, "keyterms_prompt": ["AcmeCloud"]},
    ),
    Submission(
        ERROR_ID,
        "globex",
        {},
        {
            "status": "error",
            "error": "Download error, unable to download "
            "https://storage.example.invalid/calls/missing.mp3. Please make sure the file exists "
            "and is accessible from the internet.",
        },
    ),
    Submission(
        MULTICHANNEL_ID,
        "acme-corp",
        {"plan": "pro"},
        {
            "audio_duration": 312.5,
            "multichannel": True,
            "audio_channels": 2,
            "speech_model_used": "universal-2",
            "sentiment_analysis": True,
            # free on Universal-2, paid on Universal-3 Pro (the price table's per_model price)
            "keyterms_prompt": ["AcmeCloud"],
        },
    ),
    Submission(
        EU_ID,
        "initech-gmbh",
        # team is a billing dimension (BillingDimensions); order_id is the app's own parameter:
        # passed on to the app with the notification, never billed or stored.
        {"project": "eu", "team": "research", "order_id": "po-4711"},
        {"audio_duration": 1800, "language_code": "de", "domain": "medical-v1"},
    ),
    Submission(
        UNKNOWN_MODEL_ID,
        "umbrella",
        {},
        {"audio_duration": 421, "speech_model_used": UNKNOWN_MODEL},
    ),
    Submission(LEGACY_ID, "hooli", {"project": "legacy"}, {"audio_duration": 95}),
    Submission(
        LOST_ID,
        "globex",
        {"plan": "basic"},
        {
            "audio_duration": 1260.25,
            "speech_model_used": "universal-2",
            "language_code": "fr",
            # a Speech Understanding task, completed: recorded as an add-on of its own
            "speech_understanding": {
                "request": {"translation": {"target_languages": ["en"], "formal": True}},
                "response": {"translation": {"status": "success"}},
            },
        },
    ),
)


def fixture_transcripts(webhook_url: str = PLACEHOLDER_WEBHOOK_URL) -> list[dict[str, Any]]:
    """The stand-in's transcripts, each echoing the webhook URL it was submitted with and owned by
    its project's API key."""
    return [
        transcript(
            s.transcript_id,
            webhook_url=f"{webhook_url}?{s.query()}",
            api_key=local_api_key(s.params.get("project", "default")),
            **s.fields,
        )
        for s in SUBMISSIONS
    ]


def projects(template_default: str, secrets_prefix: str) -> dict[str, dict[str, str]]:
    """The AssemblyAIProjects parameter of the local stack: the template's default plus ours."""
    configured: dict[str, dict[str, str]] = json.loads(template_default)
    for name, base_url in EXTRA_PROJECTS.items():
        configured.setdefault(
            name,
            {"api_key_secret_id": f"{secrets_prefix}/assemblyai/{name}", "base_url": base_url},
        )
    return configured


def local_api_key(project: str) -> str:
    state = "revoked" if project in REVOKED_PROJECTS else "valid"
    return f"local-{state}-key-{project}"


# -- the demo's deliveries ----------------------------------------------------------------------
Auth = Literal["current", "previous", "wrong"]


@dataclass(frozen=True)
class Delivery:
    """One webhook POST the demo sends, and the answer it must get."""

    label: str
    query: str
    body: bytes
    expect_status: int
    expect: str  # the answer's "status" (accepted, ignored) or "error" code
    auth: Auth = "current"
    transcript_id: str | None = None
    fault: tuple[int, int] | None = None  # AssemblyAI first answers (status, Retry-After) once


def _notification(transcript_id: str, status: str = "completed") -> bytes:
    return json.dumps({"transcript_id": transcript_id, "status": status}).encode()


def _by_id(transcript_id: str) -> Submission:
    return next(s for s in SUBMISSIONS if s.transcript_id == transcript_id)


def late_delivery(transcript_id: str) -> Delivery:
    """The webhook of a transcript that reconciliation recovered, arriving after all."""
    return _delivery(f"{_by_id(transcript_id).customer_id}: late webhook", transcript_id)


def _delivery(label: str, transcript_id: str, status: str = "completed", **kw: Any) -> Delivery:
    submission = _by_id(transcript_id)
    return Delivery(
        label=label,
        query=submission.query(kw.pop("customer_id", None)),
        body=_notification(transcript_id, status),
        expect_status=kw.pop("expect_status", 200),
        expect=kw.pop("expect", "accepted"),
        transcript_id=transcript_id,
        **kw,
    )


DELIVERIES = (
    _delivery("acme-corp: completed", COMPLETED_ID),
    _delivery("globex: error", ERROR_ID, "error"),
    _delivery("acme-corp: completed again (duplicate)", COMPLETED_ID),
    _delivery(
        "acme-corp: multichannel, AssemblyAI answers 429 first",
        MULTICHANNEL_ID,
        fault=(429, 1),
    ),
    _delivery("initech-gmbh: EU project", EU_ID),
    _delivery("umbrella: unknown model name", UNKNOWN_MODEL_ID),
    _delivery("umbrella: previous (rotated) secret", UNKNOWN_MODEL_ID, auth="previous"),
    _delivery("hooli: project whose API key was revoked", LEGACY_ID),
    _delivery("globex: claims acme-corp's transcript", COMPLETED_ID, customer_id="globex"),
    Delivery(
        "acme-corp: redacted audio ready",
        _by_id(COMPLETED_ID).query(),
        json.dumps(
            {"status": "redacted_audio_ready", "redacted_audio_url": "https://example.invalid/r"}
        ).encode(),
        200,
        "ignored",
    ),
    _delivery(
        "acme-corp: bad auth header",
        COMPLETED_ID,
        auth="wrong",
        expect_status=401,
        expect="unauthorized",
    ),
    Delivery(
        "acme-corp: malformed body",
        _by_id(COMPLETED_ID).query(),
        b'{"transcript_id": "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01", "status": ',
        400,
        "invalid_json",
    ),
    Delivery(  # never a 4xx: billed from the transcript's own webhook_url (here: a duplicate)
        "no customer_id in the URL",
        "plan=pro",
        _notification(COMPLETED_ID),
        200,
        "accepted",
    ),
)


class LedgerFacts(NamedTuple):
    """What a ledger row must say (the demo compares these, not whole items)."""

    source_id: str
    customer_id: str
    project: str
    status: str  # billable | failed
    billable_seconds: Decimal
    model: str
    dimensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, item: dict[str, Any]) -> LedgerFacts:
        return cls(
            str(item["source_id"]),
            str(item["customer_id"]),
            str(item["project"]),
            str(item["status"]),
            Decimal(item["billable_seconds"]),
            str(item["model"]),
            tuple(sorted((item.get("dimensions") or {}).items())),
        )


PLAN_PRO = (("plan", "pro"),)
EXPECTED_LEDGER = (
    LedgerFacts(
        COMPLETED_ID, "acme-corp", "default", "billable", Decimal(754), "universal-3-pro", PLAN_PRO
    ),
    LedgerFacts(ERROR_ID, "globex", "default", "failed", Decimal(0), "unknown"),
    LedgerFacts(
        MULTICHANNEL_ID, "acme-corp", "default", "billable", Decimal(625), "universal-2", PLAN_PRO
    ),
    LedgerFacts(
        EU_ID,
        "initech-gmbh",
        "eu",
        "billable",
        Decimal(1800),
        "universal-3-pro",
        (("team", "research"),),
    ),
    LedgerFacts(UNKNOWN_MODEL_ID, "umbrella", "default", "billable", Decimal(421), UNKNOWN_MODEL),
)
EXPECTED_QUARANTINE = ((COMPLETED_ID, "customer_mismatch"),)
EXPECTED_DEAD_LETTERS = ((LEGACY_ID, "assemblyai_auth"),)
