"""usage-meter-ops: the operator's command line (works against a deployed stack or the local one).

    ops="python -m usage_meter.ops_cli --stack-name usage-meter"
    $ops quarantine list
    $ops quarantine resolve ID --bill-to acme --reason "replayed id; belongs to acme"
    $ops dlq list
    $ops dlq redrive --reason "fixed the project API key"
    $ops reconcile --horizon-days 7 --reason "webhook outage on Nov 3"
    $ops export --month 2026-11 --reason "late data"
    $ops audit --month 2026-11
    $ops ledger --customer acme --month 2026-11 [--format csv]
    $ops coverage --month 2026-11
    $ops stripe map --customer acme --stripe-customer cus_123 --reason "signed up"

Resources come from the stack's outputs (``--stack-name``) or explicit flags; against the local
stack set ``AWS_ENDPOINT_URL`` (moto) and ``AWS_ENDPOINT_URL_LAMBDA`` (the local HTTP front, which
also answers Lambda's Invoke API): ``make local`` prints the whole command. Every action that
changes something is written to the audit trail in the usage table: who (``--actor``, default the
OS user), what, when, why (``--reason``, required) and the outcome.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3

from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.queues import DeadLetterBrowser, SqsUsageQueue
from usage_meter.adapters.usage_table import DynamoUsageLedger
from usage_meter.logic.coverage import coverage_report
from usage_meter.logic.errors import PermanentFailure, TransientFailure
from usage_meter.logic.line_items import line_item_document
from usage_meter.logic.operations import AuditEntry, OperationRefused, describe, resolve_quarantine

OUTPUTS = {
    "table": "UsageTableName",
    "queue_url": "UsageQueueUrl",
    "dlq_url": "UsageDeadLetterQueueUrl",
    "reconcile_function": "ReconciliationFunctionName",
    "export_function": "MonthlyExportFunctionName",
}


@dataclass(frozen=True)
class Target:
    table: str
    queue_url: str
    dlq_url: str
    reconcile_function: str | None
    export_function: str | None


def _target(args: argparse.Namespace) -> Target:
    found: dict[str, str | None] = {key: getattr(args, key) for key in OUTPUTS}
    if args.stack_name:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        for key, output in OUTPUTS.items():
            found[key] = found[key] or outputs.get(output)
    missing = [
        f"--{k.replace('_', '-')}" for k in ("table", "queue_url", "dlq_url") if not found[k]
    ]
    if missing:
        raise SystemExit(f"error: give --stack-name or {', '.join(missing)}")
    return Target(**found)  # type: ignore[arg-type]


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, sort_keys=True))  # noqa: T201


def _audit(
    ledger: DynamoUsageLedger, args: argparse.Namespace, action: str, target: str, outcome: str
) -> None:
    ledger.audit(AuditEntry(args.actor, action, target, args.reason, outcome, datetime.now(UTC)))


def _invoke(function_name: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    if not function_name:
        raise SystemExit("error: the function name is unknown; give --stack-name or the name flag")
    response = boto3.client("lambda").invoke(
        FunctionName=function_name, Payload=json.dumps(payload).encode()
    )
    result: dict[str, Any] = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise SystemExit(f"error: {function_name} failed: {json.dumps(result)}")
    return result


def _audited_invoke(
    ledger: DynamoUsageLedger,
    args: argparse.Namespace,
    action: str,
    what: str,
    *,
    function_name: str | None,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """Invoke a function for the operator; the audit trail records the outcome, failed or not."""
    try:
        result = _invoke(function_name, payload)
    except SystemExit as exc:
        _audit(ledger, args, action, what, f"failed: {exc.code}")
        raise
    _audit(ledger, args, action, what, json.dumps(result))
    return result


LEDGER_COLUMNS = (
    "source_id",
    "product",
    "project",
    "model",
    "dimensions",
    "billable_seconds",
    "add_ons",
    "occurred_at",
    "origin",
    "estimated",
    "status",
)


def print_ledger(ledger: DynamoUsageLedger, customer_id: str, month: str, fmt: str) -> None:
    """A customer's line items for a month, every page, as the export writes them (JSON lines or
    a CSV with the main columns), then a totals line that matches the export's summary rows."""
    count, seconds, cursor = 0, Decimal(0), None
    writer = csv.writer(sys.stdout, lineterminator="\n") if fmt == "csv" else None
    if writer:
        writer.writerow(LEDGER_COLUMNS)
    while True:
        rows, cursor = ledger.customer_ledger_page(customer_id, month, 500, cursor)
        for row in rows:
            document = line_item_document(row)
            if writer:
                writer.writerow(
                    ";".join(v) if isinstance(v := document[c], list) else v for c in LEDGER_COLUMNS
                )
            else:
                print(json.dumps(document, sort_keys=True))  # noqa: T201
            if document["status"] == "billable":
                count += 1
                seconds += row.billable_seconds
        if cursor is None:
            break
    summary = {
        "customer_id": customer_id,
        "month": month,
        "billable_rows": count,
        "billable_seconds": f"{seconds:f}",
    }
    print(f"# totals {json.dumps(summary)}", file=sys.stderr)  # noqa: T201


def _quarantine(args: argparse.Namespace, ledger: DynamoUsageLedger, queue: SqsUsageQueue) -> None:
    if args.action == "list":
        _print([{"id": ledger.quarantine_id(i), **describe(i)} for i in ledger.open_quarantine()])
    elif args.action == "show":
        item = ledger.quarantined(args.item_id)
        if item is None:
            raise SystemExit(f"error: no open quarantined item {args.item_id}")
        _print(describe(item))
    else:
        outcome = resolve_quarantine(
            args.item_id,
            action="dismiss" if args.dismiss else "bill",
            customer_id=args.bill_to,
            reason=args.reason,
            actor=args.actor,
            store=ledger,
            queue=queue,
        )
        _print({"id": args.item_id, "outcome": outcome})


def run(args: argparse.Namespace) -> int:
    target = _target(args)
    ledger = DynamoUsageLedger(boto3.client("dynamodb"), target.table)
    sqs = boto3.client("sqs")
    if args.command == "quarantine":
        _quarantine(args, ledger, SqsUsageQueue(sqs, target.queue_url))
    elif args.command == "dlq":
        browser = DeadLetterBrowser(sqs, target.dlq_url, target.queue_url)
        if args.action == "list":
            _print(browser.peek(args.limit))
        else:
            moved = browser.redrive(args.limit, set(args.id) if args.id else None)
            _audit(ledger, args, "dlq.redrive", target.dlq_url, f"{moved} message(s) moved")
            _print({"moved": moved})
    elif args.command == "reconcile":
        payload: dict[str, Any] = {"horizon_days": args.horizon_days}
        if args.project:
            payload["project"] = args.project
        what = args.project or "all projects"
        function_name = target.reconcile_function
        _print(
            _audited_invoke(
                ledger, args, "reconcile", what, function_name=function_name, payload=payload
            )
        )
    elif args.command == "ledger":
        print_ledger(ledger, args.customer, args.month, args.format)
    elif args.command == "stripe":
        from usage_meter.adapters.stripe_meter import DynamoSinkStore

        DynamoSinkStore(boto3.client("dynamodb"), target.table).map_customer(
            args.customer, args.stripe_customer
        )
        what = f"{args.customer} -> {args.stripe_customer}"
        _audit(ledger, args, "stripe.map", what, "mapped")
        _print({"customer_id": args.customer, "stripe_customer_id": args.stripe_customer})
    elif args.command == "coverage":
        uncovered = list(ledger.month_uncovered(args.month))
        report = coverage_report(args.month, uncovered, load_price_table(args.price_table))
        for project in report["projects"].values():
            project.pop("transcript_ids")  # listed in full below
            project.pop("transcript_ids_truncated")
        transcripts = [
            {
                "transcript_id": u.transcript_id,
                "project": u.project,
                "completed_at": u.completed_at.isoformat(),
                "billable_seconds": f"{u.billable_seconds:f}",
                "model": u.model,
                "reason": u.reason.value,
            }
            for u in uncovered
        ]
        _print({"month": args.month, "report": report, "transcripts": transcripts})
    elif args.command == "export":
        payload = {"month": args.month}
        function_name = target.export_function
        _print(
            _audited_invoke(
                ledger, args, "export", args.month, function_name=function_name, payload=payload
            )
        )
    else:
        _print(ledger.audit_log(args.month or datetime.now(UTC).strftime("%Y-%m")))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="usage-meter-ops", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack-name", help="read resource names from this CloudFormation stack")
    p.add_argument("--table", help="usage table name")
    p.add_argument("--queue-url", help="usage queue URL")
    p.add_argument("--dlq-url", help="dead-letter queue URL")
    p.add_argument("--reconcile-function", help="reconciliation function name")
    p.add_argument("--export-function", help="monthly export function name")
    p.add_argument("--actor", default=f"{getpass.getuser()}@{socket.gethostname()}")
    commands = p.add_subparsers(dest="command", required=True)

    quarantine = commands.add_parser("quarantine", help="quarantined usage and its reasons")
    q = quarantine.add_subparsers(dest="action", required=True)
    q.add_parser("list")
    show = q.add_parser("show")
    show.add_argument("item_id")
    resolve = q.add_parser("resolve", help="bill to a customer, or dismiss; audited")
    resolve.add_argument("item_id")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument("--bill-to", metavar="CUSTOMER_ID")
    how.add_argument("--dismiss", action="store_true")
    resolve.add_argument("--reason", required=True)

    dlq = commands.add_parser("dlq", help="dead-lettered usage messages")
    d = dlq.add_subparsers(dest="action", required=True)
    listing = d.add_parser("list")
    listing.add_argument("--limit", type=int, default=100)
    redrive = d.add_parser("redrive", help="move messages back to the usage queue; audited")
    redrive.add_argument("--id", action="append", help="only these message ids (repeatable)")
    redrive.add_argument("--limit", type=int, default=1000)
    redrive.add_argument("--reason", required=True)

    reconcile = commands.add_parser("reconcile", help="run a reconciliation now; audited")
    reconcile.add_argument("--project")
    reconcile.add_argument("--horizon-days", type=int, default=3)
    reconcile.add_argument("--reason", required=True)

    export = commands.add_parser("export", help="run the monthly export for a month; audited")
    export.add_argument("--month", required=True)
    export.add_argument("--reason", required=True)

    ledger = commands.add_parser("ledger", help="a customer's line items (ledger rows) for a month")
    ledger.add_argument("--customer", required=True)
    ledger.add_argument("--month", required=True)
    ledger.add_argument("--format", choices=("json", "csv"), default="json")

    coverage = commands.add_parser(
        "coverage", help="transcripts AssemblyAI bills that no customer is billed for"
    )
    coverage.add_argument("--month", required=True)
    coverage.add_argument(
        "--price-table",
        default="usage_meter/config/prices.json",
        help="price table for the estimated cost (relative to functions/)",
    )

    stripe_cmd = commands.add_parser("stripe", help="Stripe sink: map customers; audited")
    stripe_actions = stripe_cmd.add_subparsers(dest="action", required=True)
    mapping = stripe_actions.add_parser("map", help="bill a customer's usage to a Stripe customer")
    mapping.add_argument("--customer", required=True)
    mapping.add_argument("--stripe-customer", required=True, metavar="STRIPE_CUSTOMER_ID")
    mapping.add_argument("--reason", required=True)

    audit = commands.add_parser("audit", help="the audit trail for a month")
    audit.add_argument("--month")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except OperationRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except TransientFailure as exc:
        print(f"AWS unavailable, retry: {exc}", file=sys.stderr)  # noqa: T201
        return 3
    except PermanentFailure as exc:
        print(f"failed ({exc.reason}): {exc.message}", file=sys.stderr)  # noqa: T201
        return 4


if __name__ == "__main__":
    sys.exit(main())
