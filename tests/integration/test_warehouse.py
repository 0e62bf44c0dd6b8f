"""The export as a warehouse sees it: the Glue tables declared in template.yaml, read the way Athena
reads them (partition projection + Hive JSON SerDe), against the files a real export writes.

The reader below is an Athena stand-in built only from the table definitions: it projects the
partition locations from ``storage.location.template`` and the ``projection.*`` properties (no
crawler, no MSCK REPAIR), lists what is there, un-gzips ``.gz`` objects (Athena picks the codec from
the extension), maps each JSON key to the declared column by name and converts it to the column's
Hive type, failing on anything the SerDe would mis-read: a key the table does not declare (Athena
would silently drop it), a decimal with more scale or precision than declared, a timestamp not in
``java.sql.Timestamp`` text form (the Hive JSON SerDe's default; Amazon Data Firehose API reference,
HiveJsonSerDe.TimestampFormats), a number where a string is declared. Partition projection is
documented at https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html
(types enum/integer/date/injected; date ``format`` and ``range`` with ``NOW``; integer ``range``).
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from test_monthly_export import export, record

from conftest import REGION, Stack
from usage_meter.logic.monthly_export import MAX_VERSION
from usage_meter.models.usage import UsageStatus
from usage_meter_local.template import Tag, load_template, resources_of

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
TABLES = {
    props["TableInput"]["Name"]: props["TableInput"]
    for props in resources_of(TEMPLATE, "AWS::Glue::Table").values()
}
SCHEMAS = {p.name: json.loads(p.read_text()) for p in (ROOT / "schemas").glob("*.schema.json")}


# -- Hive types ----------------------------------------------------------------------------------
def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "<("
        depth -= ch in ">)"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def convert(value: Any, hive_type: str, where: str) -> Any:
    """A JSON value as the Hive JSON SerDe would type it; AssertionError where it would not."""
    if value is None:
        return None
    if hive_type == "string":
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
        return value
    if hive_type in ("int", "bigint"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r}"
        assert -(2**31) <= value < 2**31 or hive_type == "bigint", f"{where}: {value} overflows"
        return value
    if hive_type == "boolean":
        assert isinstance(value, bool), f"{where}: {value!r} is not a boolean"
        return value
    if hive_type == "timestamp":
        assert isinstance(value, str), f"{where}: {value!r}"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?", value), (
            f"{where}: {value!r} is not java.sql.Timestamp text"
        )
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    if match := re.fullmatch(r"decimal\((\d+),(\d+)\)", hive_type):
        precision, scale = int(match.group(1)), int(match.group(2))
        assert isinstance(value, str | int) and not isinstance(value, bool), f"{where}: {value!r}"
        number = Decimal(str(value))
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int) and -exponent <= scale, f"{where}: {value} > scale"
        assert len(number.quantize(Decimal(1).scaleb(-scale)).as_tuple().digits) <= precision
        return number
    if match := re.fullmatch(r"array<(.+)>", hive_type):
        assert isinstance(value, list), f"{where}: {value!r} is not an array"
        return [convert(v, match.group(1), where) for v in value]
    if match := re.fullmatch(r"struct<(.+)>", hive_type):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        fields = dict(f.split(":", 1) for f in _split_top(match.group(1)))
        return {name: convert(value.get(name), t, f"{where}.{name}") for name, t in fields.items()}
    raise AssertionError(f"{where}: type {hive_type} not understood by this reader")


# -- partition projection -------------------------------------------------------------------------
def location_template(table: dict[str, Any], bucket: str) -> str:
    raw = table["Parameters"]["storage.location.template"]
    assert isinstance(raw, Tag) and raw.name == "Sub", raw
    return str(raw.value).replace("${ExportBucket}", bucket).replace("${!", "${")


def projected_months(table: dict[str, Any], now: datetime) -> list[str]:
    params = table["Parameters"]
    assert params["projection.enabled"] == "true"
    assert (params["projection.month.type"], params["projection.month.format"]) == (
        "date",
        "yyyy-MM",
    )
    assert (params["projection.month.interval"], params["projection.month.interval.unit"]) == (
        "1",
        "MONTHS",
    )
    start, end = params["projection.month.range"].split(",")
    end = now.strftime("%Y-%m") if end == "NOW" else end
    months, (year, month) = [], map(int, start.split("-"))
    while f"{year:04d}-{month:02d}" <= end:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return months


def projected_versions(table: dict[str, Any]) -> range:
    params = table["Parameters"]
    assert params["projection.version.type"] == "integer"
    low, high = (int(v) for v in params["projection.version.range"].split(","))
    return range(low, high + 1)


def select(stack: Stack, table_name: str, month: str, *, now: datetime) -> list[dict[str, Any]]:
    """``SELECT * FROM <table> WHERE month = '<month>'`` as Athena runs it over projection."""
    table = TABLES[table_name]
    assert month in projected_months(table, now), f"{month} is outside the projected range"
    partitions = [p["Name"] for p in table["PartitionKeys"]]
    assert partitions == ["month", "version"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert not columns.keys() & set(partitions), "a column may not repeat a partition key"
    serde = table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    assert serde == "org.apache.hive.hcatalog.data.JsonSerDe"
    s3 = boto3.client("s3", region_name=REGION)
    rows = []
    for version in projected_versions(table):
        location = location_template(table, stack.bucket)
        location = location.replace("${month}", month).replace("${version}", str(version))
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if not listing:
            if version > 3:
                break  # the rest are empty too (test data has few versions)
            continue
        for obj in listing:
            data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if obj["Key"].endswith(".gz"):
                data = gzip.decompress(data)
            for n, line in enumerate(data.decode("utf-8").splitlines()):
                document = json.loads(line)
                assert isinstance(document, dict), f"{obj['Key']}:{n} is not one object per line"
                rows.append(
                    {
                        **{
                            name: convert(document.get(name), t, f"{obj['Key']}:{n}:{name}")
                            for name, t in columns.items()
                        },
                        "month": month,
                        "version": version,
                        "_key": obj["Key"],
                        "_extra": set(document) - set(columns),
                    }
                )
    return rows


# -- the scenario ---------------------------------------------------------------------------------
NOW = datetime(2026, 12, 1, 6, tzinfo=UTC)
KEY = ("customer_id", "product", "project", "model", "region", "dimensions", "estimated")


def _scenario(stack: Stack) -> None:
    record(stack, "acme", "3600", features=("speaker_labels",), dimensions={"plan": "pro"})
    record(stack, "acme", "1800.5", features=("speaker_labels",), dimensions={"plan": "pro"})
    record(stack, "acme", "600", model="universal-2")
    record(stack, "acme", "0", status=UsageStatus.FAILED)
    record(stack, "globex", "7200", product="streaming", model="u3-rt-pro", project="eu")
    record(stack, "globex", "12.125", model="slam-1")  # unpriced
    record(stack, "initech", "42", at="2026-11-30T23:59:59.999+00:00")


def test_glue_tables_read_the_files_an_export_writes(stack: Stack) -> None:
    # Given a month with priced, unpriced, failed, streaming and dimensioned usage, exported
    _scenario(stack)
    assert export(stack, "2026-11")["status"] == "published"

    # When each Glue table is read as Athena would, for month = '2026-11'
    summary = select(stack, "usage_summary", "2026-11", now=NOW)
    items = select(stack, "line_items", "2026-11", now=NOW)
    [manifest] = select(stack, "export_manifests", "2026-11", now=NOW)

    # Then every table reads only its own dataset, and every file key is read by one table
    s3 = boto3.client("s3", region_name=REGION)
    written = {o["Key"] for o in s3.list_objects_v2(Bucket=stack.bucket)["Contents"]}
    read = {r["_key"] for r in summary + items + [manifest]}
    assert written - read == {"exports/summary/csv/month=2026-11/version=1/usage.csv"}
    assert {r["_key"].split("/")[1] for r in summary} == {"summary"}
    assert {r["_key"].split("/")[1] for r in items} == {"line_items"}
    # ...the summary and line items carry no field the table lacks (only the partition's month)
    assert {frozenset(r["_extra"]) for r in summary} == {frozenset({"month"})}
    assert {frozenset(r["_extra"]) for r in items} == {frozenset()}
    # ...the typed values are the export's
    assert len(summary) == 5 and len(items) == 7
    slam = next(r for r in summary if r["model"] == "slam-1")
    assert (slam["cost"], slam["price_per_hour"], slam["billable_seconds"]) == (
        None,
        None,
        Decimal("12.125"),
    )
    late = next(r for r in items if r["customer_id"] == "initech")
    assert late["occurred_at"] == datetime(2026, 11, 30, 23, 59, 59, 999000, tzinfo=UTC)
    assert next(r for r in items if r["status"] == "failed")["billable_seconds"] == 0

    # ...and the SQL finance would run agrees: line items group-by = summary = manifest totals
    grouped: dict[tuple[str, ...], list[Any]] = {}
    for item in items:
        if item["status"] != "billable":
            continue
        key = tuple(item[c] for c in KEY)
        entry = grouped.setdefault(key, [0, Decimal(0)])
        entry[0] += 1
        entry[1] += item["billable_seconds"]
    assert grouped == {
        tuple(r[c] for c in KEY): [
            r["usage_count"],
            r["billable_seconds"],
        ]
        for r in summary
    }
    assert manifest["totals"]["usage_count"] == sum(r["usage_count"] for r in summary) == 6
    assert manifest["totals"]["billable_seconds"] == sum(
        (r["billable_seconds"] for r in summary), Decimal(0)
    )
    assert manifest["totals"]["cost"] == sum((r["cost"] or Decimal(0) for r in summary), Decimal(0))
    assert manifest["line_items"] == {
        "row_count": 7,
        "billable_rows": 6,
        "failed_rows": 1,
        "estimated_rows": 0,
        "billable_seconds": manifest["totals"]["billable_seconds"],
    }


def test_a_second_version_is_its_own_partition(stack: Stack) -> None:
    record(stack, "acme", "100")
    export(stack, "2026-11")
    record(stack, "acme", "50")
    assert export(stack, "2026-11")["version"] == 2

    summary = select(stack, "usage_summary", "2026-11", now=NOW)
    manifests = select(stack, "export_manifests", "2026-11", now=NOW)

    # The README's "latest version" query: version = (SELECT max(version) FROM export_manifests)
    latest = max(m["version"] for m in manifests)
    assert [(r["version"], r["usage_count"]) for r in summary if r["version"] == latest] == [(2, 2)]
    assert sorted(r["version"] for r in summary) == [1, 2]


def test_projection_covers_every_version_the_export_may_write() -> None:
    for name, table in TABLES.items():
        assert projected_versions(table) == range(1, MAX_VERSION + 1), name
        assert projected_months(table, NOW)[0] == "2020-01", name


def test_table_locations_are_the_export_prefix() -> None:
    function = resources_of(TEMPLATE, "AWS::Serverless::Function")["MonthlyExportFunction"]
    prefix = function["Environment"]["Variables"]["EXPORT_PREFIX"]
    for name, table in TABLES.items():
        location = location_template(table, "bucket")
        assert location.startswith(f"s3://bucket/{prefix}/"), name
        assert location.endswith("/month=${month}/version=${version}/"), name
        base = table["StorageDescriptor"]["Location"]
        assert isinstance(base, Tag)
        assert location.startswith(str(base.value).replace("${ExportBucket}", "bucket")), name


@pytest.mark.parametrize(
    ("schema", "table"),
    [
        ("export_row.schema.json", "usage_summary"),
        ("line_item.schema.json", "line_items"),
    ],
)
def test_json_schemas_and_glue_columns_name_the_same_fields(schema: str, table: str) -> None:
    columns = {c["Name"] for c in TABLES[table]["StorageDescriptor"]["Columns"]}
    properties = set(SCHEMAS[schema]["properties"])
    assert properties - {"month"} == columns


def test_every_file_matches_its_json_schema(stack: Stack) -> None:
    _scenario(stack)
    record(stack, "acme", "10", product="streaming", model="u3-rt-pro")
    export(stack, "2026-11")
    record(stack, "acme", "5")
    export(stack, "2026-11")  # version 2, with a change summary

    s3 = boto3.client("s3", region_name=REGION)
    checked = 0
    for obj in s3.list_objects_v2(Bucket=stack.bucket)["Contents"]:
        data = s3.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read()
        name = obj["Key"].rsplit("/", 1)[1]
        schema = {
            "usage.jsonl": "export_row.schema.json",
            "line_items.jsonl.gz": "line_item.schema.json",
            "manifest.json": "manifest.schema.json",
        }.get(name)
        if schema is None:
            continue
        validator = jsonschema.Draft202012Validator(SCHEMAS[schema])
        text = gzip.decompress(data) if name.endswith(".gz") else data
        for line in text.decode().splitlines():
            validator.validate(json.loads(line))
            checked += 1
    assert checked == (6 + 7) + (8 + 9) + 2  # summary rows, line items, manifests (v1 + v2)


def test_schemas_reject_what_the_tables_cannot_read() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMAS["line_item.schema.json"])
    good = {
        "source_id": "t1",
        "customer_id": "acme",
        "product": "async",
        "project": "default",
        "model": "universal-2",
        "dimensions": "",
        "quantity": "60",
        "unit": "second",
        "region": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "billable_seconds": "60",
        "audio_duration_seconds": "60",
        "audio_channels": 1,
        "language_code": "en",
        "add_ons": [],
        "occurred_at": "2026-11-03 14:05:09.123000",
        "origin": "webhook",
        "estimated": False,
        "status": "billable",
    }
    validator.validate(good)
    for field, bad in [
        ("occurred_at", "2026-11-03T14:05:09+00:00"),  # ISO text: not a Hive timestamp
        ("billable_seconds", 60.5),  # a float
        ("billable_seconds", "1E+3"),  # exponent notation
        ("billable_seconds", "0.0000000001"),  # beyond decimal(38,9)
        ("status", "pending"),
    ]:
        assert not validator.is_valid({**good, field: bad}), field
