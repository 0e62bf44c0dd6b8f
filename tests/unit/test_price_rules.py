"""The price table says what AssemblyAI says; every billable transcript field is recognised.

Sources (cited per test): AssemblyAI API spec (AssemblyAI/assemblyai-api-spec, openapi.yml
``Transcript``, vendored trimmed in tests/events/spec/assemblyai_transcript_fields.json), the docs
pages named in ``config/prices.json``, and the ``assemblyai`` SDK 1.8.2.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from usage_meter.adapters.price_table import load_price_table
from usage_meter.logic.pricing import price_aggregate
from usage_meter.models.billing import PriceTable, UsageAggregate
from usage_meter.models.streaming import SessionBegin
from usage_meter.models.transcript import TranscriptFacts
from usage_meter.models.transcript_features import ADD_ON_FIELDS, NOT_ADD_ONS, transcript_add_ons
from usage_meter.models.usage import canonical_decimal
from usage_meter_client import streaming_add_ons

SPEC = json.loads(
    (Path(__file__).parents[1] / "events/spec/assemblyai_transcript_fields.json").read_text()
)
SHIPPED = load_price_table("usage_meter/config/prices.json")
NOVEMBER = SHIPPED.for_month("2026-11")


def aggregate(model: str, seconds: str, *add_ons: str, product: str = "async") -> UsageAggregate:
    return UsageAggregate(
        customer_id="acme",
        month="2026-11",
        product=product,  # type: ignore[arg-type]
        project="default",
        model=model,
        usage_count=1,
        billable_seconds=Decimal(seconds),
        addon_seconds=dict.fromkeys(add_ons, Decimal(seconds)),
    )


# -- the price table's shape ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "cost", "rate"),
    [("universal-2", "0.15", "0"), ("universal-3-pro", "0.26", "0.05")],
)
def test_an_add_on_price_can_depend_on_the_model(model: str, cost: str, rate: str) -> None:
    """Keyterms prompting: free on Universal-2 ("currently available at no additional cost",
    docs pre-recorded-audio/keyterms-prompting), paid on Universal-3 Pro (pricing page snapshot,
    shared/reference/assemblyai-api-facts.md)."""
    row = price_aggregate(aggregate(model, "3600", "keyterms_prompt"), NOVEMBER)
    assert (row.cost, row.add_on_prices, row.unpriced) == (
        Decimal(cost),
        f"keyterms_prompt={rate}",
        "",
    )


def test_an_add_on_can_be_included_in_the_models_price() -> None:
    """Prompting is a Universal-3 Pro capability with no add-on price of its own (docs
    Universal-3 Pro, "Key capabilities"): included there; on a model without it, unpriced."""
    included = price_aggregate(aggregate("universal-3-pro", "3600", "prompt"), NOVEMBER)
    assert (included.cost, included.add_on_prices) == (Decimal("0.21"), "prompt=0")
    elsewhere = price_aggregate(aggregate("universal-2", "3600", "prompt"), NOVEMBER)
    assert elsewhere.cost is None
    assert elsewhere.unpriced.startswith("no price for add-on prompt on universal-2: ")


def test_an_add_on_unknown_to_the_table_makes_the_row_unpriced() -> None:
    """Never silently priced at the model rate alone."""
    row = price_aggregate(aggregate("universal-2", "3600", "brand_new_feature"), NOVEMBER)
    assert (row.cost, row.cost_unrounded) == (None, None)
    assert row.unpriced == "no price for add-on brand_new_feature"


def test_schema_1_tables_still_load_and_price_the_same() -> None:
    """Plain decimal strings (the first shape) are still read: an operator's own table keeps
    working."""
    table = PriceTable.model_validate(
        {
            "schema_version": 1,
            "versions": [
                {
                    "version": "v1",
                    "effective_from": "2026-01-01",
                    "currency": "USD",
                    "async": {"models": {"m": "0.10"}, "add_ons": {"a": "0.02"}},
                    "streaming": {"models": {}},
                }
            ],
        }
    )
    row = price_aggregate(aggregate("m", "3600", "a"), table.for_month("2026-11"))
    assert row.cost == Decimal("0.12")


def test_the_shipped_table_is_dated_and_every_price_is_sourced() -> None:
    """Each version is dated (effective_from) and lists its sources; in the current version
    every model and add-on names its source, or says why it has no price."""
    assert all(v.sources for v in SHIPPED.versions)
    assert NOVEMBER is not None and NOVEMBER.effective_from == date(2026, 11, 1)
    for product in ("async", "streaming"):
        prices = NOVEMBER.prices(product)  # type: ignore[arg-type]
        for name in prices.models:
            model = prices.model_price(name)
            assert model is not None and model.source, name
        for name, add_on in prices.add_ons.items():
            assert not isinstance(add_on, Decimal), name
            assert add_on.source or add_on.unpriced_reason, name
            assert add_on.per_hour is not None or add_on.unpriced_reason, name


def test_the_published_version_is_kept_for_the_months_it_priced() -> None:
    """Versions are never edited: October still uses 2026-11-01 (keyterms at 0.05 everywhere)."""
    october = SHIPPED.for_month("2026-10")
    assert october is not None and october.version == "2026-11-01"
    row = price_aggregate(aggregate("universal-2", "3600", "keyterms_prompt"), october)
    assert row.cost == Decimal("0.20")


# -- rounding and the canonical decimal form ---------------------------------------------------


def test_cost_is_rounded_per_row_and_the_exact_amount_is_kept() -> None:
    """600 s x 0.15 / 3600 = 0.025 -> 0.03 (half-up, once, at the row); exact 0.025 kept."""
    row = price_aggregate(aggregate("universal-2", "600"), NOVEMBER)
    assert (row.cost, row.cost_unrounded) == (Decimal("0.03"), Decimal("0.025"))


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("625.0", "625"), ("1293.250", "1293.25"), ("1E+3", "1000"), ("0.000", "0"), ("604", "604")],
)
def test_one_canonical_decimal_form_for_seconds_and_amounts(value: str, canonical: str) -> None:
    assert f"{canonical_decimal(Decimal(value)):f}" == canonical


def test_seconds_are_canonical_in_rows_and_add_on_columns() -> None:
    """A 312.5 s two-channel file is 625 s, not ``625.0``, in the seconds and add-on columns."""
    facts = TranscriptFacts.from_api(
        {
            "id": "t",
            "status": "completed",
            "audio_duration": 312.5,
            "multichannel": True,
            "audio_channels": 2,
            "speaker_labels": True,
        }
    )
    assert f"{facts.billable_seconds:f}" == "625.0"  # what AssemblyAI's numbers multiply to
    row = price_aggregate(
        aggregate("universal-2", f"{facts.billable_seconds:f}", "speaker_labels"), NOVEMBER
    )
    assert (f"{row.billable_seconds:f}", row.add_on_seconds) == ("625", "speaker_labels=625")


# -- every billable transcript field is recognised ---------------------------------------------


def test_every_transcript_field_of_the_spec_is_classified() -> None:
    """Walks the API spec's ``Transcript`` fields (vendored, dated, with its source): a field in
    neither ADD_ON_FIELDS nor NOT_ADD_ONS fails here, so a new billable option is decided on,
    not silently unbilled."""
    fields = set(SPEC["fields"]) | set(SPEC["extra_fields"])
    unclassified = sorted(fields - ADD_ON_FIELDS - NOT_ADD_ONS.keys())
    assert unclassified == [], f"classify these transcript fields: {unclassified}"
    assert not ADD_ON_FIELDS & NOT_ADD_ONS.keys()


SAMPLES: dict[str, Any] = {
    "domain": "medical-v1",
    "keyterms_prompt": ["AcmeCloud"],
    "prompt": "A support call.",
    "speech_understanding": {
        "request": {"translation": {"target_languages": ["es"]}},
        "response": {"translation": {"status": "success"}},
    },
}


@pytest.mark.parametrize("field", sorted(ADD_ON_FIELDS))
def test_each_billable_field_records_an_add_on_the_table_knows(field: str) -> None:
    """Set on a transcript, each billable field records an add-on, and that add-on is in the
    shipped price table (priced, or explicitly unpriced with the reason)."""
    [add_on] = transcript_add_ons({field: SAMPLES.get(field, True)})
    assert add_on.split(":")[0] == field
    assert add_on in NOVEMBER.async_.add_ons if NOVEMBER else False


@pytest.mark.parametrize("task", SPEC["speech_understanding"]["response_tasks"])
def test_each_completed_speech_understanding_task_is_an_add_on(task: str) -> None:
    """Speech Understanding arrives as an object (spec ``speech_understanding.request`` /
    ``.response``; docs show ``"status": "success"``): each completed task is one add-on."""
    payload = {
        "speech_understanding": {
            "request": {task: {}},
            "response": {task: {"status": "success"}},
        }
    }
    assert transcript_add_ons(payload) == (f"speech_understanding:{task}",)
    row = price_aggregate(
        aggregate("universal-3-pro", "60", f"speech_understanding:{task}"), NOVEMBER
    )
    assert row.cost is None and "no per-task price" in row.unpriced


@pytest.mark.parametrize(
    "response",
    [None, {}, {"translation": {"status": "error"}}, {"translation": "success"}, "success"],
)
def test_a_task_that_did_not_complete_is_not_billed(response: Any) -> None:
    """Docs "Billing and Pricing": "If a request errors, you aren't charged for it"."""
    payload = {
        "speech_understanding": {
            "request": {"translation": {"target_languages": ["es"]}},
            "response": response,
        }
    }
    assert transcript_add_ons(payload) == ()


def test_a_boolean_speech_understanding_is_not_mistaken_for_a_task() -> None:
    assert transcript_add_ons({"speech_understanding": True}) == ()


# -- streaming add-ons and session caps --------------------------------------------------------


def test_the_helper_reads_add_ons_from_the_sdks_streaming_parameters() -> None:
    """SDK 1.8.2 ``StreamingParameters``: keyterms_prompt (docs: $0.04/hour), speaker_labels
    (streaming diarization); options that are not add-ons are ignored."""
    from assemblyai.streaming.v3 import StreamingParameters

    params = StreamingParameters(
        sample_rate=16000,
        keyterms_prompt=["AcmeCloud"],
        speaker_labels=True,
        format_turns=True,
    )
    assert streaming_add_ons(params) == ("keyterms_prompt", "speaker_labels")
    assert streaming_add_ons(StreamingParameters(sample_rate=16000, keyterms_prompt=[])) == ()
    assert streaming_add_ons({"speaker_labels": True}) == ("speaker_labels",)
    assert streaming_add_ons(None) == ()


BEGAN = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)


def _begin(**fields: Any) -> SessionBegin:
    return SessionBegin.model_validate(
        {"session_id": "s-1", "customer_id": "acme", "model": "u3-rt-pro", "began_at": BEGAN}
        | fields
    )


@pytest.mark.parametrize(
    ("fields", "bound"),
    [
        ({}, 10800),
        ({"max_session_duration_seconds": 600}, 600),
        ({"expires_at": BEGAN + timedelta(seconds=600)}, 600),
        ({"expires_at": BEGAN + timedelta(hours=5)}, 10800),
        ({"expires_at": BEGAN + timedelta(seconds=5)}, 60),  # clock skew: never under 60 s
        ({"max_session_duration_seconds": 900, "expires_at": BEGAN + timedelta(seconds=600)}, 600),
    ],
)
def test_a_sessions_bound_is_its_cap(fields: dict[str, Any], bound: int) -> None:
    """Spec ``GET /v3/token`` ``max_session_duration_seconds`` (60..10800) and the Begin's
    ``expires_at`` bound what AssemblyAI can bill; 3 hours otherwise (docs, Billing)."""
    assert _begin(**fields).bound_seconds() == bound


@pytest.mark.parametrize("cap", [59, 10801, 0])
def test_a_cap_outside_the_tokens_range_is_refused(cap: int) -> None:
    with pytest.raises(ValidationError):
        _begin(max_session_duration_seconds=cap)


@pytest.mark.parametrize("name", ["Keyterms", "a b", "x" * 41, "domain:", ":x"])
def test_add_on_names_are_checked(name: str) -> None:
    with pytest.raises(ValidationError):
        _begin(add_ons=[name])
