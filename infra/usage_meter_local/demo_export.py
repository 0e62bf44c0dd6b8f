"""The demo's last act: the monthly billing export (what EventBridge Scheduler runs on the 1st),
invoked for the month(s) the demo recorded, then the CSV it wrote to S3 (moto), read back through
the service's own export adapter, and a check that export = ledger per customer, to the second."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any, TextIO

from usage_meter.adapters.export_store import S3ExportStore
from usage_meter.logic.monthly_export import CSV_NAME, MANIFEST_NAME
from usage_meter_local.report import Recorded, table
from usage_meter_local.stack import LocalStack

EXPORT_FUNCTION = "MonthlyExportFunction"
# (customer, product, model, estimated, fragment of add_on_seconds/add_on_prices/unpriced) the
# export must show: one add-on priced by model, a Speech Understanding task, estimated sessions.
EXPECTED_PRICING = (
    ("acme-corp", "async", "universal-2", "false", "keyterms_prompt=0;"),
    ("acme-corp", "async", "universal-3-pro", "false", "keyterms_prompt=0.05;"),
    ("acme-corp", "streaming", "universal-streaming-english", "false", "keyterms_prompt=0.04"),
    ("globex", "async", "universal-2", "false", "speech_understanding:translation=1260.25"),
    ("initech-gmbh", "streaming", "u3-rt-pro", "true", ""),
    ("hooli", "streaming", "universal-streaming-english", "true", ""),
    ("acme-corp", "voice_agent", "voice-agent", "false", ""),
    ("acme-corp", "sync", "universal-3-5-pro", "false", ""),
    ("acme-corp", "llm_gateway", "claude-sonnet-4-6", "false", ""),
)
# (customer, product, region, cost) of the other products' rows: Voice Agent 312 s x 4.50/h =
# 0.39; Sync 105.25 s x 0.30/h = 0.0087.. -> 0.01; LLM Gateway has no sourced token rates, so its
# rows (US and EU, priced by region) are unpriced with the reason, never guessed.
EXPECTED_PRODUCT_COSTS = (
    ("acme-corp", "voice_agent", "", "0.39"),
    ("acme-corp", "sync", "", "0.01"),
    ("acme-corp", "llm_gateway", "us", ""),
    ("acme-corp", "llm_gateway", "eu", ""),
)


def _store(stack: LocalStack) -> tuple[S3ExportStore, str]:
    env = stack.environments[EXPORT_FUNCTION]
    bucket = env["EXPORT_BUCKET_NAME"]
    return S3ExportStore(stack.clients.s3, bucket, env["EXPORT_PREFIX"]), bucket


Quantities = tuple[Decimal, Decimal, Decimal]  # seconds, input tokens, output tokens


def _add(totals: dict[str, Quantities], customer: str, row: dict[str, Any]) -> None:
    seconds, tokens_in, tokens_out = totals.get(customer, (Decimal(0),) * 3)
    totals[customer] = (
        seconds + Decimal(row["billable_seconds"]),
        tokens_in + Decimal(row.get("input_tokens") or 0),
        tokens_out + Decimal(row.get("output_tokens") or 0),
    )


def _billed_by_customer(recorded: Recorded, month: str) -> dict[str, Quantities]:
    totals: dict[str, Quantities] = {}
    for row in recorded.ledger:
        if row["month"] == month and row.get("status") == "billable":
            _add(totals, str(row["customer_id"]), row)
    return totals


def _exported_by_customer(csv_text: str) -> dict[str, Quantities]:
    totals: dict[str, Quantities] = {}
    for row in csv.DictReader(io.StringIO(csv_text)):
        _add(totals, row["customer_id"], row)
    return totals


def _quantity(row: dict[str, str]) -> str:
    if row["product"] == "llm_gateway":
        return f"{row['input_tokens']} in + {row['output_tokens']} out tokens"
    return f"{row['billable_seconds']} s"


def _priced_table(csv_text: str) -> str:
    """The export's rows as finance reads them: what each add-on cost on that row's model, which
    rows are estimates, and why a row has no cost."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    return table(
        "How each row was priced (add-on prices per hour on the row's model; estimated = not "
        "measured)",
        [
            "customer",
            "product",
            "model",
            "region",
            "quantity",
            "estimated",
            "add-on prices",
            "cost",
            "unpriced",
        ],
        [
            [
                r["customer_id"],
                r["product"],
                r["model"],
                r["region"] or "-",
                _quantity(r),
                "yes" if r["estimated"] == "true" else "-",
                r["add_on_prices"] or "-",
                r["cost"] or "-",
                r["unpriced"] or "-",
            ]
            for r in rows
        ],
    )


def _unmet_pricing(csv_text: str) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    costs = {(r["customer_id"], r["product"], r["region"], r["cost"]) for r in rows}
    return [
        f"export: no row {expected}" for expected in EXPECTED_PRODUCT_COSTS if expected not in costs
    ] + [
        f"export: no row {expected}"
        for expected in EXPECTED_PRICING
        if not any(
            (r["customer_id"], r["product"], r["model"], r["estimated"]) == expected[:4]
            and expected[4] in f"{r['add_on_seconds']} {r['add_on_prices']};"
            for r in rows
        )
    ]


def run_export(stack: LocalStack, recorded: Recorded, out: TextIO) -> list[str]:
    """Export each recorded month, print its CSV and manifest summary; return unmet expectations."""
    failures: list[str] = []
    store, bucket = _store(stack)
    for month in sorted({str(r["month"]) for r in recorded.ledger}):
        invocation = stack.invoke(EXPORT_FUNCTION, {"month": month})
        result: dict[str, Any] = invocation.result or {}
        if not invocation.ok or result.get("status") != "published":
            failures.append(f"export of {month}: {json.dumps(invocation.as_json())}")
            continue
        version = int(result["version"])
        csv_text = store.read(month, version, CSV_NAME).decode("utf-8")
        manifest = json.loads(store.read(month, version, MANIFEST_NAME))
        out.write(
            f"Monthly billing export for {month} ({EXPORT_FUNCTION}, scheduled monthly on AWS): "
            f"version {version}, {result['row_count']} rows, price table "
            f"{result['price_table_version']}\n"
            f"  s3://{bucket}/{store.key(month, version, CSV_NAME)}\n\n"
        )
        out.writelines(f"  {line}\n" for line in csv_text.splitlines())
        out.write("\n" + _priced_table(csv_text))
        out.write(f"\n  manifest totals: {json.dumps(manifest.get('totals'), sort_keys=True)}\n")
        if manifest.get("unpriced"):
            out.write(f"  unpriced (cost left empty, never guessed): {len(manifest['unpriced'])}\n")
        again = stack.invoke(EXPORT_FUNCTION, {"month": month})
        out.write(
            f"  run again with no new data: {(again.result or {}).get('status')} "
            "(nothing new written)\n\n"
        )
        failures += _unmet_pricing(csv_text)
        billed, exported = _billed_by_customer(recorded, month), _exported_by_customer(csv_text)
        if billed != exported:
            failures.append(f"export of {month}: ledger {billed} != export {exported}")
        if (again.result or {}).get("status") != "unchanged":
            failures.append(f"export of {month}: a rerun wrote {json.dumps(again.as_json())}")
    return failures
