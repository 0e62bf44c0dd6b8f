"""``usage-meter-ops limits ...``: allowances per customer and plan, from the operator's shell.

    $ops limits set --plan trial --limit async:10h --reason "trial: 10 hours of async"
    $ops limits set --customer acme --limit all:36000s --limit all:50cost:soft:80/100 --reason "..."
    $ops limits set --customer acme --inherit --reason "back to the plan's allowance"
    $ops limits plan --customer acme --plan trial --reason "signed up"
    $ops limits show --customer acme          # current allowance and every version
    $ops limits check --customer acme --product async

A limit is ``PRODUCT:AMOUNT[:soft|:hard][:T1/T2/...]``: PRODUCT is ``all``, ``async`` or
``streaming``; AMOUNT ends in ``h`` (hours), ``s`` (seconds) or ``cost`` (the price table's
currency); ``hard`` (the default) makes the entitlement check say no once used up; thresholds
default to 50/80/100 percent. Changes are versioned and audited exactly like the allowance API's,
and the customers concerned are evaluated at once (threshold events go to the meter's bus).
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from usage_meter.logic.pricing import SECONDS_PER_HOUR
from usage_meter.models.identifiers import CUSTOMER_ID_RULE, is_customer_id, normalize_customer_id
from usage_meter.models.limits import DEFAULT_THRESHOLDS, AllowanceSet, Limit


class UsageError(Exception):
    """Bad input from the operator, e.g. a missing resource flag (exit code 2, no traceback)."""


def customer_id(value: str) -> str:
    """An argparse type: the NFC-normalized customer id, or ArgumentTypeError with the rule
    (exit code 2) -- a malformed id is bad input, not an empty result."""
    normalized = normalize_customer_id(value)
    if not is_customer_id(normalized):
        raise argparse.ArgumentTypeError(f"{CUSTOMER_ID_RULE}, got {value[:40]!r}")
    return normalized


def parse_limit(spec: str) -> Limit:
    """``async:10h`` -> Limit(product="async", unit="seconds", amount=36000). Raises
    argparse.ArgumentTypeError with the rule."""
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > 4:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected PRODUCT:AMOUNT[:soft|hard][:T/T]")
    product, amount, *rest = parts
    enforcement = "hard"
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    for part in rest:
        if part in ("soft", "hard"):
            enforcement = part
        else:
            try:
                thresholds = tuple(int(t) for t in part.split("/"))
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"{spec!r}: thresholds are T/T/T") from exc
    for suffix, unit, factor in (
        ("cost", "cost", Decimal(1)),
        ("h", "seconds", SECONDS_PER_HOUR),
        ("s", "seconds", Decimal(1)),
    ):
        if amount.endswith(suffix):
            try:
                value = Decimal(amount.removesuffix(suffix)) * factor
            except InvalidOperation as exc:
                raise argparse.ArgumentTypeError(f"{spec!r}: bad amount") from exc
            try:
                return Limit.model_validate(
                    {
                        "product": product,
                        "unit": unit,
                        "amount": value,
                        "enforcement": enforcement,
                        "thresholds": thresholds,
                    }
                )
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"{spec!r}: {exc}") from exc
    raise argparse.ArgumentTypeError(f"{spec!r}: the amount ends in h, s or cost")


def add_parser(commands: Any) -> None:
    limits = commands.add_parser("limits", help="allowances per customer and plan; audited")
    actions = limits.add_subparsers(dest="action", required=True)

    set_ = actions.add_parser("set", help="set a customer's or a plan's allowance")
    who = set_.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer", type=customer_id)
    who.add_argument("--plan")
    what = set_.add_mutually_exclusive_group(required=True)
    what.add_argument("--limit", action="append", type=parse_limit, metavar="SPEC")
    what.add_argument("--inherit", action="store_true", help="drop the customer's own set")
    set_.add_argument("--reason", required=True)

    plan = actions.add_parser("plan", help="put a customer on a plan (or --none)")
    plan.add_argument("--customer", required=True, type=customer_id)
    which = plan.add_mutually_exclusive_group(required=True)
    which.add_argument("--plan", dest="plan_name")
    which.add_argument("--none", action="store_true")
    plan.add_argument("--reason", required=True)

    show = actions.add_parser("show", help="current allowance and its versions")
    shown = show.add_mutually_exclusive_group(required=True)
    shown.add_argument("--customer", type=customer_id)
    shown.add_argument("--plan")

    check = actions.add_parser("check", help="the entitlement check, as the API answers it")
    check.add_argument("--customer", required=True, type=customer_id)
    check.add_argument(
        "--product",
        choices=["async", "streaming", "sync", "voice_agent", "llm_gateway"],
        default="async",
    )
    check.add_argument("--prices", default="usage_meter/config/prices.json")


def run(args: argparse.Namespace, table: str, event_bus: str | None) -> Any:
    """Run one ``limits`` action; returns what to print. Raises OperationRefused."""
    import json

    import boto3

    from usage_meter.adapters.audit_log import DynamoAuditLog
    from usage_meter.adapters.limits_table import DynamoLimits
    from usage_meter.adapters.price_table import load_price_table
    from usage_meter.adapters.threshold_events import EventBridgeThresholdPublisher
    from usage_meter.logic import allowances
    from usage_meter.logic.entitlement import check_entitlement
    from usage_meter.logic.thresholds import ThresholdWatcher

    dynamodb = boto3.client("dynamodb")
    store = DynamoLimits(dynamodb, table)
    if args.action == "show":
        kind, name = ("customer", args.customer) if args.customer else ("plan", args.plan)
        if kind == "customer":
            current = store.customer_allowance(name)
            now = json.loads(current.model_dump_json()) if current else None
        else:
            limits, version = store.plan_allowance(name)
            now = (
                {"limits": json.loads(limits.model_dump_json()), "version": version}
                if limits
                else None
            )
        return {kind: name, "current": now, "history": store.allowance_history(kind, name)}
    prices = load_price_table(getattr(args, "prices", "usage_meter/config/prices.json"))
    if args.action == "check":
        answer = check_entitlement(args.customer, args.product, store, prices)
        return json.loads(answer.model_dump_json())

    if not event_bus:
        raise UsageError("give --stack-name or --event-bus (threshold events go there)")

    class _Metrics:
        def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
            return None

    watcher = ThresholdWatcher(
        store, EventBridgeThresholdPublisher(boto3.client("events"), event_bus), prices, _Metrics()
    )
    deps = allowances.AllowanceDeps(store, DynamoAuditLog(dynamodb, table), watcher)
    change = allowances.AllowanceChange(args.actor, args.reason)
    if args.action == "plan":
        return allowances.assign_plan(
            args.customer, None if args.none else args.plan_name, change, deps
        )
    limit_set = None if args.inherit else AllowanceSet(limits=tuple(args.limit))
    if args.customer:
        return allowances.set_customer_allowance(args.customer, limit_set, change, deps)
    if limit_set is None:
        raise allowances.OperationRefused("a plan always has a set: give --limit")
    return allowances.set_plan_allowance(args.plan, limit_set, change, deps)
