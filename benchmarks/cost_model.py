"""What the meter costs on AWS per million async transcripts and per million streaming sessions.

The AWS calls each flow makes (``FLOWS[...].calls``) are read from the code and checked by
tests/integration/test_cost_model.py, which runs the flows through the real handlers against moto
and counts every botocore call, the bytes each function logs and the size of every item written.
What the code cannot count (API Gateway requests, Lambda invocations and GB-seconds, the SQS
receives and deletes made by Lambda's event source mapping, DynamoDB index writes) is modelled
here, each with its reason. Prices: ``PRICES``, the AWS list prices for us-east-1 with their
sources, as of ``PRICE_LIST_DATE``.

Usage: python benchmarks/cost_model.py [--json PATH]   (prints the arithmetic, PASS/FAIL)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

PRICE_LIST_DATE = "2026-11-29"
TARGET_PER_MILLION = Decimal(6)
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Price:
    usd: Decimal
    unit: str
    source: str


D = Decimal
PRICES = {
    "apigw_http": Price(
        D("1.00") / MILLION,
        "HTTP API request",
        "https://aws.amazon.com/api-gateway/pricing/ (HTTP APIs, first 300 M/month: $1.00 per "
        "million, metered per 512 KB)",
    ),
    "lambda_request": Price(
        D("0.20") / MILLION, "Lambda invocation", "https://aws.amazon.com/lambda/pricing/"
    ),
    "lambda_gb_s": Price(
        D("0.0000133334"),
        "GB-second, arm64",
        "https://aws.amazon.com/lambda/pricing/ (Arm, first 7.5 billion GB-s/month)",
    ),
    "sqs_request": Price(
        D("0.40") / MILLION,
        "SQS request (standard queue, per 64 KB chunk)",
        "https://aws.amazon.com/sqs/pricing/",
    ),
    "dynamodb_wru": Price(
        D("0.625") / MILLION,
        "DynamoDB write request unit, on-demand",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/ ($0.625 per million WRU since the "
        "2024-11-01 reduction; AWS News Blog, on-demand post updated 2025-01-31)",
    ),
    "dynamodb_rru": Price(
        D("0.125") / MILLION,
        "DynamoDB read request unit, on-demand",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "eventbridge_event": Price(
        D("1.00") / MILLION,
        "EventBridge custom event published (per 64 KB chunk)",
        "https://aws.amazon.com/eventbridge/pricing/ (custom events: $1.00 per million)",
    ),
    "logs_gb": Price(
        D("0.50"),
        "GB of CloudWatch Logs ingested (standard class)",
        "https://aws.amazon.com/cloudwatch/pricing/",
    ),
    "xray_trace": Price(
        D("5.00") / MILLION, "X-Ray trace recorded", "https://aws.amazon.com/xray/pricing/"
    ),
    "dynamodb_storage_gb": Price(
        D("0.25"), "GB-month, DynamoDB Standard", "https://aws.amazon.com/dynamodb/pricing/"
    ),
    "dynamodb_pitr_gb": Price(
        D("0.20"), "GB-month, continuous backups (PITR)", "https://aws.amazon.com/dynamodb/pricing/"
    ),
    "s3_deep_archive_gb": Price(
        D("0.00099"), "GB-month, S3 Glacier Deep Archive", "https://aws.amazon.com/s3/pricing/"
    ),
}

# -- what the code does (checked against moto by tests/integration/test_cost_model.py) ---------
PACER_LEASE = 5  # adapters/request_budget.py LEASE: one reservation per 5 AssemblyAI requests
BATCH = 10  # template.yaml: BatchSize 10, filled at the design load (see the batching window)

# The template's defaults: Allowances disabled, NotificationEvents auto with no consumer (no
# ForwardUrl, no EventsEndpointUrl, the stack's own bus). FEATURE_CALLS is what each optional
# feature adds per transcript / session when it is on.
ASYNC_CALLS = {  # per transcript, first delivery
    ("sqs", "SendMessage"): D(1),  # intake
    ("dynamodb", "GetItem"): D(1),  # processor: is it already recorded? (before any fetch)
    ("dynamodb", "TransactWriteItems"): D(1),  # ledger row + aggregate
    # a reservation of the shared AssemblyAI budget: 1 UpdateItem when the schedule is busy,
    # 2 when it restarts after an idle moment (the first, conditional, one fails): worst case
    ("dynamodb", "UpdateItem"): D(2) / PACER_LEASE,
}
DUPLICATE_CALLS = {  # per redelivered transcript already in the ledger: no AssemblyAI request
    ("sqs", "SendMessage"): D(1),
    ("dynamodb", "GetItem"): D(1),
}
STREAMING_CALLS = {  # per session: a begin report and a termination report
    ("dynamodb", "PutItem"): D(1),  # begin
    ("dynamodb", "GetItem"): D(1),  # termination: the begin
    ("dynamodb", "TransactWriteItems"): D(1),  # ledger + aggregate + close the session
}
FEATURE_CALLS = {  # added per transcript (async, and a duplicate) / per session (streaming)
    "NotificationEvents": {  # Received (intake) + Processed (processor); none for streaming
        "async": {("events", "PutEvents"): D(2)},
        "duplicate": {("events", "PutEvents"): D(2)},
        "streaming": {},
    },
    "Allowances": {  # the summary item joins the transaction; the threshold check after it
        "async": {("dynamodb", "BatchGetItem"): D(1)},
        "duplicate": {("dynamodb", "BatchGetItem"): D(1)},  # completed on a retry
        "streaming": {("dynamodb", "BatchGetItem"): D(1)},
    },
}


def calls_with(base: dict[tuple[str, str], Decimal], flow: str, *features: str) -> dict:
    """``base`` plus what ``features`` add to ``flow`` (async, duplicate or streaming)."""
    calls = dict(base)
    for feature in features:
        for key, count in FEATURE_CALLS[feature][flow].items():
            calls[key] = calls.get(key, D(0)) + count
    return calls


MAX_ITEM_BYTES = 1024  # ledger rows, aggregates and sessions stay within one 1 KB write unit
# Measured by the test (stdout: log lines and EMF metrics), per transcript / session; Lambda's own
# START/END/REPORT lines are not ingested (LoggingConfig SystemLogLevel WARN on these functions).
# Async: 852 B measured with correlation ids (the intake line carries its request id, ~36 B; the
# processor's batch line lists its records' ids, ~19 B per transcript on AWS, which the test's SQS
# records do not carry), so 900 B.
LOG_BYTES = {"async": 900, "streaming": 1600}


# API Gateway's access log (HttpApi AccessLogSettings in template.yaml): one line per request,
# ingested by CloudWatch Logs. Its size: the template's format with typical values.
ACCESS_LOG_VALUES = {
    "requestId": "O0Zp1hKJoAMEb2w=",
    "identity.sourceIp": "44.238.19.20",
    "requestTime": "29/Nov/2026:18:42:07 +0000",
    "routeKey": "POST /webhooks/assemblyai",
    "status": "200",
    "responseLength": "75",
    "integrationErrorMessage": "-",
    "integrationStatus": "200",
    "responseLatency": "24",
}


def access_log_bytes() -> int:
    """Bytes of one access log line: the template's Format with ACCESS_LOG_VALUES."""
    text = (Path(__file__).resolve().parent.parent / "template.yaml").read_text()
    match = re.search(r"Format: >-\n((?:\s+.*\n)+?)\s*\n", text + "\n\n")
    if match is None:
        raise ValueError("template.yaml has no access log Format")
    line = "".join(part.strip() for part in match.group(1).splitlines())
    return len(re.sub(r"\$context\.([A-Za-z.]+)", lambda m: ACCESS_LOG_VALUES[m[1]], line))


@dataclass
class Line:
    item: str
    quantity: Decimal  # per event
    price: str
    why: str
    feature: str | None = None  # the template parameter that turns it on (None: always)

    @property
    def per_million(self) -> Decimal:
        return self.quantity * PRICES[self.price].usd * MILLION


@dataclass
class Flow:
    name: str
    lines: list[Line] = field(default_factory=list)
    features: tuple[str, ...] = ()

    @property
    def per_million(self) -> Decimal:
        return sum((line.per_million for line in self.lines), Decimal(0))

    @property
    def title(self) -> str:
        on = " + ".join(self.features) if self.features else "template defaults"
        return f"{self.name} ({on})"


def gb_s(memory_mb: int, seconds: str) -> Decimal:
    return Decimal(memory_mb) / 1024 * Decimal(seconds)


ALL_FEATURES = ("NotificationEvents", "Allowances")


def _keep(lines: list[Line], features: tuple[str, ...]) -> list[Line]:
    return [line for line in lines if line.feature is None or line.feature in features]


def async_flow(features: tuple[str, ...] = ()) -> Flow:
    """Per transcript, with the optional ``features`` (ALL_FEATURES) on."""
    c = calls_with(ASYNC_CALLS, "async", *ALL_FEATURES)
    summary = "Allowances" in features
    lines = [
        Line("API Gateway: the webhook", D(1), "apigw_http", "one POST per transcript"),
        Line(
            f"CloudWatch Logs: API Gateway access log ({access_log_bytes()} B)",
            D(access_log_bytes()) / 1024**3,
            "logs_gb",
            "one line per request (template's Format, typical values)",
        ),
        Line("Lambda: intake invocation", D(1), "lambda_request", "one per webhook"),
        Line(
            "Lambda: intake duration (256 MB, 20 ms)",
            gb_s(256, "0.020"),
            "lambda_gb_s",
            "auth + validation ~1 ms (benchmarks/warm_handler.py), one SQS send ~10-20 ms",
        ),
        Line(
            "SQS: send + receive + delete",
            c[("sqs", "SendMessage")] + D(2) / BATCH,
            "sqs_request",
            "1 send (counted); 1 receive and 1 delete batch per 10 messages (event source)",
        ),
        Line("Lambda: processor invocation", D(1) / BATCH, "lambda_request", "one per batch"),
        Line(
            "Lambda: processor duration (256 MB, 0.5 s per batch of 10)",
            gb_s(256, "0.050"),
            "lambda_gb_s",
            "records handled side by side: one AssemblyAI round trip (~0.3 s for a 140 KiB "
            "transcript) + the DynamoDB calls, shared by the 10 records",
        ),
        Line(
            "DynamoDB: 'already recorded?' read (eventually consistent, < 4 KB)",
            c[("dynamodb", "GetItem")] / 2,
            "dynamodb_rru",
            "0.5 RRU; a stale miss only costs a fetch, the write's condition still decides",
        ),
        Line(
            "DynamoDB: transaction (ledger row + aggregate, each < 1 KB)",
            c[("dynamodb", "TransactWriteItems")] * 2 * 2,
            "dynamodb_wru",
            "2 items x 2 WRU (transactional writes cost 2 WRU per KB)",
        ),
        Line(
            "DynamoDB: index writes (the row's LedgerByMonth and GSI1 entries)",
            D(2),
            "dynamodb_wru",
            "1 WRU each: the sparse KEYS_ONLY ledger check entry and the row's GSI1 entry (line "
            "items, usage API drill-down). The aggregate's KEYS_ONLY LedgerByMonth entry is "
            "written once per customer x breakdown x month, not per usage (~0)",
        ),
        Line(
            "DynamoDB: shared AssemblyAI budget",
            c[("dynamodb", "UpdateItem")],
            "dynamodb_wru",
            "one reservation per 5 requests, 2 writes after an idle moment (worst case)",
        ),
        Line(
            f"CloudWatch Logs: functions ({LOG_BYTES['async']} B)",
            D(LOG_BYTES["async"]) / 1024**3,
            "logs_gb",
            "measured by the test: intake's line, the processor's batch line and EMF metrics",
        ),
        Line("X-Ray", D(0), "xray_trace", "TracingMode PassThrough (default): no traces"),
        Line(
            "EventBridge: notification events",
            c[("events", "PutEvents")],
            "eventbridge_event",
            "Received (intake) + Processed (processor), each < 64 KB (issue 13)",
            "NotificationEvents",
        ),
        Line(
            "DynamoDB: customer-month summary in the transaction",
            D(2) if summary else D(0),
            "dynamodb_wru",
            "1 more item x 2 WRU (issue 16)",
            "Allowances",
        ),
        Line(
            "DynamoDB: threshold check (allowance + summary, strongly consistent)",
            c[("dynamodb", "BatchGetItem")] * 2,
            "dynamodb_rru",
            "2 items x 1 RRU (issue 16: after every billable write)",
            "Allowances",
        ),
    ]
    return Flow("async transcript", _keep(lines, features), features)


def streaming_flow(features: tuple[str, ...] = ()) -> Flow:
    """Per streaming session (a begin and a termination report), with ``features`` on."""
    lines = [
        Line("API Gateway: begin + termination", D(2), "apigw_http", "two signed reports"),
        Line(
            f"CloudWatch Logs: API Gateway access log (2 x {access_log_bytes()} B)",
            D(2 * access_log_bytes()) / 1024**3,
            "logs_gb",
            "one line per request",
        ),
        Line("Lambda: invocations", D(2), "lambda_request", "one per report"),
        Line(
            "Lambda: duration (256 MB, 2 x 25 ms)",
            gb_s(256, "0.050"),
            "lambda_gb_s",
            "signature + validation + one DynamoDB round trip each",
        ),
        Line(
            "DynamoDB: begin (put, < 1 KB) + its open-sessions index entry",
            D(1) + D(1),
            "dynamodb_wru",
            "1 WRU + 1 WRU (GSI1 OPEN_SESSIONS, projection ALL)",
        ),
        Line(
            "DynamoDB: termination read of the begin (consistent)",
            D(1),
            "dynamodb_rru",
            "1 RRU",
        ),
        Line(
            "DynamoDB: transaction (ledger + aggregate + session close)",
            D(3) * 2,
            "dynamodb_wru",
            "3 items x 2 WRU",
        ),
        Line(
            "DynamoDB: index writes (LedgerByMonth, ledger GSI1, open-session removal)",
            D(3),
            "dynamodb_wru",
            "1 WRU each (the aggregate's KEYS_ONLY entry: once per breakdown and month, ~0)",
        ),
        Line(
            f"CloudWatch Logs: functions ({LOG_BYTES['streaming']} B)",
            D(LOG_BYTES["streaming"]) / 1024**3,
            "logs_gb",
            "measured by the test: one line per report and EMF metrics",
        ),
        Line("X-Ray", D(0), "xray_trace", "TracingMode PassThrough (default): no traces"),
        Line(
            "DynamoDB: customer-month summary in the transaction",
            D(2),
            "dynamodb_wru",
            "1 more item x 2 WRU (issue 16)",
            "Allowances",
        ),
        Line(
            "DynamoDB: threshold check (allowance + summary, strongly consistent)",
            D(2),
            "dynamodb_rru",
            "2 items x 1 RRU (issue 16)",
            "Allowances",
        ),
    ]
    return Flow("streaming session", _keep(lines, features), features)


def flows() -> list[Flow]:
    """The defaults (what the target is judged on) and every feature on."""
    return [
        async_flow(),
        streaming_flow(),
        async_flow(ALL_FEATURES),
        streaming_flow(ALL_FEATURES),
    ]


def storage_note() -> str:
    """Storage that grows forever: what it costs and the answer (README, docs/decisions.md)."""
    row_kb = Decimal("0.8")  # a ledger row with its LedgerByMonth entry (~100 B + 100 B overhead)
    gb_per_million = row_kb * MILLION / 1024 / 1024
    monthly = gb_per_million * (PRICES["dynamodb_storage_gb"].usd + PRICES["dynamodb_pitr_gb"].usd)
    archive = gb_per_million * PRICES["s3_deep_archive_gb"].usd
    return (
        f"a million ledger rows hold ~{gb_per_million:.2f} GB: "
        f"${monthly:.2f} per month in DynamoDB (storage + PITR) for as long as they stay, "
        f"${archive:.4f} per month in S3 Glacier Deep Archive"
    )


def _quantity(value: Decimal) -> str:
    """Per-event quantities: plain below 1,000 and above 0.001, else 3 significant digits."""
    return f"{value.normalize():f}" if value == 0 or value >= D("0.001") else f"{value:.3g}"


def _money(value: Decimal) -> str:
    return f"${value.quantize(Decimal('0.001'), rounding=ROUND_HALF_UP)}"


def markdown(flows: list[Flow]) -> str:
    out = [f"AWS list prices, us-east-1, as of {PRICE_LIST_DATE} (sources below).", ""]
    for flow in flows:
        verdict = "PASS" if flow.per_million <= TARGET_PER_MILLION else "FAIL"
        out += [
            f"**Per million {flow.title}: {_money(flow.per_million)}** "
            f"(target <= ${TARGET_PER_MILLION}: {verdict})",
            "",
            "| line item | per event | unit price | per million | why |",
            "|---|---:|---:|---:|---|",
        ]
        for line in flow.lines:
            price = PRICES[line.price]
            out.append(
                f"| {line.item} | {_quantity(line.quantity)} {price.unit} | "
                f"${price.usd.normalize():f} | {_money(line.per_million)} | {line.why} |"
            )
        out.append("")
    out.append("Storage: " + storage_note() + ".")
    out.append("")
    out.append("Sources: " + "; ".join(f"{k}: {p.source}" for k, p in PRICES.items()))
    return "\n".join(out)


def verdicts() -> list[tuple[str, bool, str]]:
    return [
        (
            f"AWS cost per million {flow.name}s, template defaults <= ${TARGET_PER_MILLION}",
            flow.per_million <= TARGET_PER_MILLION,
            f"{_money(flow.per_million)} (every optional feature on: {_money(full.per_million)})",
        )
        for flow, full in (
            (async_flow(), async_flow(ALL_FEATURES)),
            (streaming_flow(), streaming_flow(ALL_FEATURES)),
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(markdown(flows()))
    if args.json:
        args.json.write_text(
            json.dumps({f.title: f"{f.per_million:.4f}" for f in flows()}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
