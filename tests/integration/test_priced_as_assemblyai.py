"""Priced as AssemblyAI prices it: the four cases of issue 11, end to end against moto.

Sources are cited per test. The shipped price table (``config/prices.json``, version 2026-11-29,
effective from 2026-11-01) is what these tests price with.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from test_streaming import begin, status_of, sweep, terminate

from conftest import REGION, Stack, sqs_event, usage_message_body, usage_query_event, webhook_url
from usage_meter.adapters.export_store import S3ExportStore
from usage_meter_local.assemblyai_standin import transcript

NOW = datetime.now(UTC).replace(microsecond=0)
MONTH = "2026-11"


def export_files(stack: Stack, month: str) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    summary = stack.invoke("MonthlyExportFunction", {"month": month})
    s3 = boto3.client("s3", region_name=REGION)
    store = S3ExportStore(s3, stack.bucket)

    def read(name: str) -> str:
        key = store.key(month, summary["version"], name)
        body = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
        return str(body.decode())

    rows = list(csv.DictReader(io.StringIO(read("usage.csv"))))
    return rows, [json.loads(line) for line in read("usage.jsonl").splitlines()] + [
        json.loads(read("manifest.json"))
    ]


def usage_api(stack: Stack, customer: str, month: str) -> dict[str, Any]:
    event = usage_query_event(customer, {"month": month})
    response = stack.invoke("UsageQueryFunction", event)
    assert response["statusCode"] == 200
    document: dict[str, Any] = json.loads(response["body"])
    return document


def test_case_1_keyterms_are_free_on_universal_2(stack: Stack) -> None:
    """Case 1: a completed 3,600 s Universal-2 transcript with ``keyterms_prompt`` costs 0.15.

    Source: AssemblyAI docs, Keyterms Prompting (pre-recorded), "keyterms_prompt for Universal-2
    is currently available at no additional cost" (assemblyai-api-spec
    fern/pages/speech-to-text/pre-recorded-audio/improving-transcript-accuracy.mdx, commit
    3fcf678); Universal-2 $0.15/hr (docs getting-started/models#pricing). Before the fix the
    add-on was priced at the Universal-3 Pro keyterms rate: 0.15 + 0.05 = 0.20.
    """
    stack.api.state.add(
        transcript(
            "7c1f0a2e-1111-4a4a-9b9b-000000000001",
            webhook_url=webhook_url("acme"),
            audio_duration=3600,
            speech_model_used="universal-2",
            keyterms_prompt=["AcmeCloud", "Zephyr plan"],
        )
    )
    body = usage_message_body(
        "7c1f0a2e-1111-4a4a-9b9b-000000000001", "acme", received_at="2026-11-15T10:00:00+00:00"
    )
    assert stack.invoke_processor(sqs_event([body])) == {"batchItemFailures": []}

    [row], _ = export_files(stack, MONTH)

    assert (row["model"], row["add_on_seconds"], row["add_on_prices"]) == (
        "universal-2",
        "keyterms_prompt=3600",
        "keyterms_prompt=0",
    )
    assert (row["cost"], row["unpriced"]) == ("0.15", "")


def test_case_2_a_capped_session_is_estimated_at_its_cap(stack: Stack) -> None:
    """Case 2: Begin 3 h 20 min ago, token capped at 600 s (Begin ``expires_at`` = begin + 600 s),
    no Termination: the orphan sweep bills 600 s, estimated (not 10,800 s).

    Sources: spec ``GET /v3/token`` ``max_session_duration_seconds`` 60..10800 (assemblyai-api-spec
    fern/.definition/streamingApi.yml); the Begin message's ``expires_at`` (asyncapi ``Begin``);
    docs "Billing and Pricing": an unclosed session is closed and billed at its limit.
    """
    began = NOW - timedelta(hours=3, minutes=20)
    assert status_of(
        begin(
            stack,
            began_at=began.isoformat(),
            expires_at=int((began + timedelta(seconds=600)).timestamp()),
        )
    ) == (200, "recorded")

    assert sweep(stack)["billed"] == 1

    [row] = stack.items("ledger")
    assert (row["billable_seconds"], row["estimated"], row["origin"]) == (
        Decimal(600),
        True,
        "orphan_estimate",
    )
    assert row["occurred_at"] == (began + timedelta(seconds=600)).isoformat()


def test_case_2_the_tokens_cap_bounds_the_estimate_too(stack: Stack) -> None:
    """The temporary token's ``max_session_duration_seconds`` (spec streamingApi.yml, 60..10800),
    reported with the begin, bounds the estimate the same way."""
    began = NOW - timedelta(hours=4)
    begin(stack, began_at=began.isoformat(), max_session_duration_seconds=900)
    sweep(stack)
    [row] = stack.items("ledger")
    assert (row["billable_seconds"], row["estimated"]) == (Decimal(900), True)


def test_case_3_streaming_keyterms_are_billed(stack: Stack) -> None:
    """Case 3: a one-hour ``universal-streaming-english`` session with keyterms prompting is
    billed 0.15 (model) + 0.04 (keyterms) = 0.19.

    Sources: docs "Keyterms prompting for Universal-Streaming": "Keyterms Prompting costs an
    additional $0.04/hour" (assemblyai-api-spec universal-streaming-keyterms.mdx); Universal-
    Streaming English $0.15/hr (docs getting-started/models#pricing). Before the fix the report
    was refused (400, extra inputs) or, without the field, the add-on was never billed.
    """
    assert status_of(
        terminate(
            stack,
            session_duration_seconds=3600,
            audio_duration_seconds=3590,
            model="universal-streaming-english",
            add_ons=["keyterms_prompt"],
            ended_at="2026-11-15T10:00:00+00:00",
        )
    ) == (200, "recorded")

    [row], _ = export_files(stack, MONTH)

    assert (row["product"], row["add_on_seconds"], row["add_on_prices"]) == (
        "streaming",
        "keyterms_prompt=3600",
        "keyterms_prompt=0.04",
    )
    assert (row["cost"], row["cost_unrounded"]) == ("0.19", "0.19")


def test_case_3_an_unknown_streaming_add_on_makes_the_row_unpriced(stack: Stack) -> None:
    """An add-on the price table does not know is never priced at the model rate alone."""
    terminate(
        stack,
        session_duration_seconds=3600,
        audio_duration_seconds=3590,
        model="universal-streaming-english",
        add_ons=["redact_pii"],
        ended_at="2026-11-15T10:00:00+00:00",
    )
    [row], _ = export_files(stack, MONTH)
    assert (row["cost"], row["unpriced"]) == ("", "no price for add-on redact_pii")


def test_case_4_estimated_usage_is_marked_wherever_money_is_shown(stack: Stack) -> None:
    """Case 4: an orphaned session billed at the 3-hour limit (10,800 s, 0.45 at $0.15/hr) is a
    row of its own marked ``estimated`` in the CSV, the JSONL, the manifest totals and the usage
    API, beside the customer's measured usage (a 600 s session, 0.03).

    Source: docs "Billing and Pricing": "If a session is not closed, it will automatically close
    after 3 hours" and is billed for them; the figure is ours (an estimate) until a Termination
    replaces it.
    """
    began = NOW - timedelta(hours=4)
    ended = began + timedelta(hours=3)
    begin(stack, session_id="11111111-2222-4333-8444-555555555555", began_at=began.isoformat())
    assert sweep(stack)["billed"] == 1
    terminate(  # another session of the same customer: 600 s, measured
        stack,
        ended_at=ended.isoformat(),
        model="universal-streaming-english",
        dimensions={"plan": "pro"},
    )

    rows, documents = export_files(stack, f"{ended:%Y-%m}")
    manifest = documents[-1]

    assert [(r["estimated"], r["billable_seconds"], r["cost"]) for r in rows] == [
        ("false", "600", "0.03"),
        ("true", "10800", "0.45"),
    ]
    assert [d["estimated"] for d in documents[:-1]] == [False, True]
    totals = manifest["totals"]
    assert (totals["estimated_rows"], totals["estimated_seconds"], totals["estimated_cost"]) == (
        1,
        "10800",
        "0.45",
    )
    assert (totals["billable_seconds"], totals["cost"]) == ("11400", "0.48")
    api = usage_api(stack, "acme", f"{ended:%Y-%m}")
    assert [(r["estimated"], r["cost"]) for r in api["rows"]] == [(False, "0.03"), (True, "0.45")]
    assert api["totals"]["estimated_cost"] == "0.45"
    assert api["rows"] == documents[:-1]  # the same figures finance gets


def test_jsonl_nulls_are_nulls_not_empty_strings(stack: Stack) -> None:
    """README: in the JSONL "missing values are null": a priced row has no unpriced reason
    (null), a row without add-ons has no add-on seconds or prices (null)."""
    terminate(stack, ended_at="2026-11-15T10:00:00+00:00", model="universal-streaming-english")
    _, documents = export_files(stack, MONTH)
    row = documents[0]
    assert (row["unpriced"], row["add_on_seconds"], row["add_on_prices"]) == (None, None, None)
    assert (row["cost"], row["currency"], row["dimensions"]) == ("0.03", "USD", "")
