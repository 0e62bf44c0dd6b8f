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
PACER_LEASE = 5  # adapters/request_budget.py: one reservation per 5 AssemblyAI requests
BATCH = 10  # template.yaml: BatchSize 10, filled at the design load (see the batching window)

ASYNC_CALLS = {  # per transcript, first delivery
    ("sqs", "SendMessage"): D(1),  # intake
    ("dynamodb", "GetItem"): D(1),  # processor: is it already recorded? (before any fetch)
    ("dynamodb", "TransactWriteItems"): D(1),  # ledger row + aggregate + customer-month summary
    ("events", "PutEvents"): D(2),  # notification Received (intake) and Processed (processor)
    ("dynamodb", "BatchGetItem"): D(1),  # threshold check: allowance + summary (issue 16)
    # a reservation of the shared AssemblyAI budget: 1 UpdateItem when the schedule is busy,
    # 2 when it restarts after an idle moment (the first, conditional, one fails): worst case
    ("dynamodb", "UpdateItem"): D(2) / PACER_LEASE,
}
DUPLICATE_CALLS = {  # per redelivered transcript already in the ledger: no AssemblyAI request
    ("sqs", "SendMessage"): D(1),
    ("dynamodb", "GetItem"): D(1),
    ("events", "PutEvents"): D(2),  # Received, and Processed "duplicate"
    ("dynamodb", "BatchGetItem"): D(1),  # the threshold check, completed on a retry
}
STREAMING_CALLS = {  # per session: a begin report and a termination report
    ("dynamodb", "PutItem"): D(1),  # begin
    ("dynamodb", "GetItem"): D(1),  # termination: the begin
    ("dynamodb", "TransactWriteItems"): D(1),  # ledger + aggregate + summary + close the session
    ("dynamodb", "BatchGetItem"): D(1),  # threshold check after the termination's write
}
MAX_ITEM_BYTES = 1024  # ledger rows, aggregates and sessions stay within one 1 KB write unit
# Measured by the test (stdout: log lines and EMF metrics), per transcript / session; Lambda's own
# START/END/REPORT lines are not ingested (LoggingConfig SystemLogLevel WARN on these functions).
# Async: 852 B measured with correlation ids (the intake line carries its request id, ~36 B; the
# processor's batch line lists its records' ids, ~19 B per transcript on AWS, which the test's SQS
# records do not carry), so 900 B.
LOG_BYTES = {"async": 900, "streaming": 1600}


@dataclass
class Line:
    item: str
    quantity: Decimal  # per event
    price: str
    why: str

    @property
    def per_million(self) -> Decimal:
        return self.quantity * PRICES[self.price].usd * MILLION


@dataclass
class Flow:
    name: str
    lines: list[Line] = field(default_factory=list)

    @property
    def per_million(self) -> Decimal:
        return sum((line.per_million for line in self.lines), Decimal(0))


def gb_s(memory_mb: int, seconds: str) -> Decimal:
    return Decimal(memory_mb) / 1024 * Decimal(seconds)


def async_flow() -> Flow:
    c = ASYNC_CALLS
    return Flow(
        "async transcript",
        [
            Line("API Gateway: the webhook", D(1), "apigw_http", "one POST per transcript"),
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
                "DynamoDB: transaction (ledger row + aggregate + summary, each < 1 KB)",
                c[("dynamodb", "TransactWriteItems")] * 3 * 2,
                "dynamodb_wru",
                "3 items x 2 WRU (transactional writes cost 2 WRU per KB)",
            ),
            Line(
                "DynamoDB: threshold check (allowance + summary, strongly consistent)",
                c[("dynamodb", "BatchGetItem")] * 2,
                "dynamodb_rru",
                "2 items x 1 RRU (issue 16: after every billable write)",
            ),
            Line(
                "EventBridge: notification events",
                c[("events", "PutEvents")],
                "eventbridge_event",
                "Received (intake) + Processed (processor), each < 64 KB (issue 13)",
            ),
            Line(
                "DynamoDB: index writes (LedgerByMonth, the row's GSI1 line-item entry, the "
                "aggregate's GSI1 entry)",
                D(3),
                "dynamodb_wru",
                "1 WRU each: the sparse KEYS_ONLY ledger index, the ledger row's GSI1 entry (line "
                "items, issue 15) and the aggregate's GSI1 entry",
            ),
            Line(
                "DynamoDB: shared AssemblyAI budget",
                c[("dynamodb", "UpdateItem")],
                "dynamodb_wru",
                "one reservation per 5 requests, 2 writes after an idle moment (worst case)",
            ),
            Line(
                f"CloudWatch Logs: {LOG_BYTES['async']} B",
                D(LOG_BYTES["async"]) / 1024**3,
                "logs_gb",
                "measured by the test: intake's line, the processor's batch line and EMF metrics",
            ),
            Line("X-Ray", D(0), "xray_trace", "TracingMode PassThrough (default): no traces"),
        ],
    )


def streaming_flow() -> Flow:
    return Flow(
        "streaming session",
        [
            Line("API Gateway: begin + termination", D(2), "apigw_http", "two signed reports"),
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
                "DynamoDB: transaction (ledger + aggregate + summary + session close)",
                D(4) * 2,
                "dynamodb_wru",
                "4 items x 2 WRU",
            ),
            Line(
                "DynamoDB: threshold check (allowance + summary, strongly consistent)",
                D(2),
                "dynamodb_rru",
                "2 items x 1 RRU (issue 16)",
            ),
            Line(
                "DynamoDB: index writes (LedgerByMonth, ledger GSI1, aggregate GSI1, open-session "
                "removal)",
                D(4),
                "dynamodb_wru",
                "1 WRU each",
            ),
            Line(
                f"CloudWatch Logs: {LOG_BYTES['streaming']} B",
                D(LOG_BYTES["streaming"]) / 1024**3,
                "logs_gb",
                "measured by the test: one line per report and EMF metrics",
            ),
            Line("X-Ray", D(0), "xray_trace", "TracingMode PassThrough (default): no traces"),
        ],
    )


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


def _money(value: Decimal) -> str:
    return f"${value.quantize(Decimal('0.001'), rounding=ROUND_HALF_UP)}"


def markdown(flows: list[Flow]) -> str:
    out = [f"AWS list prices, us-east-1, as of {PRICE_LIST_DATE} (sources below).", ""]
    for flow in flows:
        verdict = "PASS" if flow.per_million <= TARGET_PER_MILLION else "FAIL"
        out += [
            f"**Per million {flow.name}s: {_money(flow.per_million)}** "
            f"(target <= ${TARGET_PER_MILLION}: {verdict})",
            "",
            "| line item | per event | unit price | per million | why |",
            "|---|---:|---:|---:|---|",
        ]
        for line in flow.lines:
            price = PRICES[line.price]
            out.append(
                f"| {line.item} | {line.quantity.normalize():f} {price.unit} | "
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
            f"AWS cost per million {flow.name}s <= ${TARGET_PER_MILLION}",
            flow.per_million <= TARGET_PER_MILLION,
            _money(flow.per_million),
        )
        for flow in (async_flow(), streaming_flow())
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    flows = [async_flow(), streaming_flow()]
    print(markdown(flows))
    if args.json:
        args.json.write_text(json.dumps({f.name: f"{f.per_million:.4f}" for f in flows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
