"""The monthly billing export and the usage API, against moto (DynamoDB + S3)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest

from conftest import REGION, Stack, sqs_event, usage_message_body, usage_query_event, webhook_url
from usage_meter.adapters.export_store import S3ExportStore
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.monthly_export import LedgerMismatch
from usage_meter.models.usage import UsageRecord, UsageStatus
from usage_meter_local.assemblyai_standin import transcript

_n = iter(range(10_000))


def record(
    stack: Stack,
    customer: str,
    seconds: str,
    *,
    at: str = "2026-11-15T12:00:00+00:00",
    model: str = "universal-3-pro",
    product: str = "async",
    status: UsageStatus = UsageStatus.BILLABLE,
    features: tuple[str, ...] = (),
    dimensions: dict[str, str] | None = None,
    project: str = "default",
) -> None:
    occurred = datetime.fromisoformat(at)
    ledger = DynamoUsageLedger(boto3.client("dynamodb", region_name=REGION), stack.table)
    outcome = ledger.record(
        UsageRecord(
            source_id=f"src-{next(_n)}",
            product=product,  # type: ignore[arg-type]
            status=status,
            customer_id=customer,
            project=project,
            month=occurred.astimezone(UTC).strftime("%Y-%m"),
            billable_seconds=Decimal(seconds) if status is UsageStatus.BILLABLE else Decimal(0),
            model=model,
            features=features,
            dimensions=dimensions or {},
            occurred_at=occurred,
        )
    )
    assert outcome.result.value == "recorded"


def bill(
    stack: Stack,
    transcript_id: str,
    customer: str,
    received_at: str,
    *,
    seconds: int = 60,
    model: str = "universal-3-pro",
) -> None:
    """Usage through the real path: the stand-in's transcript, fetched and recorded by the
    processor for a webhook first received at ``received_at``."""
    stack.api.state.add(
        transcript(
            transcript_id,
            webhook_url=webhook_url(customer),
            audio_duration=seconds,
            speech_model_used=model,
        )
    )
    body = usage_message_body(transcript_id, customer, received_at=received_at)
    assert stack.invoke_processor(sqs_event([body])) == {"batchItemFailures": []}


def key(month: str, version: int, name: str) -> str:
    """Where the export writes ``name`` (one prefix per dataset and format)."""
    return S3ExportStore(boto3.client("s3", region_name=REGION), "unused").key(month, version, name)


def jsonl_rows(stack: Stack, month: str, version: int) -> list[dict[str, Any]]:
    data = s3_object(stack, key(month, version, "usage.jsonl")).decode()
    return [json.loads(line) for line in data.splitlines()]


def export(stack: Stack, month: str) -> dict[str, Any]:
    return stack.invoke("MonthlyExportFunction", {"month": month})


def s3_object(stack: Stack, key: str) -> bytes:
    return (
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket=stack.bucket, Key=key)["Body"]
        .read()
    )


def s3_keys(stack: Stack) -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=stack.bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def csv_rows(stack: Stack, month: str, version: int) -> list[dict[str, str]]:
    data = s3_object(stack, key(month, version, "usage.csv")).decode()
    return list(csv.DictReader(io.StringIO(data)))


def test_export_writes_priced_rows_and_a_manifest(stack: Stack) -> None:
    record(stack, "acme", "3600", features=("speaker_labels",))
    record(stack, "acme", "1800", features=("speaker_labels",))
    record(stack, "acme", "600", model="universal-2")
    record(stack, "globex", "0", status=UsageStatus.FAILED)  # error transcripts are not billed

    summary = export(stack, "2026-11")

    assert summary["status"] == "published" and summary["version"] == 1
    assert s3_keys(stack) == [
        "exports/line_items/jsonl/month=2026-11/version=1/line_items.jsonl.gz",
        "exports/manifests/month=2026-11/version=1/manifest.json",
        "exports/summary/csv/month=2026-11/version=1/usage.csv",
        "exports/summary/jsonl/month=2026-11/version=1/usage.jsonl",
    ]
    rows = csv_rows(stack, "2026-11", 1)
    assert [
        (r["customer_id"], r["model"], r["usage_count"], r["billable_seconds"]) for r in rows
    ] == [
        ("acme", "universal-2", "1", "600"),
        ("acme", "universal-3-pro", "2", "5400"),
    ]
    pro = rows[1]
    # 1.5 h x 0.21 + 1.5 h x 0.02 (speaker labels) = 0.345 -> 0.35 (half-up, once, at the row)
    assert (pro["billable_hours"], pro["price_per_hour"], pro["cost"]) == (
        "1.500000",
        "0.21",
        "0.35",
    )
    assert pro["add_on_seconds"] == "speaker_labels=5400"
    assert rows[0]["cost"] == "0.03"  # 600 s x 0.15 / 3600 = 0.025 -> 0.03

    manifest = json.loads(s3_object(stack, key("2026-11", 1, "manifest.json")))
    assert manifest["row_count"] == 2
    # Rounded per row: 0.35 + 0.03 = 0.38; the exact sum 0.345 + 0.025 = 0.37 is kept beside it.
    assert manifest["totals"] == {
        "usage_count": 3,
        "billable_seconds": "6000",
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": "0.38",
        "cost_unrounded": "0.37",
        "priced_rows": 2,
        "unpriced_rows": 0,
        "estimated_rows": 0,
        "estimated_usage_count": 0,
        "estimated_seconds": "0",
        "estimated_cost": "0",
    }
    assert manifest["price_table_version"] == "2026-11-29"
    for name in ("usage.csv", "usage.jsonl"):
        data = s3_object(stack, key("2026-11", 1, name))
        assert manifest["files"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "rows": 2,
        }
    lines = s3_object(stack, key("2026-11", 1, "usage.jsonl")).decode().splitlines()
    assert json.loads(lines[1])["cost"] == "0.35"


def test_month_boundaries_are_utc(stack: Stack) -> None:
    record(stack, "acme", "10", at="2026-11-30T23:59:59.999+00:00")
    record(stack, "acme", "20", at="2026-12-01T00:00:00+00:00")
    record(stack, "acme", "40", at="2026-12-31T23:59:59+00:00")
    record(stack, "acme", "80", at="2027-01-01T00:00:00+00:00")
    record(stack, "acme", "160", at="2026-12-31T19:30:00-05:00")  # 00:30 UTC on January 1st

    seconds = {}
    for month in ("2026-11", "2026-12", "2027-01"):
        export(stack, month)
        seconds[month] = [r["billable_seconds"] for r in csv_rows(stack, month, 1)]
    assert seconds == {"2026-11": ["10"], "2026-12": ["60"], "2027-01": ["240"]}


def test_streaming_and_async_are_separate_rows(stack: Stack) -> None:
    record(stack, "acme", "7200", product="streaming", model="universal-streaming-english")
    record(stack, "acme", "60")
    export(stack, "2026-11")
    rows = csv_rows(stack, "2026-11", 1)
    assert [(r["product"], r["cost"]) for r in rows] == [("async", "0.00"), ("streaming", "0.30")]


def test_missing_price_leaves_cost_empty_and_is_listed(stack: Stack) -> None:
    record(stack, "acme", "3600", model="assemblyai-stt-3-7")
    record(stack, "acme", "3600", features=("speech_understanding",))
    record(stack, "acme", "3600", model="universal-2")

    export(stack, "2026-11")

    rows = {r["model"] + "|" + r["add_on_seconds"]: r for r in csv_rows(stack, "2026-11", 1)}
    assert rows["assemblyai-stt-3-7|"]["cost"] == ""
    assert rows["assemblyai-stt-3-7|"]["unpriced"] == "no price for model assemblyai-stt-3-7"
    assert rows["universal-3-pro|speech_understanding=3600"]["cost"] == ""
    assert rows["universal-2|"]["cost"] == "0.15"
    manifest = json.loads(s3_object(stack, key("2026-11", 1, "manifest.json")))
    assert [u["reason"] for u in manifest["unpriced"]] == [
        "no price for model assemblyai-stt-3-7",
        "no price for add-on speech_understanding",
    ]
    assert manifest["totals"]["cost"] == "0.15" and manifest["totals"]["unpriced_rows"] == 2


def test_a_month_before_the_first_price_version_is_exported_unpriced(stack: Stack) -> None:
    # Given usage in a month before the price table's first effective_from (2026-01-01)
    record(stack, "acme", "3600", at="2025-12-31T23:59:59+00:00")

    # When that month is exported and queried
    summary = export(stack, "2025-12")
    query = stack.invoke("UsageQueryFunction", _usage_event("acme", month="2025-12"))

    # Then the row is there with no cost and says why; nothing is guessed
    assert (summary["status"], summary["row_count"], summary["unpriced_rows"]) == (
        "published",
        1,
        1,
    )
    [row] = csv_rows(stack, "2025-12", 1)
    assert (row["billable_seconds"], row["cost"], row["price_version"]) == ("3600", "", "")
    assert row["unpriced"] == "no price table version in force in 2025-12"
    manifest = json.loads(s3_object(stack, key("2025-12", 1, "manifest.json")))
    assert manifest["price_table_version"] is None
    assert query["statusCode"] == 200
    assert json.loads(query["body"])["rows"][0]["cost"] is None


def test_formula_injection_is_neutralised_in_the_csv(stack: Stack) -> None:
    record(stack, "acme", "60", dimensions={"team": '=HYPERLINK("http://evil")'})
    record(stack, "acme", "60", dimensions={"team": "+cmd"})
    record(stack, "acme", "60", dimensions={"team": "@SUM(A1)"})
    export(stack, "2026-11")
    data = s3_object(stack, key("2026-11", 1, "usage.csv")).decode()
    cells = [r["dimensions"] for r in csv.DictReader(io.StringIO(data))]
    assert all(c.startswith("'") or c.startswith("team=") for c in cells)
    for line in data.splitlines()[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in next(csv.reader([line])))
    assert data.endswith("\r\n")  # RFC 4180 line endings


def test_formula_like_model_names_are_escaped_in_the_csv_and_raw_in_the_jsonl(
    stack: Stack,
) -> None:
    # Given transcripts whose speech_model_used a spreadsheet would read as formulas (model names
    # are not validated: AssemblyAI adds models, so the processor records whatever it reports)
    bill(stack, "t-hyperlink", "acme", "2026-11-10T09:00:00Z", model='=HYPERLINK("x")')
    bill(stack, "t-arith", "acme", "2026-11-10T09:00:01Z", model="-2+3")
    bill(stack, "t-plain", "acme", "2026-11-10T09:00:02Z", model="universal-2")
    assert {r["model"] for r in stack.items("ledger")} == {'=HYPERLINK("x")', "-2+3", "universal-2"}

    # When the month is exported
    export(stack, "2026-11")

    # Then the CSV cells start with an apostrophe (plain values untouched)...
    data = s3_object(stack, key("2026-11", 1, "usage.csv")).decode()
    assert sorted(r["model"] for r in csv.DictReader(io.StringIO(data))) == [
        "'-2+3",
        '\'=HYPERLINK("x")',
        "universal-2",
    ]
    for row in list(csv.reader(io.StringIO(data)))[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
    # ...and the machine-readable copy keeps the raw values
    assert sorted(r["model"] for r in jsonl_rows(stack, "2026-11", 1)) == [
        "-2+3",
        '=HYPERLINK("x")',
        "universal-2",
    ]


@pytest.mark.parametrize(
    ("before", "after", "months"),
    [
        ("2026-11-30T23:59:59Z", "2026-12-01T00:00:00Z", ("2026-11", "2026-12")),
        ("2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z", ("2026-12", "2027-01")),
    ],
)
def test_month_boundary_through_processor_ledger_aggregates_and_export(
    stack: Stack, before: str, after: str, months: tuple[str, str]
) -> None:
    # Given two transcripts first received one second apart, either side of a UTC month boundary
    bill(stack, "t-before", "acme", before, seconds=60)
    bill(stack, "t-after", "acme", after, seconds=90)

    # When each month is exported
    for month in months:
        assert export(stack, month)["status"] == "published"

    # Then each lands in its own month in the ledger, the aggregates and the exports
    first, second = months
    ledger = {r["source_id"]: (r["month"], r["LMPK"].split("#")[1]) for r in stack.items("ledger")}
    assert ledger == {"t-before": (first, first), "t-after": (second, second)}
    aggregates = sorted(
        (a["LMPK"], a["usage_count"], a["billable_seconds"]) for a in stack.items("aggregate")
    )
    assert aggregates == [(f"MONTH#{first}", 1, Decimal(60)), (f"MONTH#{second}", 1, Decimal(90))]
    exported = {
        month: [(r["usage_count"], r["billable_seconds"]) for r in csv_rows(stack, month, 1)]
        for month in months
    }
    assert exported == {first: [("1", "60")], second: [("1", "90")]}


def test_rerun_is_byte_identical_and_writes_nothing(stack: Stack) -> None:
    record(stack, "acme", "100")
    record(stack, "globex", "200", dimensions={"plan": "pro"})
    first = export(stack, "2026-11")
    keys = s3_keys(stack)
    files = {k: s3_object(stack, k) for k in keys}

    second = export(stack, "2026-11")

    assert (first["status"], second["status"]) == ("published", "unchanged")
    assert second["version"] == 1
    assert s3_keys(stack) == keys
    assert {k: s3_object(stack, k) for k in keys} == files


def test_late_event_produces_version_2_and_never_overwrites(stack: Stack) -> None:
    record(stack, "acme", "100")
    export(stack, "2026-11")
    v1 = {k: s3_object(stack, k) for k in s3_keys(stack)}

    record(stack, "acme", "50", at="2026-11-30T23:00:00+00:00")  # a late delivery
    record(stack, "initech", "10")
    summary = export(stack, "2026-11")

    assert (summary["status"], summary["version"]) == ("published", 2)
    assert {k: s3_object(stack, k) for k in v1} == v1  # version 1 untouched
    manifest = json.loads(s3_object(stack, key("2026-11", 2, "manifest.json")))
    assert manifest["previous_version"] == 1
    assert manifest["changes"] == {
        "rows_added": 1,
        "rows_removed": 0,
        "rows_changed": 1,
        "usage_count_delta": 2,
        "billable_seconds_delta": "60",
    }


def test_ledger_aggregate_disagreement_fails_loudly_and_writes_nothing(stack: Stack) -> None:
    record(stack, "acme", "100")
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.table)
    [aggregate] = stack.items("aggregate")
    table.update_item(
        Key={"PK": aggregate["PK"], "SK": aggregate["SK"]},
        UpdateExpression="ADD billable_seconds :x",
        ExpressionAttributeValues={":x": Decimal(1)},
    )
    with pytest.raises(LedgerMismatch, match="acme: aggregates 1 / 101 s, ledger 1 / 100 s"):
        export(stack, "2026-11")
    assert s3_keys(stack) == []


def test_empty_month_is_exported_with_zero_rows(stack: Stack) -> None:
    summary = export(stack, "2026-02")
    assert (summary["status"], summary["row_count"]) == ("published", 0)
    assert csv_rows(stack, "2026-02", 1) == []


def test_scheduled_run_exports_the_previous_month(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usage_meter.logic import monthly_export

    assert monthly_export.previous_month(datetime(2027, 1, 1, 6, tzinfo=UTC)) == "2026-12"
    assert monthly_export.previous_month(datetime(2026, 11, 1, 0, 30, tzinfo=UTC)) == "2026-10"
    summary = export(stack, "")  # the schedule's input carries no month
    assert summary["month"] == monthly_export.previous_month(datetime.now(UTC))


@pytest.mark.parametrize("month", ["2026-13", "26-11", "2026-1", "../x"])
def test_invalid_month_is_rejected(stack: Stack, month: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        export(stack, month)


def _usage_event(customer: str, **query: str) -> dict[str, Any]:
    return usage_query_event(customer, query)


def test_usage_api_returns_the_export_breakdown(stack: Stack) -> None:
    record(stack, "acme", "3600", features=("speaker_labels",))
    response = stack.invoke("UsageQueryFunction", _usage_event("acme", month="2026-11"))
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["totals"]["cost"] == "0.23"
    assert [(r["model"], r["usage_count"], r["cost"]) for r in body["rows"]] == [
        ("universal-3-pro", 1, "0.23")
    ]
    export(stack, "2026-11")
    exported = json.loads(s3_object(stack, key("2026-11", 1, "usage.jsonl")).decode())
    assert body["rows"] == [exported]  # same numbers as finance's file


def test_usage_api_csv_and_zeros_for_a_quiet_customer(stack: Stack) -> None:
    response = stack.invoke("UsageQueryFunction", _usage_event("nobody", month="2026-11"))
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["rows"] == [] and body["totals"]["usage_count"] == 0
    assert body["totals"]["cost"] == "0"
    record(stack, "acme", "60")
    as_csv = stack.invoke("UsageQueryFunction", _usage_event("acme", month="2026-11", format="csv"))
    assert as_csv["headers"]["Content-Type"].startswith("text/csv")
    assert as_csv["body"].splitlines()[0].startswith("month,customer_id,product")


@pytest.mark.parametrize(
    ("customer", "query", "code"),
    [
        ("acme", {"month": "2026-13"}, "invalid_month"),
        ("acme", {"month": "2026-00"}, "invalid_month"),
        ("-acme", {"month": "2026-11"}, "invalid_customer_id"),
        ("acme", {"month": "2026-11", "format": "xml"}, "invalid_format"),
    ],
)
def test_usage_api_rejects_bad_input(
    stack: Stack, customer: str, query: dict[str, str], code: str
) -> None:
    response = stack.invoke("UsageQueryFunction", _usage_event(customer, **query))
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == code


@pytest.mark.parametrize(
    "query", [{"Month": "2025-01"}, {"month": "2026-11", "limit": "5"}, {"MONTH": "2025-01"}]
)
def test_usage_api_refuses_an_unknown_query_parameter_instead_of_ignoring_it(
    stack: Stack, query: dict[str, str]
) -> None:
    # ?Month=2025-01 used to answer 200 with the current month: the caller never knew.
    response = stack.invoke("UsageQueryFunction", _usage_event("acme", **query))
    assert response["statusCode"] == 400
    body = json.loads(response["body"])
    [unknown] = [name for name in query if name != "month"]
    assert body["error"] == "unknown_parameter" and repr(unknown) in body["message"]


def test_usage_api_defaults_to_the_current_month(stack: Stack) -> None:
    record(stack, "acme", "60", at=datetime.now(UTC).isoformat())
    body = json.loads(stack.invoke("UsageQueryFunction", _usage_event("acme"))["body"])
    assert body["month"] == datetime.now(UTC).strftime("%Y-%m")
    assert body["totals"]["usage_count"] == 1


def test_a_published_file_is_never_overwritten(stack: Stack) -> None:
    from usage_meter.adapters.export_store import ExportConflict

    store = S3ExportStore(boto3.client("s3", region_name=REGION), stack.bucket)
    store.publish("2026-11", 1, {"usage.csv": b"a", "manifest.json": b"{}"})
    with pytest.raises(ExportConflict):
        store.publish("2026-11", 1, {"usage.csv": b"b", "manifest.json": b"{}"})
    assert s3_object(stack, key("2026-11", 1, "usage.csv")) == b"a"


def test_an_interrupted_run_is_not_published_and_its_version_is_skipped(stack: Stack) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=stack.bucket, Key=key("2026-11", 1, "usage.csv"), Body=b"half")
    record(stack, "acme", "100")
    summary = export(stack, "2026-11")
    assert summary["version"] == 2
    manifest = json.loads(s3_object(stack, key("2026-11", 2, "manifest.json")))
    assert manifest["previous_version"] is None


def test_ledger_rows_without_any_aggregate_are_detected(stack: Stack) -> None:
    record(stack, "acme", "100")
    record(stack, "globex", "50")
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.table)
    for aggregate in stack.items("aggregate"):
        if aggregate["customer_id"] == "globex":
            table.delete_item(Key={"PK": aggregate["PK"], "SK": aggregate["SK"]})
    with pytest.raises(LedgerMismatch, match="globex: aggregates 0 / 0 s, ledger 1 / 50 s"):
        export(stack, "2026-11")
    assert s3_keys(stack) == []


def test_ledger_index_spreads_a_month_over_shards(stack: Stack) -> None:
    for n in range(40):
        record(stack, f"customer-{n}", "1")
    partitions = {row["LMPK"] for row in stack.items("ledger")}
    assert 8 <= len(partitions) <= 16 and all(p.startswith("LEDGER#2026-11#") for p in partitions)
    assert export(stack, "2026-11")["row_count"] == 40
