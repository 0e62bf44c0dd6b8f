"""Property: for any mix of products (async, streaming, Sync API, Voice Agent API, LLM Gateway),
reported any number of times in any order, the ledger, the aggregates and the export agree unit by
unit (count, seconds, input tokens, output tokens) per customer and month, and each equals the
usage reported once. (design.md: exactly once; the export's ledger check.)"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from embedded_aws import EmbeddedAws
from usage_meter.adapters.price_table import load_price_table
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.adapters.usage_reads import DynamoUsageReader
from usage_meter.logic.monthly_export import priced_rows, verify_against_ledger
from usage_meter.logic.product_reports import record_product_usage
from usage_meter.logic.recording import record_once
from usage_meter.models.products import LlmGatewayUsage, SyncUsage, VoiceAgentUsage
from usage_meter.models.usage import UsageRecord, UsageStatus

MOMENTS = [
    "2026-10-31T23:59:59.999+00:00",
    "2026-11-01T00:00:00+00:00",
    "2026-11-15T12:00:00+00:00",
]
Totals = dict[tuple[str, str], tuple[int, Decimal, int, int]]


class NullMetrics:
    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        return None


usage_specs = st.lists(
    st.tuples(
        st.sampled_from(["async", "streaming", "sync", "voice_agent", "llm_gateway"]),
        st.sampled_from(["acme", "globex"]),
        st.integers(0, 7200),  # seconds, or tokens / 10
        st.integers(0, 5000),  # output tokens
        st.sampled_from(["us", "eu", "global"]),
        st.sampled_from(MOMENTS),
    ),
    min_size=1,
    max_size=8,
)


def _report(n: int, spec: tuple[str, str, int, int, str, str]) -> Any:
    product, customer, amount, out, region, moment = spec
    when = datetime.fromisoformat(moment)
    if product == "llm_gateway":
        return LlmGatewayUsage(
            response_id=f"r{n}",
            customer_id=customer,
            model="claude-sonnet-4-6",
            region=region,  # type: ignore[arg-type]
            prompt_tokens=amount * 10,
            completion_tokens=out,
            completed_at=when,
        )
    if product == "voice_agent":
        return VoiceAgentUsage(
            session_id=f"v{n}", customer_id=customer, duration_seconds=amount, ended_at=when
        )
    if product == "sync":
        return SyncUsage(
            session_id=f"s{n}",
            customer_id=customer,
            model="universal-3-5-pro",
            audio_duration_ms=min(amount * 17, 120_000),
            transcribed_at=when,
        )
    return UsageRecord(  # async and streaming rows as their own flows build them
        source_id=f"{product[0]}{n}",
        product=product,  # type: ignore[arg-type]
        status=UsageStatus.BILLABLE,
        customer_id=customer,
        project="default",
        month=moment[:7],
        billable_seconds=Decimal(amount) / 10,
        model="universal-2" if product == "async" else "u3-rt-pro",
        occurred_at=when,
    )


def _record(ledger: DynamoUsageLedger, item: Any) -> None:
    if isinstance(item, UsageRecord):
        record_once(ledger, item)
    else:
        record_product_usage(item, ledger, NullMetrics())


def _expected(items: list[Any]) -> Totals:
    totals: Totals = defaultdict(lambda: (0, Decimal(0), 0, 0))
    for item in items:
        record = item if isinstance(item, UsageRecord) else item.to_record()
        count, seconds, tokens_in, tokens_out = totals[(record.customer_id, record.month)]
        totals[(record.customer_id, record.month)] = (
            count + 1,
            seconds + record.billable_seconds,
            tokens_in + record.input_tokens,
            tokens_out + record.output_tokens,
        )
    return dict(totals)


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=usage_specs, data=st.data())
def test_ledger_equals_aggregates_equals_export_for_any_mix_of_products(
    embedded_aws: EmbeddedAws,
    specs: list[tuple[str, str, int, int, str, str]],
    data: st.DataObject,
) -> None:
    once = [_report(n, spec) for n, spec in enumerate(specs)]
    copies = data.draw(st.lists(st.integers(1, 3), min_size=len(once), max_size=len(once)))
    noisy = data.draw(
        st.permutations([m for m, c in zip(once, copies, strict=True) for _ in range(c)])
    )
    prices = load_price_table("usage_meter/config/prices.json")

    client, table = embedded_aws.client("dynamodb"), embedded_aws.fresh().tables["UsageTable"]
    ledger, reader = DynamoUsageLedger(client, table), DynamoUsageReader(client, table)
    for item in noisy:
        _record(ledger, item)

    expected = _expected(once)
    for month in sorted({m for _, m in expected}):
        aggregates = reader.month_aggregates(month)
        verify_against_ledger(month, aggregates, reader)  # raises on any unit's mismatch
        rows = priced_rows(aggregates, prices.for_month(month))
        for customer in sorted({c for c, m in expected if m == month}):
            mine = [r for r in rows if r.customer_id == customer]
            in_ledger = reader.month_ledger_totals(month)[customer]
            from_rows = (
                sum(r.usage_count for r in mine),
                sum((r.billable_seconds for r in mine), Decimal(0)),
                sum(r.input_tokens for r in mine),
                sum(r.output_tokens for r in mine),
            )
            ledger_totals = (
                in_ledger.usage_count,
                in_ledger.billable_seconds,
                in_ledger.input_tokens,
                in_ledger.output_tokens,
            )
            assert from_rows == ledger_totals == expected[(customer, month)]
        # every priced row's cost is its own quantities at its own prices; none is guessed
        for row in rows:
            assert (row.cost is None) == bool(row.unpriced)
            if row.product == "llm_gateway":
                assert row.cost is None and row.price_per_million_input_tokens is None
