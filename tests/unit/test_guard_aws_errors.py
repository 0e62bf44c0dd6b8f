"""No AWS error leaves an adapter (issue 10: "Adapters translate every AWS error into a domain
error"). Every public method of every AWS adapter is called on a client whose every call fails,
once with a ClientError (a 503 and a throttle) and once with a BotoCoreError (the network): each
must raise a domain error (``logic.errors`` TransientFailure / PermanentFailure or a subclass,
or ``OperationRefused``), never botocore's. A new adapter class or method joins automatically; a
parameter the harness cannot fill fails the guard until a sample is added below."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from usage_meter.adapters import (
    audit_log,
    events,
    export_store,
    late_marks,
    ledger_pages,
    limits_table,
    quarantine_store,
    queues,
    reconcile_store,
    request_budget,
    secrets,
    session_store,
    stripe_meter,
    threshold_events,
    threshold_markers,
    usage_ledger,
    usage_reads,
)
from usage_meter.logic.errors import PermanentFailure, TransientFailure
from usage_meter.logic.operations import AuditEntry, OperationRefused
from usage_meter.models.coverage import UncoveredReason, UncoveredTranscript
from usage_meter.models.limits import AllowanceSet, Limit, ThresholdEvent
from usage_meter.models.reconciliation import Checkpoint, ReconcileCounts
from usage_meter.models.streaming import SessionBegin
from usage_meter.models.usage import QuarantineItem, QuarantineReason, UsageRecord, UsageStatus
from usage_meter.models.webhook import Attribution, UsageMessage

AT = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
DOMAIN_ERRORS = (TransientFailure, PermanentFailure, OperationRefused)
MODULES = [
    audit_log,
    events,
    export_store,
    late_marks,
    ledger_pages,
    limits_table,
    queues,
    quarantine_store,
    reconcile_store,
    request_budget,
    secrets,
    session_store,
    stripe_meter,
    threshold_events,
    threshold_markers,
    usage_ledger,
    usage_reads,
]
# Methods that never call AWS (pure helpers on an adapter).
PURE = {"quarantine_id", "usage_confirmed", "key"}
# Best effort by design (documented on the method): may swallow a failure, never leak it.
BEST_EFFORT = {"SqsUsageQueue.retry_after"}

RECORD = UsageRecord(
    source_id="t1",
    product="async",
    status=UsageStatus.BILLABLE,
    customer_id="acme",
    project="default",
    month="2026-11",
    billable_seconds=Decimal(60),
    occurred_at=AT,
)
THRESHOLD = ThresholdEvent(
    customer_id="acme",
    month="2026-11",
    unit="seconds",
    product="all",
    threshold_percent=80,
    allowance=Decimal(100),
    used=Decimal(80),
    event_id="e-1",
    enforcement="hard",
    allowance_source="customer",
    allowance_version=1,
    reached_at=AT,
)
LIMITS = AllowanceSet(limits=(Limit(unit="seconds", amount=Decimal(100), thresholds=(80,)),))
SAMPLES: dict[str, Any] = {
    "record": RECORD,
    "existing": RECORD,
    "replacement": RECORD,
    "begin": SessionBegin(
        session_id="s1", customer_id="acme", model="universal-streaming-english", began_at=AT
    ),
    "entry": AuditEntry("ops", "quarantine.dismiss", "t1", "why", "dismissed", AT),
    "checkpoint": Checkpoint(horizon=AT, before_id=None, counts=ReconcileCounts()),
    "item_id": "t1/conflict#abc",
    "resolution": {"action": "dismiss"},
    "message": UsageMessage(
        transcript_id="t1",
        webhook_status="completed",
        attribution=Attribution("acme", "default", {}),
        received_at=AT,
        origin="webhook",
    ),
    "event": THRESHOLD,
    "own": LIMITS,
    "limits": LIMITS,
    "plan_limits": None,
    "change": {"reason": "guard"},
    "detail_type": "UsageRecorded",
    "files": {"usage.csv": b"x"},
    "body": "{}",
    "name": next(iter(export_store.DATASETS)),
    "ids": None,
    "source_ids": ["t1", "t2"],
    "only": None,
}
BY_METHOD: dict[tuple[str, str], Any] = {
    ("publish", "detail"): {"k": "v"},
    ("quarantine", "item"): QuarantineItem(
        source_id="t1",
        reason=QuarantineReason.CONFLICT,
        detail="d",
        message={"a": 1},
        quarantined_at=AT,
    ),
    ("record_uncovered", "item"): UncoveredTranscript(
        transcript_id="t1",
        project="default",
        month="2026-11",
        completed_at=AT,
        billable_seconds=Decimal(60),
        model="universal-3-pro",
        features=(),
        reason=UncoveredReason.NO_WEBHOOK,
    ),
}
TEXT_NAMES = {
    "product",
    "source_id",
    "month",
    "customer_id",
    "project",
    "verdict",
    "detail",
    "reason",
    "session_id",
    "plan",
    "kind",
    "identifier",
    "value",
    "event_name",
    "stripe_customer_id",
    "receipt_handle",
}
INT_NAMES = {
    "seen",
    "limit",
    "version",
    "expected_version",
    "plan_version",
    "seconds",
    "retry_after_seconds",
}


def _failing(error: Exception) -> Any:
    """A boto3 client whose every operation (and paginator) raises ``error``."""

    def fail(*_: Any, **__: Any) -> Any:
        raise error

    class Paginator:
        def paginate(self, **_: Any) -> Iterator[Any]:
            """Lazy, like botocore's: the call (and its failure) comes with the first page."""
            yield from ()
            raise error

    class Client:
        def get_paginator(self, _name: str) -> Paginator:
            return Paginator()

        def __getattr__(self, _name: str) -> Callable[..., Any]:
            return fail

    return Client()


def _adapters() -> list[type]:
    found = []
    for module in MODULES:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or issubclass(cls, BaseException):
                continue
            first = list(inspect.signature(cls.__init__).parameters)[1:2]
            if first == ["client"]:
                found.append(cls)
    return found


def _argument(method: str, name: str, parameter: inspect.Parameter) -> Any:
    if (method, name) in BY_METHOD:
        return BY_METHOD[(method, name)]
    if name in SAMPLES:
        return SAMPLES[name]
    if name in TEXT_NAMES:
        return "x1"
    if name in INT_NAMES:
        return 1
    if name in {"began_before", "since", "now", "stale_before"}:
        return AT
    if parameter.default is not inspect.Parameter.empty:
        return parameter.default
    raise AssertionError(f"no sample for {method}({name}): add one to the guard")


def _calls() -> list[tuple[type, str]]:
    calls = []
    for cls in _adapters():
        for name, _ in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_") and name not in PURE:
                calls.append((cls, name))
    return calls


def _construct(cls: type, client: Any) -> Any:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[2:]
    args = [
        60
        if p.annotation in ("int", "float")
        else "https://sqs.test/q"
        if p.name.endswith("url")
        else "x1"
        for p in parameters
        if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    return cls(client, *args)


def test_the_guard_sees_every_table_adapter() -> None:
    names = {cls.__name__ for cls in _adapters()}
    assert {
        "DynamoUsageLedger",
        "DynamoSessionStore",
        "DynamoQuarantine",
        "DynamoAuditLog",
        "DynamoReconcileStore",
        "DynamoUsageReader",
        "DynamoLedgerPages",
        "DynamoLateUsageMarks",
        "DynamoLimits",
        "DynamoSinkStore",
        "S3ExportStore",
        "SqsUsageQueue",
        "SharedRequestPacer",
        "CachedSecret",
    } <= names
    assert len(_calls()) > 40


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "x"}}, "Op"),
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "Op"),
        EndpointConnectionError(endpoint_url="https://dynamodb.test"),
    ],
    ids=["503", "throttled", "network"],
)
def test_no_aws_error_leaves_an_adapter(error: Exception) -> None:
    leaked = []
    for cls, name in _calls():
        adapter = _construct(cls, _failing(error))
        method = getattr(adapter, name)
        parameters = inspect.signature(method).parameters
        kwargs = {
            p: _argument(name, p, parameter)
            for p, parameter in parameters.items()
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        }
        try:
            result = method(**kwargs)
            if inspect.isgenerator(result) or isinstance(result, Iterator):
                list(result)
        except DOMAIN_ERRORS:
            continue
        except (ClientError, BotoCoreError) as exc:
            leaked.append(f"{cls.__name__}.{name}: {type(exc).__name__}")
            continue
        if f"{cls.__name__}.{name}" not in BEST_EFFORT:
            leaked.append(f"{cls.__name__}.{name}: returned instead of failing")
    assert leaked == [], "\n".join(leaked)
