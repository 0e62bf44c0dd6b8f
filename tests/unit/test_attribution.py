"""attribution_from_query: the customer, project and dimensions in a webhook URL's query string
(the one reading the intake, the processor and reconciliation share)."""

from __future__ import annotations

import re
import string
import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import examples
from usage_meter.models.identifiers import (
    DIMENSION_NAME_PATTERN,
    MAX_DIMENSION_VALUE_LENGTH,
    PROJECT_PATTERN,
    InvalidIdentifier,
    is_customer_id,
)
from usage_meter.models.webhook import (
    DEFAULT_PROJECT,
    MAX_QUERY_LENGTH,
    Attribution,
    attribution_from_query,
)

parse_attribution = attribution_from_query

MAX_DIMENSIONS = 8
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _EveryName(frozenset[str]):
    """An allow-list naming every parameter, so these cases exercise the dimension rules
    themselves (which parameters are dimensions at all: tests/unit/test_forwarding.py)."""

    def __contains__(self, name: object) -> bool:
        return True


EVERY_NAME = _EveryName()


def parse(raw_query: str) -> Attribution:
    return parse_attribution(raw_query, MAX_DIMENSIONS, EVERY_NAME)


# -- valid query strings ----------------------------------------------------------------------


def test_customer_only_gets_the_default_project_and_no_dimensions() -> None:
    attribution = parse("customer_id=acme-corp")

    assert attribution == Attribution(customer_id="acme-corp", project=DEFAULT_PROJECT)
    assert attribution.project == "default"
    assert attribution.dimensions == {}


def test_project_and_dimensions_are_separated_from_the_customer() -> None:
    attribution = parse("plan=pro&project=eu&customer_id=acme-corp&order_id=o-17")

    assert attribution.customer_id == "acme-corp"
    assert attribution.project == "eu"
    assert attribution.dimensions == {"order_id": "o-17", "plan": "pro"}


def test_dimensions_are_sorted_by_name() -> None:
    attribution = parse("customer_id=a&zeta=1&alpha=2&mid=3")

    assert list(attribution.dimensions) == ["alpha", "mid", "zeta"]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        pytest.param("tier=gold+plus", "gold plus", id="plus-is-space"),
        pytest.param("tier=gold%20plus", "gold plus", id="pct20-is-space"),
        pytest.param("tier=a%2Bb", "a+b", id="pct2B-is-plus"),
        pytest.param("tier=%C3%A9t%C3%A9", "été", id="utf8"),
        pytest.param("tier=a%2Fb%23c", "a/b#c", id="slash-and-hash-allowed-in-values"),
        pytest.param("tier=100%25", "100%", id="pct25-is-percent"),
    ],
)
def test_dimension_values_are_percent_decoded(raw: str, value: str) -> None:
    assert parse(f"customer_id=acme&{raw}").dimensions == {"tier": value}


def test_customer_id_is_percent_decoded() -> None:
    assert parse("customer_id=acme%3Aeu%40corp").customer_id == "acme:eu@corp"


@pytest.mark.parametrize(
    "customer_id",
    ["a", "A1", "acme-corp", "acme.corp", "acme_corp", "acme:eu", "ops@acme", "9" * 128],
)
def test_valid_customer_ids(customer_id: str) -> None:
    assert parse(f"customer_id={quote(customer_id)}").customer_id == customer_id


def test_limits_are_inclusive() -> None:
    dims = "&".join(f"d{i}={'v' * MAX_DIMENSION_VALUE_LENGTH}" for i in range(MAX_DIMENSIONS))
    attribution = parse(f"customer_id={'c' * 128}&project={'p' * 64}&{dims}")

    assert len(attribution.dimensions) == MAX_DIMENSIONS


def test_max_dimensions_argument_is_honoured() -> None:
    assert parse_attribution("customer_id=a&plan=pro", 1, EVERY_NAME).dimensions == {"plan": "pro"}
    with pytest.raises(InvalidIdentifier) as raised:
        parse_attribution("customer_id=a&plan=pro", 0, EVERY_NAME)
    assert raised.value.code == "too_many_dimensions"


# -- rejected query strings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param("", "missing_customer_id", id="empty"),
        pytest.param("plan=pro", "missing_customer_id", id="no-customer"),
        pytest.param("customer_id=", "invalid_customer_id", id="customer-empty"),
        pytest.param("customer_id=-x", "invalid_customer_id", id="customer-leading-minus"),
        pytest.param("customer_id=a%2Fb", "invalid_customer_id", id="customer-slash"),
        pytest.param("customer_id=a&customer_id=b", "duplicate_parameter", id="customer-twice"),
        pytest.param("customer_id=a&project=A", "invalid_project", id="project-upper"),
        pytest.param("customer_id=a&1p=1", "invalid_dimension_name", id="dimension-name-digit"),
        pytest.param("customer_id=a&p-q=1", "invalid_dimension_name", id="dimension-name-dash"),
        pytest.param("customer_id=%20acme", "invalid_customer_id", id="customer-leading-space"),
        pytest.param("customer_id=acme%20", "invalid_customer_id", id="customer-trailing-space"),
        pytest.param("customer_id=a%20%20b", "invalid_customer_id", id="customer-double-space"),
        pytest.param("customer_id=a%23b", "invalid_customer_id", id="customer-hash"),
        pytest.param("customer_id=a&p=%00", "invalid_dimension_value", id="dimension-value-nul"),
        pytest.param("customer_id=a%FF", "invalid_query", id="invalid-utf8"),
        pytest.param("customer_id=" + "a" * MAX_QUERY_LENGTH, "query_too_long", id="too-long"),
    ],
)
def test_rule_breaks_name_the_rule(raw: str, code: str) -> None:
    with pytest.raises(InvalidIdentifier) as raised:
        parse(raw)

    assert raised.value.code == code
    assert raised.value.message


# -- what real customers use (issue 9): billed, not merely held ---------------------------------


@pytest.mark.parametrize(
    ("raw", "customer_id", "dimensions"),
    [
        pytest.param("customer_id=m%C3%BCller-gmbh", "müller-gmbh", {}, id="non-ascii"),
        pytest.param("customer_id=mu%CC%88ller-gmbh", "müller-gmbh", {}, id="nfd-is-nfc"),
        pytest.param("customer_id=acme%20corp", "acme corp", {}, id="space-pct20"),
        pytest.param("customer_id=acme+corp", "acme corp", {}, id="space-plus"),
        pytest.param("customer_id=%E6%9D%B1%E4%BA%AC-1", "東京-1", {}, id="cjk"),
        pytest.param(
            "customer_id=acme-corp&moduleId=mod_8f2c",
            "acme-corp",
            {"moduleId": "mod_8f2c"},
            id="camel-case-dimension",
        ),
    ],
)
def test_real_world_attributions_are_valid(
    raw: str, customer_id: str, dimensions: dict[str, str]
) -> None:
    attribution = parse(raw)

    assert (attribution.customer_id, attribution.dimensions) == (customer_id, dimensions)


# -- property: anything in, either a named problem or a safe attribution out --------------------

FORBIDDEN_IN_CUSTOMER_ID = ("#", "/", "\\", "%", "?", "&")

# Text that is likely to look like a query: mixes of query syntax, escapes and arbitrary text.
query_pieces = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["customer_id=", "project=", "&", "=", "+", "%", "%2F", "%5C", "%23", "%00", "%0A",
         "%FF", "%C3%A9", "%E2%80%A8", "..", "#", "/", "\\", "plan=", "acme", "-", "@"]
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "._:@-", max_size=130),
)  # fmt: skip
query_like = st.lists(query_pieces, max_size=12).map("".join)
encoded_customer = st.text(max_size=140).map(lambda s: "customer_id=" + quote(s, safe=""))


@settings(max_examples=examples(500), deadline=None)
@given(raw=st.one_of(st.text(max_size=300), query_like, encoded_customer))
@example(raw="customer_id=acme%0A")
@example(raw="customer_id=acme\n")
@example(raw="customer_id=%E2%80%A8")
@example(raw="customer_id=a" + "b" * 127)
@example(raw="customer_id=%EF%BC%A1")  # fullwidth A
@example(raw="customer_id=\u212a")  # Kelvin sign, case-folds to ASCII "k"
def test_any_text_is_rejected_or_yields_a_safe_attribution(raw: str) -> None:
    try:
        attribution = parse(raw)
    except InvalidIdentifier as problem:
        assert problem.code
        assert problem.message
        return
    customer_id = attribution.customer_id
    assert is_customer_id(customer_id)
    assert 1 <= len(customer_id) <= 128
    assert unicodedata.normalize("NFC", customer_id) == customer_id
    assert customer_id[0].isalnum() and customer_id == customer_id.strip()
    assert not any(c in customer_id for c in FORBIDDEN_IN_CUSTOMER_ID)
    assert not CONTROL.search(customer_id)
    assert re.fullmatch(PROJECT_PATTERN, attribution.project)
    assert len(attribution.dimensions) <= MAX_DIMENSIONS
    for name, value in attribution.dimensions.items():
        assert re.fullmatch(DIMENSION_NAME_PATTERN, name)
        assert 1 <= len(value) <= MAX_DIMENSION_VALUE_LENGTH
        assert not CONTROL.search(value)
    assert list(attribution.dimensions) == sorted(attribution.dimensions)


@settings(max_examples=examples(200), deadline=None)
@given(
    customer_id=st.text(min_size=1, max_size=128)
    .map(lambda s: unicodedata.normalize("NFC", s))
    .filter(is_customer_id),
    dims=st.dictionaries(
        st.from_regex(DIMENSION_NAME_PATTERN, fullmatch=True).filter(
            lambda n: n not in {"customer_id", "project"}
        ),
        st.text(min_size=1, max_size=MAX_DIMENSION_VALUE_LENGTH).filter(
            lambda v: not CONTROL.search(v)
        ),
        max_size=MAX_DIMENSIONS,
    ),
)
def test_valid_attribution_round_trips_through_the_query_string(
    customer_id: str, dims: dict[str, str]
) -> None:
    raw = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}"
        for k, v in [("customer_id", customer_id), *dims.items()]
    )
    if len(raw) > MAX_QUERY_LENGTH:
        return

    attribution = parse(raw)

    assert attribution.customer_id == customer_id
    assert attribution.project == DEFAULT_PROJECT
    assert attribution.dimensions == dict(sorted(dims.items()))


@pytest.mark.parametrize(
    "raw", ["customer_id=acme&", "customer_id=acme&&plan=pro", "&customer_id=acme"]
)
def test_stray_ampersands_are_tolerated(raw: str) -> None:
    # AssemblyAI echoes the webhook URL exactly as submitted: a 4xx here would be permanent.
    assert parse_attribution(raw, 8, EVERY_NAME).customer_id == "acme"
