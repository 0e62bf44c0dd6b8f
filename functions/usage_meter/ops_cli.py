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
    $ops limits set --plan trial --limit async:10h --reason "trial plan"   (see ops_limits.py)

Resources come from the stack's outputs (``--stack-name``) or explicit flags; against the local
stack set ``AWS_ENDPOINT_URL`` (moto) and ``AWS_ENDPOINT_URL_LAMBDA`` (the local HTTP front, which
also answers Lambda's Invoke API): ``make local`` prints the whole command. Every action that
changes something is written to the audit trail in the usage table: who (``--actor``, default the
OS user), what, when, why (``--reason``, required) and the outcome.

Output is a readable table (lists) or ``key  value`` lines; ``--json`` prints JSON for scripts.
Exit codes: 0 done; 1 failed (AWS refused, a reconciliation that did not finish or has failed
items); 2 bad input or refused by the rules (unknown id, no region or credentials); 3 AWS
unavailable, retry; 4 a permanent failure (with its reason); 141 the reader of the output went
away (``| head``).
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import os
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3

from usage_meter import ops_limits
from usage_meter.adapters.audit_log import DynamoAuditLog
from usage_meter.adapters.aws_errors import AWS_ERRORS, AwsProblem, aws_problem
from usage_meter.adapters.ledger_pages import DynamoLedgerPages
from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.quarantine_store import DynamoQuarantine
from usage_meter.adapters.queues import DeadLetterBrowser, SqsUsageQueue
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.logic.coverage import coverage_report
from usage_meter.logic.errors import PermanentFailure, TransientFailure
from usage_meter.logic.line_items import line_item_document
from usage_meter.logic.operations import AuditEntry, OperationRefused, describe, resolve_quarantine
from usage_meter.models.months import MONTH_RULE, current_month, is_month
from usage_meter.ops_limits import UsageError, customer_id
from usage_meter.settings import HORIZON_DAYS_DEFAULT, HORIZON_DAYS_RULE, horizon_days

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 3
EXIT_PERMANENT = 4
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader went away
TABLE_CELL_WIDTH = 60

OUTPUTS = {
    "table": "UsageTableName",
    "queue_url": "UsageQueueUrl",
    "dlq_url": "UsageDeadLetterQueueUrl",
    "reconcile_function": "ReconciliationFunctionName",
    "export_function": "MonthlyExportFunctionName",
    "event_bus": "UsageEventBusName",
}


@dataclass(frozen=True)
class Target:
    table: str
    queue_url: str
    dlq_url: str
    reconcile_function: str | None
    export_function: str | None
    event_bus: str | None
    projects: frozenset[str] | None = None  # the stack's AssemblyAIProjects; None: not known


def _stack_projects(parameters: list[dict[str, str]]) -> frozenset[str] | None:
    """The project names of the stack's ``AssemblyAIProjects`` parameter (a JSON object keyed by
    project), or None when the stack does not show it (e.g. NoEcho, unreadable)."""
    for parameter in parameters:
        if parameter.get("ParameterKey") == "AssemblyAIProjects":
            try:
                document = json.loads(parameter.get("ParameterValue", ""))
            except ValueError:
                return None
            return frozenset(document) if isinstance(document, dict) else None
    return None


def _target(args: argparse.Namespace) -> Target:
    found: dict[str, str | None] = {key: getattr(args, key) for key in OUTPUTS}
    projects = None
    if args.stack_name:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        for key, output in OUTPUTS.items():
            found[key] = found[key] or outputs.get(output)
        projects = _stack_projects(stacks[0].get("Parameters", []))
    needed = ("table",) if args.command == "limits" else ("table", "queue_url", "dlq_url")
    missing = [f"--{k.replace('_', '-')}" for k in needed if not found[k]]
    if missing:
        raise UsageError(f"give --stack-name or {', '.join(missing)}")
    return Target(**found, projects=projects)  # type: ignore[arg-type]


_JSON = {"on": False}  # set from --json by run()


def _print(value: Any) -> None:
    text = (
        json.dumps(value, indent=2, default=str, sort_keys=True) if _JSON["on"] else render(value)
    )
    print(text)  # noqa: T201


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= TABLE_CELL_WIDTH else text[: TABLE_CELL_WIDTH - 1] + "…"


def render(value: Any) -> str:
    """What a person reads: a list of records as a table (one column per field, long values cut
    at 60 characters, "(none)" for an empty list), a record as ``key  value`` lines."""
    if isinstance(value, list):
        if not value:
            return "(none)"
        rows = [v if isinstance(v, dict) else {"value": v} for v in value]
        columns = list(dict.fromkeys(k for row in rows for k in row))
        cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = [columns, ["-" * w for w in widths], *cells]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )
    if isinstance(value, dict):
        width = max((len(str(k)) for k in value), default=0)
        return "\n".join(f"{k!s:<{width}}  {_cell(v)}" for k, v in value.items())
    return str(value)


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)  # noqa: T201
    return code


def _quarantine_key(item_id: str) -> str:
    """An id as ``quarantine list`` prints it: ``<source id>/<kind>#...``."""
    source_id, slash, sort_key = item_id.partition("/")
    if not (source_id and slash and sort_key):
        raise UsageError(
            f"{item_id!r} is not a quarantine id: use the id column of `quarantine list` "
            "(<source id>/<key>, e.g. 6a0b4f6e-…/RECORD#…)"
        )
    return item_id


def _audit(
    trail: DynamoAuditLog, args: argparse.Namespace, action: str, target: str, outcome: str
) -> None:
    trail.audit(AuditEntry(args.actor, action, target, args.reason, outcome, datetime.now(UTC)))


def _invoke(function_name: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """Invoke ``function_name`` synchronously; its JSON answer. A function error exits with one
    line, ``<errorType>: <errorMessage>`` (Lambda's error payload), never its stack trace."""
    if not function_name:
        raise UsageError("the function name is unknown; give --stack-name or the name flag")
    response = boto3.client("lambda").invoke(
        FunctionName=function_name, Payload=json.dumps(payload).encode()
    )
    result: dict[str, Any] = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        kind, message = result.get("errorType"), result.get("errorMessage")
        why = f"{kind}: {message}" if kind or message else response["FunctionError"]
        raise SystemExit(f"error: {function_name} failed: {' '.join(str(why).split())[:300]}")
    return result


def _audited_invoke(
    trail: DynamoAuditLog,
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
    except (SystemExit, UsageError) as exc:
        _audit(trail, args, action, what, f"failed: {exc}")
        raise
    if result.get("refused"):  # the function turned the request down (e.g. an unknown project)
        _audit(trail, args, action, what, f"refused: {result['refused']}")
        raise OperationRefused(str(result["refused"]))
    _audit(trail, args, action, what, json.dumps(result))
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


def print_ledger(ledger: DynamoLedgerPages, customer_id: str, month: str, fmt: str) -> None:
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


def _reconcile(trail: DynamoAuditLog, args: argparse.Namespace, target: Target) -> int:
    """Run reconciliation now; exit 1 unless every project finished with no failed item."""
    payload: dict[str, Any] = {"horizon_days": args.horizon_days}
    if args.project:
        payload["project"] = args.project
    what = args.project or "all projects"
    result = _audited_invoke(
        trail, args, "reconcile", what, function_name=target.reconcile_function, payload=payload
    )
    reports = result.get("reports") or []
    _print(reports if isinstance(reports, list) and not _JSON["on"] else result)
    unfinished = [
        str(r.get("project"))
        for r in reports
        if isinstance(r, dict) and (not r.get("complete") or r.get("failed"))
    ]
    if unfinished:
        return _error(
            f"reconciliation incomplete or with failed items for: {', '.join(unfinished)} "
            "(see stopped_because and failed above)",
            EXIT_FAILED,
        )
    return 0


def _finance(args: argparse.Namespace, trail: DynamoAuditLog, target: Target) -> None:
    """``ledger``, ``coverage`` and ``stripe map``: finance's drill-down and sinks."""
    dynamodb = boto3.client("dynamodb")
    if args.command == "ledger":
        print_ledger(
            DynamoLedgerPages(dynamodb, target.table), args.customer, args.month, args.format
        )
    elif args.command == "stripe":
        from usage_meter.adapters.stripe_meter import DynamoSinkStore

        DynamoSinkStore(dynamodb, target.table).map_customer(args.customer, args.stripe_customer)
        what = f"{args.customer} -> {args.stripe_customer}"
        _audit(trail, args, "stripe.map", what, "mapped")
        _print({"customer_id": args.customer, "stripe_customer_id": args.stripe_customer})
    else:
        uncovered = list(DynamoUsageReader(dynamodb, target.table).month_uncovered(args.month))
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


def _quarantine(
    args: argparse.Namespace,
    trail: DynamoAuditLog,
    held: DynamoQuarantine,
    queue: SqsUsageQueue,
    projects: frozenset[str] | None,
) -> None:
    if args.action == "list":
        _print([{"id": held.quarantine_id(i), **describe(i)} for i in held.open_quarantine()])
    elif args.action == "show":
        item = held.quarantined(_quarantine_key(args.item_id))
        if item is None:
            raise UsageError(f"no open quarantined item {args.item_id}")
        _print(describe(item))
    else:
        outcome = resolve_quarantine(
            _quarantine_key(args.item_id),
            action="dismiss" if args.dismiss else "bill",
            customer_id=args.bill_to,
            reason=args.reason,
            actor=args.actor,
            store=held,
            audit=trail,
            queue=queue,
            configured_projects=projects,
        )
        _print({"id": args.item_id, "outcome": outcome})


def run(args: argparse.Namespace) -> int:
    _JSON["on"] = bool(args.json)
    target = _target(args)
    dynamodb = boto3.client("dynamodb")
    trail = DynamoAuditLog(dynamodb, target.table)
    sqs = boto3.client("sqs")
    if args.command == "quarantine":
        held = DynamoQuarantine(dynamodb, target.table)
        _quarantine(args, trail, held, SqsUsageQueue(sqs, target.queue_url), target.projects)
    elif args.command == "dlq":
        browser = DeadLetterBrowser(sqs, target.dlq_url, target.queue_url)
        if args.action == "list":
            _print(browser.peek(args.limit))
            hidden = browser.not_listed()
            if hidden:
                print(  # noqa: T201
                    f"note: {hidden} more message(s) in flight or delayed (another reader holds "
                    "them, e.g. a listing or redrive still running); list again in a minute",
                    file=sys.stderr,
                )
        else:
            moved = browser.redrive(args.limit, set(args.id) if args.id else None)
            _audit(trail, args, "dlq.redrive", target.dlq_url, f"{moved} message(s) moved")
            _print({"moved": moved})
    elif args.command == "reconcile":
        return _reconcile(trail, args, target)
    elif args.command in ("ledger", "coverage", "stripe"):
        _finance(args, trail, target)
    elif args.command == "export":
        payload = {"month": args.month}
        function_name = target.export_function
        _print(
            _audited_invoke(
                trail, args, "export", args.month, function_name=function_name, payload=payload
            )
        )
    else:
        _print(trail.audit_log(args.month or current_month()))
    return 0


def _month(value: str) -> str:
    if not is_month(value):
        raise argparse.ArgumentTypeError(f"{MONTH_RULE}, got {value[:20]!r}")
    return value


def _horizon_days(value: str) -> int:
    try:
        return horizon_days(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{HORIZON_DAYS_RULE}, got {value[:20]!r}") from exc


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {value[:20]!r}")
    return number


def _finance_parsers(commands: Any) -> None:
    """The ``ledger``, ``coverage`` and ``stripe`` commands."""
    ledger = commands.add_parser("ledger", help="a customer's line items (ledger rows) for a month")
    ledger.add_argument("--customer", required=True, type=customer_id)
    ledger.add_argument("--month", required=True, type=_month)
    ledger.add_argument("--format", choices=("json", "csv"), default="json")

    coverage = commands.add_parser(
        "coverage", help="transcripts AssemblyAI bills that no customer is billed for"
    )
    coverage.add_argument("--month", required=True, type=_month)
    coverage.add_argument(
        "--price-table",
        default="usage_meter/config/prices.json",
        help="price table for the estimated cost (relative to functions/)",
    )

    stripe_cmd = commands.add_parser("stripe", help="Stripe sink: map customers; audited")
    stripe_actions = stripe_cmd.add_subparsers(dest="action", required=True)
    mapping = stripe_actions.add_parser("map", help="bill a customer's usage to a Stripe customer")
    mapping.add_argument("--customer", required=True, type=customer_id)
    mapping.add_argument("--stripe-customer", required=True, metavar="STRIPE_CUSTOMER_ID")
    mapping.add_argument("--reason", required=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="usage-meter-ops", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack-name", help="read resource names from this CloudFormation stack")
    p.add_argument("--table", help="usage table name")
    p.add_argument("--queue-url", help="usage queue URL")
    p.add_argument("--dlq-url", help="dead-letter queue URL")
    p.add_argument("--reconcile-function", help="reconciliation function name")
    p.add_argument("--export-function", help="monthly export function name")
    p.add_argument("--event-bus", help="the meter's event bus (threshold events)")
    p.add_argument("--actor", default=f"{getpass.getuser()}@{socket.gethostname()}")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
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
    listing.add_argument("--limit", type=_positive, default=100)
    redrive = d.add_parser("redrive", help="move messages back to the usage queue; audited")
    redrive.add_argument("--id", action="append", help="only these message ids (repeatable)")
    redrive.add_argument("--limit", type=_positive, default=1000)
    redrive.add_argument("--reason", required=True)

    reconcile = commands.add_parser("reconcile", help="run a reconciliation now; audited")
    reconcile.add_argument("--project")
    reconcile.add_argument(
        "--horizon-days", type=_horizon_days, default=HORIZON_DAYS_DEFAULT, help=HORIZON_DAYS_RULE
    )
    reconcile.add_argument("--reason", required=True)

    export = commands.add_parser("export", help="run the monthly export for a month; audited")
    export.add_argument("--month", type=_month, required=True)
    export.add_argument("--reason", required=True)

    _finance_parsers(commands)

    audit = commands.add_parser("audit", help="the audit trail for a month")
    audit.add_argument("--month", type=_month)

    ops_limits.add_parser(commands)
    return p


def _aws_error(exc: BaseException) -> int:
    problem, detail = aws_problem(exc)
    if problem is AwsProblem.NO_REGION:
        return _error("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's)", 2)
    if problem is AwsProblem.NO_CREDENTIALS:
        return _error(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (`aws sts get-caller-identity` checks them)",
            EXIT_USAGE,
        )
    if isinstance(exc, TransientFailure):
        print(f"AWS unavailable, retry: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_TRANSIENT
    if problem is AwsProblem.REFUSED:
        return _error(f"AWS refused: {detail}", EXIT_FAILED)
    return _error(str(exc), EXIT_FAILED)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring). Errors are one line on
    stderr, never a traceback."""
    args = parser().parse_args(argv)
    try:
        if args.command == "limits":
            _JSON["on"] = args.json
            target = _target(args)
            _print(ops_limits.run(args, target.table, target.event_bus))
            sys.stdout.flush()
            return 0
        code = run(args)
        sys.stdout.flush()  # a reader that went away shows here, inside the try
        return code
    except OperationRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    except UsageError as exc:
        return _error(str(exc), EXIT_USAGE)
    except BrokenPipeError:
        # `ops audit | head`: the reader stopped reading. Python would print a traceback when
        # flushing stdout at exit; point stdout at /dev/null instead (Python's documented recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except PermanentFailure as exc:
        print(f"failed ({exc.reason}): {exc.message}", file=sys.stderr)  # noqa: T201
        return EXIT_PERMANENT
    except TransientFailure as exc:
        return _aws_error(exc)
    except AWS_ERRORS as exc:
        return _aws_error(exc)


if __name__ == "__main__":
    sys.exit(main())
