"""template.yaml's parameters and environment values against the code's one definition of each
rule (issue 10, "one rule in one place").

Every environment variable a function's settings model reads is set by the template either as a
literal or from a parameter. A literal must parse to the field's default (so the template never
holds a second value of a default). A parameter's ``Default`` must parse to the field's default,
and its ``MinValue``/``MaxValue``, ``AllowedValues`` and ``AllowedPattern`` must be exactly the
field parser's range, choices or pattern (``IntRange``, ``OneOf``, ``Matching`` in settings.py), so
changing a limit on one side without the other fails here.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

import pytest

from usage_meter import settings as settings_module
from usage_meter.models.identifiers import (
    BILLING_DIMENSIONS_PATTERN,
    DIMENSION_NAME_PATTERN,
    MAX_DIMENSIONS,
)
from usage_meter.models.rules import ORPHAN_LOOKBACK_DAYS, SESSION_LIMIT_SECONDS, OrphanPolicy
from usage_meter.settings import IntRange, Matching, OneOf
from usage_meter_local.template import Tag, function_handlers, load_template, resources_of

TEMPLATE = load_template()
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
FUNCTIONS = resources_of(TEMPLATE, "AWS::Serverless::Function")
CONSTRAINTS = ("MinValue", "MaxValue", "AllowedValues", "AllowedPattern")

# Parameters whose template constraint is deliberately not the code's, with the reason.
TEMPLATE_ONLY = {
    # The code takes http:// too: the local stack's stand-in application is plain HTTP.
    ("ForwardUrl", "AllowedPattern"),
}


def _env(logical_id: str) -> dict[str, Any]:
    globals_env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    own = (FUNCTIONS[logical_id].get("Environment") or {}).get("Variables") or {}
    return {**globals_env, **own}


def _parameters_in(value: Any) -> list[str]:
    """The template parameters a value is taken from (``!Ref P``, or inside ``!If``/``!Sub``)."""
    if isinstance(value, Tag):
        if value.name == "Ref":
            return [value.value] if value.value in PARAMETERS else []
        return _parameters_in(value.value)
    if isinstance(value, list):
        return [name for item in value for name in _parameters_in(item)]
    return []


def _as_deployed_by_default(value: Any) -> Any:
    """A ``!If [Condition, a, b]`` whose condition is ``!Equals [!Ref P, x]`` resolved with the
    parameters' defaults (what a stack deployed with no overrides sets); anything else as is."""
    if not (isinstance(value, Tag) and value.name == "If"):
        return value
    condition_name, if_true, if_false = value.value
    condition = TEMPLATE["Conditions"][condition_name]
    if not (isinstance(condition, Tag) and condition.name == "Equals"):
        return value
    left, right = condition.value
    if not (isinstance(left, Tag) and left.name == "Ref" and left.value in PARAMETERS):
        return value
    chosen = if_true if str(PARAMETERS[left.value]["Default"]) == str(right) else if_false
    return _as_deployed_by_default(chosen)


def _default(field: Field[Any]) -> Any:
    if field.default is not MISSING:
        return field.default
    return MISSING


def _settings_fields(logical_id: str) -> list[tuple[Field[Any], Any]]:
    """(settings field, the template's value for its variable) of one function. Imported in the
    test, not at collection: a handler module reads its Powertools environment on import."""
    handler = function_handlers(TEMPLATE)[logical_id]
    model = importlib.import_module(handler.rpartition(".")[0]).SETTINGS
    env = _env(logical_id)
    return [(f, env[f.metadata["env"]]) for f in fields(model) if f.metadata["env"] in env]


def _all_fields() -> list[tuple[str, Field[Any], Any]]:
    return [(lid, f, value) for lid in sorted(FUNCTIONS) for f, value in _settings_fields(lid)]


def _code_constraints(parse: Any) -> dict[str, Any]:
    if isinstance(parse, IntRange):
        return {"MinValue": parse.minimum, "MaxValue": parse.maximum}
    if isinstance(parse, OneOf):
        return {"AllowedValues": list(parse.values)}
    if isinstance(parse, Matching):
        return {"AllowedPattern": parse.pattern}
    return {}


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_a_literal_in_the_template_is_the_codes_default(logical_id: str) -> None:
    """Also a switch set through a condition on a parameter (``ALLOWANCES: !If [AllowancesEnabled,
    "on", "off"]``): with the parameters' defaults it must equal the code's default."""
    for field, template_value in _settings_fields(logical_id):
        value = _as_deployed_by_default(template_value)
        if not isinstance(value, str):
            continue
        parsed = field.metadata["parse"](value)
        default = _default(field)
        if default is not MISSING:
            assert parsed == default, (field.metadata["env"], value, default)


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_a_parameter_has_the_codes_default_and_rule(logical_id: str) -> None:
    for field, value in _settings_fields(logical_id):
        parse = field.metadata["parse"]
        default = _default(field)
        for name in _parameters_in(value):
            parameter = PARAMETERS[name]
            if default is not MISSING:
                assert parse(str(parameter["Default"])) == default, name
            template = {k: parameter[k] for k in CONSTRAINTS if k in parameter}
            code = _code_constraints(parse)
            for key in set(template) | set(code):
                if (name, key) in TEMPLATE_ONLY:
                    continue
                assert template.get(key) == code.get(key), (name, key)


def test_the_rules_cover_the_constrained_parameters_the_code_reads() -> None:
    """The check above is not vacuous: these parameters reach a settings field with a rule."""
    checked = {
        name
        for _, field, value in _all_fields()
        if _code_constraints(field.metadata["parse"])
        for name in _parameters_in(value)
    }
    assert checked >= {
        "AssemblyAIRequestShare",
        "MaxReceiveCount",
        "ForwardMaxAttempts",
        "ReconcileHorizonDays",
        "OrphanPolicy",
        "StripeValueUnit",
        "StripeMeterEventName",
        "BillingDimensions",
        "WebhookAuthHeaderName",
        "EventBusName",
    }


def test_each_rule_refuses_what_the_template_refuses() -> None:
    rules = {f.metadata["parse"] for _, f, _ in _all_fields()}
    for rule in (r for r in rules if _code_constraints(r)):
        _refuses_outside(rule)


def _refuses_outside(rule: Any) -> None:
    if isinstance(rule, IntRange):
        assert rule(str(rule.minimum)) == rule.minimum and rule(str(rule.maximum)) == rule.maximum
        for outside in (rule.minimum - 1, rule.maximum + 1):
            with pytest.raises(ValueError, match=f"between {rule.minimum} and {rule.maximum}"):
                rule(str(outside))
    elif isinstance(rule, OneOf):
        assert [rule(v) for v in rule.values] == list(rule.values)
        with pytest.raises(ValueError, match="must be one of"):
            rule(rule.values[0].upper() + "x")
    else:
        with pytest.raises(ValueError, match="must match"):
            rule("not allowed ?")


def test_queue_receive_counts_are_the_parameters_the_code_reads() -> None:
    """The queues dead-letter after the same count the processor and forwarder read."""
    resources = TEMPLATE["Resources"]
    receives = {
        name: props["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        for name, props in resources.items()
        if props["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in props.get("Properties", {})
    }
    assert receives["UsageQueue"] == Tag("Ref", "MaxReceiveCount")
    assert receives["ForwardQueue"] == Tag("Ref", "ForwardMaxAttempts")


def test_billing_dimension_names_are_the_identifier_rule() -> None:
    assert PARAMETERS["BillingDimensions"]["AllowedPattern"] == BILLING_DIMENSIONS_PATTERN
    name = DIMENSION_NAME_PATTERN[1:-1]
    assert f"^({name}(,{name})*)?$" == BILLING_DIMENSIONS_PATTERN
    assert re.fullmatch(BILLING_DIMENSIONS_PATTERN, "plan,moduleId")
    assert not re.fullmatch(BILLING_DIMENSIONS_PATTERN, "plan, team")
    with pytest.raises(ValueError, match="reserved"):
        settings_module.IntakeSettings.from_environ(
            {
                "USAGE_QUEUE_URL": "q",
                "WEBHOOK_SECRET_ID": "s",
                "EVENT_BUS_NAME": "b",
                "BILLING_DIMENSIONS": "plan,customer_id",
            }
        )


def test_orphan_rules_are_the_templates() -> None:
    """Sources: docs "Billing and Pricing" (a session never closed is closed and billed at 3 h);
    spec ``GET /v3/token`` ``max_session_duration_seconds`` 60..10800."""
    orphans = _env("OrphanSessionsFunction")
    assert "STREAMING_SESSION_LIMIT_SECONDS" not in orphans  # AssemblyAI's fact, not a setting
    assert int(orphans["ORPHAN_LOOKBACK_DAYS"]) == ORPHAN_LOOKBACK_DAYS
    assert PARAMETERS["OrphanPolicy"]["AllowedValues"] == [p.value for p in OrphanPolicy]
    assert SESSION_LIMIT_SECONDS == 3 * 3600
    assert "3 hours" in PARAMETERS["OrphanPolicy"]["Description"]


def test_one_dimension_count_for_every_entry_point() -> None:
    from usage_meter.models import products, streaming, webhook
    from usage_meter.models.usage import AttributedReport

    assert "WEBHOOK_MAX_DIMENSIONS" not in _env("WebhookIntakeFunction")
    assert webhook.WEBHOOK_MAX_DIMENSIONS == MAX_DIMENSIONS
    assert issubclass(streaming.SessionBegin, AttributedReport)
    assert issubclass(products.LlmGatewayUsage, AttributedReport)
    too_many = {f"d{i}": "v" for i in range(MAX_DIMENSIONS + 1)}
    with pytest.raises(ValueError, match=f"at most {MAX_DIMENSIONS}"):
        webhook.Attribution("acme", "default", too_many)
    with pytest.raises(ValueError, match=f"at most {MAX_DIMENSIONS}"):
        AttributedReport(customer_id="acme", dimensions=too_many)


def test_the_month_format_has_one_definition() -> None:
    """Every billing month (ledger rows, aggregates, audit partitions, the usage API, allowances,
    the local stack) comes from ``models.months.usage_month``/``current_month``."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for folder in ("functions", "infra")
        for path in (root / folder).rglob("*.py")
        if path.name != "months.py" and re.search(r"%Y-%m(?!-)", path.read_text())
    ]
    assert offenders == []


def test_the_webhook_auth_header_default_is_one_name() -> None:
    """The header AssemblyAI sends the webhook secret in (``webhook_auth_header_name``): the
    template's default, the intake's default and the application helper's default."""
    from usage_meter_client import client

    name = settings_module.DEFAULT_WEBHOOK_AUTH_HEADER_NAME
    assert PARAMETERS["WebhookAuthHeaderName"]["Default"] == name
    assert name == client.DEFAULT_AUTH_HEADER_NAME
