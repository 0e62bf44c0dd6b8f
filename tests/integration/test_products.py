"""LLM Gateway, Voice Agent API and Sync API usage, reported by the app on the signed path.

Facts (docs/products.md): LLM Gateway bills input and output tokens per model (the response's
``usage.prompt_tokens`` / ``usage.completion_tokens``), in-region endpoints (US/EU) 10% above
global routing (https://www.assemblyai.com/pricing, transcribed 2026-10-07; docs "Cloud
Endpoints and Data Residency" for LLM Gateway). Voice Agent API: $4.50/hr of connected
conversation time. Sync API: $0.30/hr of audio, ``audio_duration_ms`` in the response, at most
120 s per request (docs sync-stt "Audio requirements").
"""

from __future__ import annotations

import csv
import io
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import REGION, REPORT_SECRET, Stack, usage_query_event
from usage_meter.adapters.export_store import S3ExportStore
from usage_meter.logic.standard_webhooks import signed_headers

MONTH = "2026-11"
IN_MONTH = "2026-11-20T10:00:00+00:00"
LAST_MOMENT_OF_OCTOBER = "2026-10-31T23:59:59.999+00:00"


def report_event(path: str, body: dict[str, Any] | str, *, secret: str = REPORT_SECRET) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            **signed_headers([secret], "msg_product_test", int(time.time()), raw.encode()),
        },
        "requestContext": {"http": {"method": "POST", "path": path}},
        "body": raw,
        "isBase64Encoded": False,
    }


def post(stack: Stack, path: str, body: dict[str, Any] | str, **kw: Any) -> tuple[int, Any]:
    response = stack.invoke("StreamingReportFunction", report_event(path, body, **kw))
    answer = json.loads(response["body"])
    return response["statusCode"], answer.get("status") or answer.get("error")


def llm(**overrides: Any) -> dict[str, Any]:
    return {
        "response_id": "chatcmpl-7f3a",
        "customer_id": "acme",
        "model": "claude-sonnet-4-6",
        "region": "us",
        "prompt_tokens": 1200,
        "completion_tokens": 85,
        "completed_at": IN_MONTH,
        **overrides,
    }


def voice(**overrides: Any) -> dict[str, Any]:
    return {
        "session_id": "sess_9a648a2ab75747a9",
        "customer_id": "acme",
        "duration_seconds": 600,
        "ended_at": IN_MONTH,
        **overrides,
    }


def sync(**overrides: Any) -> dict[str, Any]:
    return {
        "session_id": "0d6c2b1e-5f4a-4b3c-9d8e-7f6a5b4c3d2e",
        "customer_id": "acme",
        "model": "universal-3-5-pro",
        "audio_duration_ms": 90000,
        "transcribed_at": IN_MONTH,
        **overrides,
    }


def export(stack: Stack, month: str = MONTH) -> tuple[list[dict[str, str]], dict[str, Any]]:
    summary = stack.invoke("MonthlyExportFunction", {"month": month})
    s3 = boto3.client("s3", region_name=REGION)
    store = S3ExportStore(s3, stack.bucket)

    def read(name: str) -> str:
        key = store.key(month, summary["version"], name)
        return str(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read().decode())

    return list(csv.DictReader(io.StringIO(read("usage.csv")))), json.loads(read("manifest.json"))


def usage_api(stack: Stack, customer: str, month: str = MONTH) -> dict[str, Any]:
    event = usage_query_event(customer, {"month": month})
    document: dict[str, Any] = json.loads(stack.invoke("UsageQueryFunction", event)["body"])
    return document


@pytest.fixture
def token_prices(stack: Stack, tmp_path: Path) -> None:
    """The shipped table with one LLM Gateway model priced as an operator would add it from the
    dashboard's Rates table (test figures, not AssemblyAI's: no stored source publishes them)."""
    shipped = Path(__file__).parents[2] / "functions/usage_meter/config/prices.json"
    table = json.loads(shipped.read_text())
    table["versions"][-1]["llm_gateway"]["models"]["claude-sonnet-4-6"] = {
        "per_million_input_tokens": "3.00",
        "per_million_output_tokens": "15.00",
        "source": "test figures",
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(table))
    stack.overrides["PRICE_TABLE_PATH"] = str(path)


class TestLlmGateway:
    def test_a_response_is_billed_once_however_often_it_is_reported(self, stack: Stack) -> None:
        assert post(stack, "/usage/llm-gateway", llm()) == (200, "recorded")
        assert post(stack, "/usage/llm-gateway", llm()) == (200, "duplicate")
        [row] = stack.items("ledger")
        assert (row["product"], row["input_tokens"], row["output_tokens"]) == (
            "llm_gateway",
            1200,
            85,
        )
        [aggregate] = stack.items("aggregate")
        assert (aggregate["usage_count"], aggregate["input_tokens"]) == (1, 1200)
        assert (aggregate["output_tokens"], aggregate["region"]) == (85, "us")

    def test_other_figures_for_a_reported_response_are_quarantined_not_billed(
        self, stack: Stack
    ) -> None:
        assert post(stack, "/usage/llm-gateway", llm())[0] == 200
        assert post(stack, "/usage/llm-gateway", llm(completion_tokens=86)) == (409, "conflict")
        [item] = stack.items("quarantine")
        assert item["reason"] == "report_conflict"
        assert "output_tokens=85" in item["detail"] and "output_tokens=86" in item["detail"]
        [aggregate] = stack.items("aggregate")
        assert (aggregate["usage_count"], aggregate["output_tokens"]) == (1, 85)

    def test_the_same_id_in_another_product_is_another_usage(self, stack: Stack) -> None:
        assert post(stack, "/usage/llm-gateway", llm(response_id="same-id"))[1] == "recorded"
        assert post(stack, "/usage/sync", sync(session_id="same-id"))[1] == "recorded"
        assert len(stack.items("ledger")) == 2

    def test_priced_per_token_with_the_in_region_uplift(
        self, stack: Stack, token_prices: None
    ) -> None:
        """1,000,000 input + 100,000 output tokens at 3.00 / 15.00 per million: 4.50 on global
        routing, x 1.10 = 4.95 on the US and EU endpoints (in-region pricing 10% higher)."""
        for n, region in enumerate(["global", "us", "eu"]):
            body = llm(
                response_id=f"r{n}",
                region=region,
                prompt_tokens=1_000_000,
                completion_tokens=100_000,
            )
            assert post(stack, "/usage/llm-gateway", body)[1] == "recorded"
        rows, manifest = export(stack)
        by_region = {r["region"]: r for r in rows}
        assert {k: by_region[k]["cost"] for k in by_region} == {
            "global": "4.50",
            "us": "4.95",
            "eu": "4.95",
        }
        assert by_region["eu"]["price_per_million_input_tokens"] == "3.3"
        assert by_region["eu"]["price_per_million_output_tokens"] == "16.5"
        assert (by_region["us"]["input_tokens"], by_region["us"]["billable_seconds"]) == (
            "1000000",
            "0",
        )
        assert manifest["schema_version"] == 2
        assert manifest["totals"]["input_tokens"] == 3_000_000
        assert manifest["totals"]["cost"] == "14.40"

    def test_a_model_without_a_sourced_token_price_is_unpriced_with_the_reason(
        self, stack: Stack
    ) -> None:
        assert post(stack, "/usage/llm-gateway", llm())[1] == "recorded"
        rows, manifest = export(stack)
        [row] = rows
        assert row["cost"] == ""
        assert "no token price for model claude-sonnet-4-6" in row["unpriced"]
        assert "Rates table" in row["unpriced"]
        assert manifest["unpriced"][0]["region"] == "us"

    def test_billed_in_the_month_the_response_completed(self, stack: Stack) -> None:
        assert post(stack, "/usage/llm-gateway", llm(completed_at=LAST_MOMENT_OF_OCTOBER))[0] == 200
        [row] = stack.items("ledger")
        assert row["month"] == "2026-10"

    def test_a_response_inside_a_streaming_session_names_its_session(self, stack: Stack) -> None:
        body = llm(response_id="b6a3f5d2-turn-3", session_id="b6a3f5d2")
        assert post(stack, "/usage/llm-gateway", body)[1] == "recorded"
        [row] = stack.items("ledger")
        assert (row["session_id"], row["origin"]) == ("b6a3f5d2", "llm_gateway_report")

    @pytest.mark.parametrize(
        "change",
        [
            {"prompt_tokens": -1},
            {"completion_tokens": "85"},
            {"region": "ap"},
            {"response_id": "has space"},
            {"completed_at": "2026-11-20T10:00:00"},
            {"cost": "1.00"},
        ],
    )
    def test_an_unusable_report_is_400(self, stack: Stack, change: dict[str, Any]) -> None:
        assert post(stack, "/usage/llm-gateway", llm(**change))[0] == 400
        assert stack.items("ledger") == []

    def test_unsigned_future_and_oversized_reports_are_refused(self, stack: Stack) -> None:
        wrong = "whsec_bm90LXRoZS1yZXBvcnQta2V5LTAw"  # well-formed, not the report secret
        assert post(stack, "/usage/llm-gateway", llm(), secret=wrong)[0] == 401
        future = llm(completed_at="2099-01-01T00:00:00+00:00")
        assert post(stack, "/usage/llm-gateway", future)[0] == 400
        huge = llm(dimensions={"note": "x" * 100}) | {"padding": "y" * 10_000}
        assert post(stack, "/usage/llm-gateway", huge)[0] == 413
        assert stack.items("ledger") == []

    def test_a_product_report_signed_by_the_official_standard_webhooks_library_is_accepted(
        self, stack: Stack
    ) -> None:
        """``standardwebhooks`` 1.1.0 (the reference Python implementation) signs, not our code."""
        from datetime import UTC, datetime

        from standardwebhooks.webhooks import Webhook

        raw = json.dumps(llm())
        moment = datetime.now(UTC)
        event = report_event("/usage/llm-gateway", raw)
        event["headers"].update(
            {
                "webhook-id": "msg_llm_1",
                "webhook-timestamp": str(int(moment.timestamp())),
                "webhook-signature": Webhook(REPORT_SECRET).sign("msg_llm_1", moment, raw),
            }
        )
        response = stack.invoke("StreamingReportFunction", event)
        assert (response["statusCode"], json.loads(response["body"])["status"]) == (200, "recorded")
        assert len(stack.items("ledger")) == 1

    def test_a_table_outage_is_503_and_the_retry_is_billed_once(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from usage_meter.adapters.usage_ledger import DynamoUsageLedger
        from usage_meter.logic.errors import TransientFailure

        original = DynamoUsageLedger.record

        def unavailable(self: DynamoUsageLedger, record: Any, **_: Any) -> Any:
            raise TransientFailure("throttled")

        monkeypatch.setattr(DynamoUsageLedger, "record", unavailable)
        assert post(stack, "/usage/llm-gateway", llm()) == (503, "unavailable")
        monkeypatch.setattr(DynamoUsageLedger, "record", original)
        assert post(stack, "/usage/llm-gateway", llm()) == (200, "recorded")
        assert len(stack.items("ledger")) == 1


class TestVoiceAgent:
    def test_a_session_is_billed_once_at_4_50_an_hour(self, stack: Stack) -> None:
        """600 s x 4.50 / 3600 = 0.75 (Voice Agent API $4.50/hr of connected time)."""
        assert post(stack, "/usage/voice-agent", voice()) == (200, "recorded")
        assert post(stack, "/usage/voice-agent", voice()) == (200, "duplicate")
        [row], _ = export(stack)
        assert (row["product"], row["billable_seconds"], row["price_per_hour"], row["cost"]) == (
            "voice_agent",
            "600",
            "4.50",
            "0.75",
        )

    def test_another_duration_for_a_billed_session_is_quarantined(self, stack: Stack) -> None:
        assert post(stack, "/usage/voice-agent", voice())[0] == 200
        assert post(stack, "/usage/voice-agent", voice(duration_seconds=601))[0] == 409
        assert [i["reason"] for i in stack.items("quarantine")] == ["report_conflict"]
        [aggregate] = stack.items("aggregate")
        assert aggregate["billable_seconds"] == Decimal(600)

    def test_billed_in_the_month_the_session_ended(self, stack: Stack) -> None:
        assert post(stack, "/usage/voice-agent", voice(ended_at=LAST_MOMENT_OF_OCTOBER))[0] == 200
        assert [r["month"] for r in stack.items("ledger")] == ["2026-10"]


class TestSync:
    def test_requests_are_billed_once_at_0_30_an_hour_with_keyterms_included(
        self, stack: Stack
    ) -> None:
        """2 x 90 s x 0.30 / 3600 = 0.015 -> 0.02 (half-up, once per row)."""
        assert post(stack, "/usage/sync", sync()) == (200, "recorded")
        assert post(stack, "/usage/sync", sync()) == (200, "duplicate")
        assert post(stack, "/usage/sync", sync(session_id="second-request")) == (200, "recorded")
        [row], _ = export(stack)
        assert (row["usage_count"], row["billable_seconds"], row["cost"]) == ("2", "180", "0.02")
        assert row["cost_unrounded"] == "0.015"

    def test_audio_longer_than_the_sync_api_accepts_is_400(self, stack: Stack) -> None:
        assert post(stack, "/usage/sync", sync(audio_duration_ms=121_001))[0] == 400

    def test_other_figures_for_a_request_are_quarantined(self, stack: Stack) -> None:
        assert post(stack, "/usage/sync", sync())[0] == 200
        assert post(stack, "/usage/sync", sync(audio_duration_ms=90001))[0] == 409
        assert len(stack.items("quarantine")) == 1


def test_every_product_side_by_side_in_the_export_and_the_usage_api(
    stack: Stack, token_prices: None
) -> None:
    """One customer, one month: a streaming session, an LLM Gateway response, a Voice Agent
    session and a Sync request; the export checks the ledger unit by unit and the usage API
    shows the same rows."""
    from test_streaming import report_event as streaming_event
    from test_streaming import termination_body

    termination = streaming_event("/streaming/sessions/termination", termination_body())
    assert stack.invoke("StreamingReportFunction", termination)["statusCode"] == 200
    assert (
        post(stack, "/usage/llm-gateway", llm(completed_at=termination_body()["ended_at"]))[0]
        == 200
    )
    assert (
        post(stack, "/usage/voice-agent", voice(ended_at=termination_body()["ended_at"]))[0] == 200
    )
    assert post(stack, "/usage/sync", sync(transcribed_at=termination_body()["ended_at"]))[0] == 200
    month = termination_body()["ended_at"][:7]
    rows, manifest = export(stack, month)
    assert sorted(r["product"] for r in rows) == ["llm_gateway", "streaming", "sync", "voice_agent"]
    api = usage_api(stack, "acme", month)
    assert sorted((r["product"], r["cost"]) for r in api["rows"]) == sorted(
        (r["product"], r["cost"] or None) for r in rows
    )
    assert api["totals"]["output_tokens"] == manifest["totals"]["output_tokens"] == 85
