"""The "accounted for" property of issue 9: for any mix of valid and invalid attributions, deleted
transcripts, duplicated and lost webhooks, every finished transcript whose webhook_url pointed at
this deployment ends billed (a ledger row) or quarantined with a reason; none is absent. No
authenticated delivery naming a transcript is refused, and usage is billed to the right customer
whenever an attribution is valid.

The real intake logic, processor, reconciliation and DynamoDB adapter (moto) run; AssemblyAI is an
in-memory fake serving the same JSON shapes as the stand-in (GET and the list endpoint).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WEBHOOK_BASE_URL, examples
from embedded_aws import EmbeddedAws
from usage_meter.adapters.reconcile_store import DynamoReconcileStore
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.errors import RequestRejected
from usage_meter.logic.reconciliation import reconcile_project
from usage_meter.logic.usage_processing import ProcessorDeps, process_usage_message
from usage_meter.logic.webhook_intake import IntakeLimits, WebhookRequest, accept_webhook
from usage_meter.models.webhook import UsageMessage
from usage_meter_local.assemblyai_standin import transcript

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SECRET = "s3cret"
DELETED = "http://deleted_by_user"
VALID_CUSTOMERS = ["acme", "müller-gmbh", "mu\u0308ller-gmbh", "acme corp", "東京-1"]
INVALID_CUSTOMERS = ["=cmd", "a/b", "", " lead", "x" * 129]


class Secrets:
    def accepted_values(self, *, refresh: bool = False) -> list[str]:
        return [SECRET]


@dataclass
class Queue:
    bodies: list[str] = field(default_factory=list)

    def enqueue(self, message: UsageMessage) -> None:
        self.bodies.append(message.to_json())


class Metrics:
    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        return None


@dataclass
class FakeAssemblyAI:
    """GET /v2/transcript/{id} and the list (newest first, one page)."""

    payloads: dict[str, dict[str, Any]]

    def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
        return dict(self.payloads[transcript_id])

    def list_page(self, project: str, before_id: str | None, limit: int = 200) -> dict[str, Any]:
        items = [
            {
                "id": p["id"],
                "status": p["status"],
                "created": p["_created"],
                "completed": p["_completed"],
            }
            for p in reversed(self.payloads.values())
        ]
        return {"transcripts": [] if before_id else items, "page_details": {"prev_url": None}}


@dataclass(frozen=True)
class Spec:
    customer: str | None  # None: no customer_id parameter at all
    status: str
    deleted: bool
    copies: int  # webhook deliveries (0: the webhook was lost)
    mangled: bool  # the delivery's query differs from the webhook_url's and is broken


specs = st.lists(
    st.builds(
        Spec,
        customer=st.one_of(st.none(), st.sampled_from(VALID_CUSTOMERS + INVALID_CUSTOMERS)),
        status=st.sampled_from(["completed", "error"]),
        deleted=st.booleans(),
        copies=st.integers(0, 3),
        mangled=st.booleans(),
    ),
    min_size=1,
    max_size=7,
)


def _query(spec: Spec) -> str:
    parts = [] if spec.customer is None else [f"customer_id={quote(spec.customer, safe='')}"]
    return "&".join([*parts, "moduleId=m1"])


def _stamp(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat()


def _setup(items: list[Spec], foreign: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
    payloads: dict[str, dict[str, Any]] = {}
    ids: list[str] = []
    for n, spec in enumerate(items):
        tid = f"t{n}"
        ids.append(tid)
        url = f"{WEBHOOK_BASE_URL}?{_query(spec)}"
        created = NOW - timedelta(hours=len(items) - n)
        payloads[tid] = transcript(
            tid,
            webhook_url=DELETED if spec.deleted else url,
            audio_url=DELETED if spec.deleted else f"https://x.invalid/{tid}.wav",
            status=spec.status,
            speech_model_used=None if spec.deleted else "universal-3-pro",
            error="bad audio" if spec.status == "error" else None,
            created=_stamp(created),
            completed=_stamp(created + timedelta(minutes=1)),
        )
    for n in range(foreign):
        tid = f"f{n}"
        payloads[tid] = transcript(
            tid,
            webhook_url="https://elsewhere.example/hook?customer_id=acme",
            created=_stamp(NOW - timedelta(minutes=30 - n)),
            completed=_stamp(NOW - timedelta(minutes=29 - n)),
        )
    return payloads, ids


class Events:
    """The bus (issue 13): every accepted notification is published; nothing here reads them."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.published.append((detail_type, detail))


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=specs, foreign=st.integers(0, 2), data=st.data())
def test_every_finished_transcript_is_billed_or_quarantined(
    embedded_aws: EmbeddedAws, items: list[Spec], foreign: int, data: st.DataObject
) -> None:
    payloads, ids = _setup(items, foreign)
    source = FakeAssemblyAI(payloads)
    queue = Queue()
    limits = IntakeLimits(
        auth_header_name="x-auth",
        max_body_bytes=4096,
        billing_dimensions=frozenset({"moduleId"}),
    )

    # Every webhook delivery is authenticated and names its transcript: none may be refused
    for tid, spec in zip(ids, items, strict=True):
        for _ in range(spec.copies):
            query = "customer_id=%FF&moduleId=m1" if spec.mangled else _query(spec)
            request = WebhookRequest(
                headers={"x-auth": SECRET},
                raw_query=query,
                body=json.dumps({"transcript_id": tid, "status": spec.status}),
                body_is_base64=False,
                received_at=NOW,
            )
            try:
                accept_webhook(request, limits, Secrets(), queue, Events())
            except RequestRejected as refused:  # pragma: no cover - the property under test
                raise AssertionError(f"{tid}: refused ({refused.kind})") from refused

    # The session's embedded AWS (tests/embedded_aws.py), its usage table emptied first
    dynamodb = embedded_aws.client("dynamodb")
    table = embedded_aws.fresh().tables["UsageTable"]
    ledger = DynamoUsageLedger(dynamodb, table)
    deps = ProcessorDeps(
        transcripts=source,
        ledger=ledger,
        metrics=Metrics(),
        known_projects=frozenset({"default"}),
        billing_dimensions=limits.billing_dimensions,
    )
    # The processor sees the queued copies in any order
    for body in data.draw(st.permutations(queue.bodies)):
        process_usage_message(UsageMessage.from_json(body), deps)
    # Reconciliation runs once afterwards (lost webhooks)
    report = reconcile_project(
        "default",
        lister=source,
        store=DynamoReconcileStore(dynamodb, table),
        deps=deps,
        webhook_base_url=WEBHOOK_BASE_URL,
        horizon=timedelta(days=3),
        max_items=1000,
        time_left=lambda: 60.0,
        now=NOW,
        sleep=lambda _s: None,
    )
    rows = embedded_aws.table(table).scan()["Items"]

    billed = {r["source_id"]: r for r in rows if r.get("entity") == "ledger"}
    held = {r["source_id"]: r["reason"] for r in rows if r.get("entity") == "quarantine"}
    assert report.complete
    for tid, spec in zip(ids, items, strict=True):
        # Accounted for: billed or held with a reason, never absent
        assert tid in billed or tid in held, (tid, spec, report)
        valid = spec.customer in VALID_CUSTOMERS
        expected = unicodedata.normalize("NFC", spec.customer or "")
        delivered_valid = spec.copies > 0 and not spec.mangled
        if valid and (not spec.deleted or delivered_valid):
            # A valid attribution anywhere bills the right customer (a deleted transcript's only
            # attribution left is its delivery's; without a valid one it is held instead)
            assert tid in billed, (tid, spec, held.get(tid))
            assert billed[tid]["customer_id"] == expected
        if tid in billed:
            assert billed[tid]["customer_id"] in {
                unicodedata.normalize("NFC", c) for c in VALID_CUSTOMERS
            }
        if spec.deleted and tid in held:
            assert held[tid] == "transcript_deleted"
    for n in range(foreign):
        assert f"f{n}" not in billed and f"f{n}" not in held
