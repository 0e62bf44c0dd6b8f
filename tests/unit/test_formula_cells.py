"""Exports keep escaping formula-like cells, including ones led by whitespace or a line break
(issue 9: widened identifiers must not open a CSV-injection hole). OWASP, "CSV Injection": cells
starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return are interpreted by spreadsheets;
leading spaces and line feeds are skipped by some of them before that check."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from usage_meter.logic.billing_files import guard_formula, render_csv
from usage_meter.logic.pricing import price_aggregate
from usage_meter.models.billing import UsageAggregate


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "\n=1", " =1+1", "  @x", "\n\n+1", "\tplain"],
)
def test_formula_like_values_are_made_inert(value: str) -> None:
    assert guard_formula(value) == "'" + value


@pytest.mark.parametrize("value", ["acme corp", "müller-gmbh", "a=b", "1-2", "", " plain"])
def test_ordinary_values_are_left_alone(value: str) -> None:
    assert guard_formula(value) == value


def test_a_whitespace_led_formula_model_is_escaped_in_the_csv() -> None:
    aggregate = UsageAggregate(
        customer_id="acme corp",
        month="2026-11",
        product="async",
        project="default",
        model=" =HYPERLINK(1)",
        usage_count=1,
        billable_seconds=Decimal(1),
    )
    row = price_aggregate(aggregate, None)
    [header, cells] = list(csv.reader(io.StringIO(render_csv([row]).decode())))
    assert cells[header.index("customer_id")] == "acme corp"
    assert cells[header.index("model")] == "' =HYPERLINK(1)"
