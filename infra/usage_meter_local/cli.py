"""``python -m usage_meter_local {demo,serve,invoke}`` - the local stack's command line."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shlex
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from usage_meter_local import ports, scenario
from usage_meter_local.function_pool import FunctionStartError
from usage_meter_local.ports import PortUnavailable
from usage_meter_local.stack import DEFAULT_LOG_DIR, SECRET_ID_SUFFIX, LocalStack, StackConfig
from usage_meter_local.template import ROOT, function_spec, load_template

SERVE_PORTS = {"api": 3000, "aws": 3001, "assemblyai": 3002}
PORT_FLAGS = {"api": "--api-port", "aws": "--aws-port", "assemblyai": "--assemblyai-port"}
PORT_ENV = {name: ports.PORT_ENV[flag] for name, flag in PORT_FLAGS.items()}
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _retry_delay_cap(value: str) -> int | None:
    if value.lower() in ("off", "none"):
        return None
    seconds = int(value)
    if seconds < 0:
        raise argparse.ArgumentTypeError("must be 0 or more seconds, or 'off'")
    return seconds


def _parameter(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected Name=Value")
    return name, setting


def _add_stack_options(
    parser: argparse.ArgumentParser, fixed_ports: bool, log_dir: Path | None = DEFAULT_LOG_DIR
) -> None:
    group = parser.add_argument_group("local stack")
    for name, what in (
        ("api", "the HTTP API (template routes)"),
        ("aws", "AWS (moto server)"),
        ("assemblyai", "the AssemblyAI stand-in"),
    ):
        flag = PORT_FLAGS[name]
        default = int(os.environ.get(PORT_ENV[name], SERVE_PORTS[name] if fixed_ports else 0))
        group.add_argument(
            flag,
            type=int,
            default=default,
            help=f"port of {what} (default {default or 'any free port'}; env {PORT_ENV[name]})",
        )
    group.add_argument("--host", default="127.0.0.1", help="address to listen on")
    group.add_argument(
        "--parameter",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter, e.g. MaxReceiveCount=3 (repeatable)",
    )
    group.add_argument(
        "--retry-delay-cap",
        type=_retry_delay_cap,
        default=2,
        metavar="SECONDS|off",
        help="longest a failed SQS message stays invisible before redelivery (default 2; "
        "'off' keeps SQS's real timings: the processor's backoff of 20 s and more)",
    )
    where = log_dir.relative_to(ROOT) if log_dir else "this command's stderr"
    group.add_argument(
        "--log-dir",
        type=Path,
        default=log_dir,
        help=f"where the functions' logs go, one <Function>.log each (default {where})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m usage_meter_local",
        description="The usage meter on this machine: no AWS account, no AssemblyAI key, no "
        "Docker. AWS is moto's server, AssemblyAI a local stand-in; resources, routes, handlers "
        "and environments come from template.yaml.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{demo,serve,invoke}")
    demo = commands.add_parser("demo", help="run the scripted demo and exit (make run)")
    _add_stack_options(demo, fixed_ports=False)
    serve = commands.add_parser("serve", help="keep the stack serving (make local)")
    _add_stack_options(serve, fixed_ports=True)
    invoke = commands.add_parser(
        "invoke", help="invoke one function once with an event file (like sam local invoke)"
    )
    invoke.add_argument("function", help="the function's logical id in template.yaml")
    invoke.add_argument("event", help="event JSON file, or - for stdin")
    invoke.add_argument(
        "--as-is",
        action="store_true",
        help="send a signed request (webhook-signature) as stored instead of signing it "
        "again with the local secret and the current time (signatures expire after minutes)",
    )
    _add_stack_options(invoke, fixed_ports=False, log_dir=None)
    return parser


def _config(args: argparse.Namespace, **overrides: Any) -> StackConfig:
    settings: dict[str, Any] = {
        "host": args.host,
        "aws_port": args.aws_port,
        "api_port": args.api_port,
        "assemblyai_port": args.assemblyai_port,
        # the local stack shows every feature: allowances on unless --parameter says otherwise
        "parameters": {"Allowances": "enabled", **dict(args.parameter)},
        "retry_delay_cap": args.retry_delay_cap,
        "log_dir": args.log_dir,
    }
    return StackConfig(**{**settings, **overrides})


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    # Ctrl-C and SIGTERM stop the stack the same way; a second one must not cut the clean-up
    # short (it is bounded: workers are terminated after a few seconds).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        args = _parser().parse_args(["demo", *(argv or [])])
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows at once, also in a pipe
    # Explicit handlers: a shell starts background jobs with SIGINT ignored, which Python keeps.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "invoke":
            return invoke(args)
        return demo(args)
    except PortUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FunctionStartError as exc:
        where = args.log_dir if args.command != "invoke" else "the output above"
        print(f"error: {exc} (traceback in {where})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0 if args.command == "serve" else EXIT_INTERRUPTED


# -- demo -----------------------------------------------------------------------------------------
def demo(args: argparse.Namespace) -> int:
    from usage_meter_local.demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    started = time.monotonic()
    print("Starting the local stack (moto server, AssemblyAI stand-in, one process per function)")
    config = _config(args)
    # Act 6 shows a failing application reaching the forwarding DLQ: 3 attempts instead of 8.
    config.parameters.setdefault("ForwardMaxAttempts", "3")
    with LocalStack(config) as stack:
        print(
            f"  ready in {time.monotonic() - started:.1f} s: API {stack.webhook_url}, "
            f"AWS {stack.aws.url}, AssemblyAI {stack.assemblyai.url}\n"
        )
        ok = run_demo(stack, sys.stdout)
    print(f"Stopped the local stack; {time.monotonic() - started:.1f} s in all.")
    return 0 if ok else 1


# -- serve ----------------------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    with LocalStack(_config(args)) as stack:
        print(banner(stack))
        while True:
            # Short sleeps: a signal that lands on another thread does not cut a sleep short.
            time.sleep(0.2)


def banner(stack: LocalStack) -> str:
    header = stack.auth_header_name
    secret = stack.webhook_secrets[0]
    secrets = "\n".join(
        f"  {name:<28} {variable:<26} {stack.secret_shown(variable)}"
        for name, variable in sorted(stack.secrets.items())
    )
    routes = "\n".join(
        f"                      {r.method} {r.path} -> {r.function}"
        for r in (stack.http.routes if stack.http else [])
    )
    queues = ", ".join(stack.resources.queue_urls)
    tables = ", ".join(stack.resources.tables.values())
    log_dir = stack.config.log_dir
    fixtures = "\n".join(
        f"  {s.transcript_id}  {s.customer_id:<13} ?{s.query()}" for s in scenario.SUBMISSIONS
    )
    example = scenario.SUBMISSIONS[0]
    dlq = stack.resources.queue_urls.get("UsageDeadLetterQueue", "<dead-letter queue url>")
    curl = " ".join(
        [
            "curl -i -X POST",
            shlex.quote(f"{stack.webhook_url}?{example.query()}"),
            "-H",
            shlex.quote(f"{header}: {secret}"),
            "-H 'content-type: application/json' -d",
            shlex.quote(
                json.dumps({"transcript_id": example.transcript_id, "status": "completed"})
            ),
        ]
    )
    aws = (
        f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --endpoint-url {stack.aws.url} "
        f"--region {stack.config.region}"
    )
    api = stack.http.url if stack.http else "-"
    stripe_meter = stack.parameters.get("StripeMeterEventName", "-")
    others = [f for f in stack.function_ids() if f not in stack.triggered_functions()]
    invokes = lambda_invoke_examples(api, stack.config.region, others, datetime.now(UTC))
    ops = " ".join(
        [
            f"AWS_ENDPOINT_URL={stack.aws.url} AWS_ENDPOINT_URL_LAMBDA={api}",
            f"AWS_DEFAULT_REGION={stack.config.region}",
            "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local",
            "PYTHONPATH=functions .venv/bin/python -m usage_meter.ops_cli",
            f"--table {next(iter(stack.resources.tables.values()))}",
            f"--queue-url {stack.resources.queue_urls.get('UsageQueue', '-')} --dlq-url {dlq}",
            "--reconcile-function ReconciliationFunction",
            "--export-function MonthlyExportFunction",
            f"--event-bus {stack.resources.event_buses.get('UsageEventBus', '-')}",
        ]
    )
    return f"""Usage meter: local stack running (Ctrl-C to stop)

  HTTP API          {api}   (routes from template.yaml)
{routes}
  AWS (moto)        {stack.aws.url}   region {stack.config.region}, any credentials
                      tables: {tables}; queues: {queues}
  AssemblyAI        {stack.assemblyai.url}   stand-in; projects: {", ".join(stack.projects)}
  Your application  {stack.parameters.get("ForwardUrl", "-")}   forwarding target (ForwardUrl)
  Stripe            {stack.stripe.url}   stand-in (meter {stripe_meter})
  Function logs     {log_dir if log_dir else "stderr"}

Webhook URL to give AssemblyAI (customer_id required; project, billing dimensions (plan, team)
and your own parameters optional; every notification is forwarded to your application):
  {stack.webhook_url}?customer_id=<customer>[&project=eu][&plan=pro][&order_id=...]
Auth header (webhook_auth_header_name / webhook_auth_header_value):
  {header}: {secret}
  (the processor reads transcripts from the stand-in, which serves these fixtures:)
{fixtures}

Secrets in Secrets Manager (moto), as {{"current": ..., "previous": ...}}:
{secrets}

Try it:
  {curl}
  curl -s '{api}/customers/acme-corp/usage'   (IAM-authorized on AWS, open here)
  {aws} dynamodb scan --table-name {next(iter(stack.resources.tables.values()))}
  {aws} sqs receive-message --message-attribute-names All --queue-url {dlq}
Functions without a route or queue (scheduled on AWS) run through Lambda's Invoke API:
{invokes}
Operator CLI (quarantine, DLQ, reconcile, export, audit) against this stack:
  {ops} dlq list
"""


def lambda_invoke_examples(api: str, region: str, functions: list[str], now: datetime) -> str:
    """``aws lambda invoke`` lines for the banner. The monthly export gets this month (``{}``
    would export the previous month, as its schedule does, which is empty on a fresh stack);
    the flag that passes the payload as raw JSON exists only in AWS CLI v2, so v1 is told."""
    from usage_meter.models.months import usage_month

    command = (
        f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --endpoint-url {api} "
        f"--region {region} lambda invoke --function-name"
    )
    payloads = {"MonthlyExportFunction": json.dumps({"month": usage_month(now)})}
    lines = [
        f"  {command} {f} --cli-binary-format raw-in-base64-out "
        f"--payload '{payloads.get(f, '{}')}' out.json"
        for f in functions
    ]
    lines.append(
        "  (AWS CLI v2; with v1 leave out --cli-binary-format raw-in-base64-out. The export of "
        "this month: {} exports the previous month, as the schedule does.)"
    )
    return "\n".join(lines)


# -- invoke ---------------------------------------------------------------------------------------
def invoke(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        function_spec(load_template(), args.function)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    try:
        event = (
            json.load(sys.stdin) if args.event == "-" else json.loads(Path(args.event).read_text())
        )
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the event {args.event}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = _config(args, functions=(args.function,), http=False, event_sources=False)
    print(
        "(invoking on a fresh local stack: empty tables and queues, the stand-in's fixture "
        "transcripts; to invoke a running `make local` stack, use the Lambda Invoke API it prints)",
        file=sys.stderr,
    )
    if args.log_dir is not None:
        print(f"(function log: {args.log_dir / (args.function + '.log')})", file=sys.stderr)
    with LocalStack(config) as stack:
        if not args.as_is:
            event = _sign_again(stack, args.function, event)
        invocation = stack.invoke(args.function, event)
    print(json.dumps(invocation.as_json(), indent=2))
    return 0 if invocation.ok else 1


def _sign_again(stack: LocalStack, function: str, event: Any) -> Any:
    """A signed report (Standard Webhooks, usage_meter.logic.request_signing) signed again, now,
    with the local secret of the function's ``*_SECRET_ID`` variable: a stored signature is
    stale by design. The event's ``webhook-id`` is kept."""
    from usage_meter.logic import standard_webhooks

    headers = event.get("headers") if isinstance(event, dict) else None
    if not isinstance(headers, dict) or standard_webhooks.SIGNATURE_HEADER not in headers:
        return event
    variables = [v for v in stack.environments[function] if v.endswith(SECRET_ID_SUFFIX)]
    if len(variables) != 1:
        return event
    body = str(event.get("body") or "").encode()
    secret = stack.secret_values(variables[0])[0]
    message_id = str(headers.get(standard_webhooks.ID_HEADER) or "msg_local_invoke")
    fresh = standard_webhooks.signed_headers([secret], message_id, int(time.time()), body)
    print(f"(signed again with the local {variables[0]} secret, timestamp now)", file=sys.stderr)
    return {**event, "headers": {**headers, **fresh}}
