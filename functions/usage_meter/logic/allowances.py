"""Operator actions on allowances: versioned, audited, and applied from the change on.

Each change writes the next version of the current item together with its history entry in one
transaction (a concurrent change of the same customer or plan makes one of them retry), then an
audit entry (who, what, why, outcome), then evaluates the affected customers' thresholds for the
current month at once, so a lowered allowance alerts now rather than at the next usage.

A plan's set is copied into each member's allowance item (so the entitlement check stays one
request): a plan change walks the plan's members and brings each copy to the new version, never
backwards. A customer assigned to a plan takes the plan's current version, and checks again after
writing, so a plan change racing with the assignment is not missed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.operations import AuditEntry, InvalidOperation, OperationRefused
from usage_meter.logic.ports import AuditTrail

__all__ = ["AllowanceChange", "AllowanceDeps", "InvalidOperation", "OperationRefused"]
from usage_meter.models.identifiers import (
    CUSTOMER_ID_RULE,
    PLAN_RULE,
    is_customer_id,
    is_plan_name,
)
from usage_meter.models.limits import AllowanceSet, CustomerAllowance
from usage_meter.models.months import current_month

ATTEMPTS = 3


class AllowanceStore(Protocol):
    def customer_allowance(self, customer_id: str) -> CustomerAllowance | None: ...

    def plan_allowance(self, plan: str) -> tuple[AllowanceSet | None, int]: ...

    def put_customer_change(
        self,
        customer_id: str,
        *,
        expected_version: int,
        own: AllowanceSet | None,
        plan: str | None,
        plan_limits: AllowanceSet | None,
        plan_version: int,
        change: dict[str, Any],
    ) -> bool: ...

    def put_plan_change(
        self, plan: str, *, expected_version: int, limits: AllowanceSet, change: dict[str, Any]
    ) -> bool: ...

    def plan_members(self, plan: str) -> list[str]: ...

    def refresh_plan_copy(
        self, customer_id: str, plan: str, limits: AllowanceSet, version: int
    ) -> bool: ...


class Evaluator(Protocol):
    def evaluate(self, customer_id: str, month: str) -> list[Any]: ...


@dataclass(frozen=True)
class AllowanceDeps:
    store: AllowanceStore
    audit: AuditTrail
    evaluator: Evaluator


@dataclass(frozen=True)
class AllowanceChange:
    """Who asks for a change, and why (both required, like every operator action)."""

    actor: str
    reason: str


def _check(change: AllowanceChange) -> None:
    if not change.reason.strip():
        raise InvalidOperation("a reason is required")
    if not change.actor.strip():
        raise InvalidOperation("an actor is required")


def _evaluate(evaluator: Evaluator, customers: list[str]) -> dict[str, Any]:
    """Thresholds of the current month after a change; a failure is reported, not raised (the
    change is stored; the next usage evaluates again)."""
    month = current_month()
    published: list[str] = []
    failed: list[str] = []
    for customer in customers:
        try:
            published += [e.event_id for e in evaluator.evaluate(customer, month)]
        except TransientFailure:
            failed.append(customer)
    return {"thresholds_published": published, "evaluation_failed": failed}


class _Assignment(TypedDict):
    """What a customer change writes: its own set, its plan and the copy of the plan's limits."""

    own: AllowanceSet | None
    plan: str | None
    plan_limits: AllowanceSet | None
    plan_version: int


def _change_customer(
    store: AllowanceStore,
    customer_id: str,
    new: Callable[[CustomerAllowance], _Assignment],
    history: dict[str, Any],
) -> int:
    """Write the customer's next version, ``new(current)``. Optimistic: read, write if still at
    that version, up to ATTEMPTS times. Returns the version written; raises OperationRefused
    when it kept changing."""
    for _ in range(ATTEMPTS):
        current = store.customer_allowance(customer_id) or CustomerAllowance(
            customer_id=customer_id
        )
        version = current.own_version
        if store.put_customer_change(
            customer_id, expected_version=version, change=history, **new(current)
        ):
            return version + 1
    raise OperationRefused(f"{customer_id}'s allowance kept changing; try again")


def set_customer_allowance(
    customer_id: str,
    limits: AllowanceSet | None,
    change: AllowanceChange,
    deps: AllowanceDeps,
) -> dict[str, Any]:
    """Give ``customer_id`` its own set (``None``: drop it and inherit its plan's again).
    Returns the new version and what the evaluation published. Raises OperationRefused."""
    _check(change)
    if not is_customer_id(customer_id):
        raise InvalidOperation(CUSTOMER_ID_RULE)
    version = _change_customer(
        deps.store,
        customer_id,
        lambda current: _Assignment(
            own=limits,
            plan=current.plan,
            plan_limits=current.plan_limits,
            plan_version=current.plan_version,
        ),
        _history(change, "customer_allowance"),
    )
    what = limits.model_dump_json() if limits is not None else "inherit plan"
    outcome = {
        "customer_id": customer_id,
        "version": version,
        "limits": json.loads(what) if limits is not None else None,
    }
    deps.audit.audit(_entry(change, "allowance.set", f"customer:{customer_id}", outcome))
    return outcome | _evaluate(deps.evaluator, [customer_id])


def assign_plan(
    customer_id: str,
    plan: str | None,
    change: AllowanceChange,
    deps: AllowanceDeps,
) -> dict[str, Any]:
    """Put ``customer_id`` on ``plan`` (``None``: no plan). Versioned with the customer's own
    changes. Raises OperationRefused (unknown plan, bad ids)."""
    _check(change)
    if not is_customer_id(customer_id):
        raise InvalidOperation(CUSTOMER_ID_RULE)
    plan_limits, plan_version = None, 0
    if plan is not None:
        if not is_plan_name(plan):
            raise InvalidOperation(PLAN_RULE)
        plan_limits, plan_version = deps.store.plan_allowance(plan)
        if plan_limits is None:
            raise OperationRefused(f"plan {plan!r} has no allowance yet; set it first")
    version = _change_customer(
        deps.store,
        customer_id,
        lambda current: _Assignment(
            own=current.own, plan=plan, plan_limits=plan_limits, plan_version=plan_version
        ),
        _history(change, "plan_assigned"),
    )
    if plan is not None:  # a plan change racing with this assignment: take the newer copy
        latest, latest_version = deps.store.plan_allowance(plan)
        if latest is not None and latest_version > plan_version:
            deps.store.refresh_plan_copy(customer_id, plan, latest, latest_version)
    outcome = {"customer_id": customer_id, "plan": plan, "version": version}
    deps.audit.audit(_entry(change, "allowance.assign_plan", f"customer:{customer_id}", outcome))
    return outcome | _evaluate(deps.evaluator, [customer_id])


def set_plan_allowance(
    plan: str,
    limits: AllowanceSet,
    change: AllowanceChange,
    deps: AllowanceDeps,
) -> dict[str, Any]:
    """Set a plan's default set (the next version) and bring every member's copy to it."""
    _check(change)
    if not is_plan_name(plan):
        raise InvalidOperation(PLAN_RULE)
    for _ in range(ATTEMPTS):
        _, current = deps.store.plan_allowance(plan)
        if deps.store.put_plan_change(
            plan, expected_version=current, limits=limits, change=_history(change, "plan_allowance")
        ):
            version = current + 1
            break
    else:
        raise OperationRefused(f"plan {plan!r} kept changing; try again")
    members = deps.store.plan_members(plan)
    refreshed = [m for m in members if deps.store.refresh_plan_copy(m, plan, limits, version)]
    outcome = {
        "plan": plan,
        "version": version,
        "limits": json.loads(limits.model_dump_json()),
        "members_updated": len(refreshed),
    }
    deps.audit.audit(_entry(change, "allowance.set_plan", f"plan:{plan}", outcome))
    return outcome | _evaluate(deps.evaluator, members)


def _history(change: AllowanceChange, kind: str) -> dict[str, Any]:
    return {
        "change": kind,
        "actor": change.actor,
        "reason": change.reason,
        "changed_at": datetime.now(UTC).isoformat(),
    }


def _entry(
    change: AllowanceChange, action: str, target: str, outcome: dict[str, Any]
) -> AuditEntry:
    return AuditEntry(
        change.actor,
        action,
        target,
        change.reason,
        json.dumps(outcome, sort_keys=True, default=str),
        datetime.now(UTC),
    )
