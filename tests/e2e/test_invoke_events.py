"""Every file in events/ still works: the Docker-free ``invoke`` (the equivalent of ``sam local
invoke -e``) runs it against the local stack, and events/env.json fits template.yaml."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_stack_process import ROOT, run_local_stack

from usage_meter_local.template import (
    Tag,
    http_routes,
    load_template,
    resources_of,
    sqs_subscriptions,
)

EVENTS = ROOT / "events"
TEMPLATE = load_template()
FUNCTIONS = resources_of(TEMPLATE, "AWS::Serverless::Function")
EVENT_FILES = sorted(p.name for p in EVENTS.glob("*.json") if p.name != "env.json")


def _http(status_code: int, **expected: str) -> Callable[[Any, str], None]:
    def check(result: Any, logs: str) -> None:
        assert result["statusCode"] == status_code, result
        body = json.loads(result["body"])
        assert {k: body.get(k) for k in expected} == expected, body

    return check


def _all_recorded(count: int) -> Callable[[Any, str], None]:
    def check(result: Any, logs: str) -> None:
        assert result == {"batchItemFailures": []}
        outcomes = [
            line.get("outcomes")
            for line in map(_json_or_none, logs.splitlines())
            if line and line.get("message") == "usage batch handled"
        ]
        assert outcomes == [{"recorded": count}], logs

    return check


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _fields(**expected: Any) -> Callable[[Any, str], None]:
    def check(result: Any, logs: str) -> None:
        assert {k: result.get(k) for k in expected} == expected, result

    return check


def _forwarded(count: int) -> Callable[[Any, str], None]:
    def check(result: Any, logs: str) -> None:
        # The local application endpoint verified the signature (it answers 401 otherwise).
        assert result == {"batchItemFailures": []}
        statuses = [
            line.get("status")
            for line in map(_json_or_none, logs.splitlines())
            if line and line.get("message") == "notification forwarded"
        ]
        assert statuses == [200] * count, logs

    return check


def _reconciled(result: Any, logs: str) -> None:
    # The stand-in lists the default project's five fixture transcripts (its key sees only
    # those); none has a ledger row on a fresh stack, so all five are recovered.
    (report,) = result["reports"]
    assert report["project"] == "default"
    assert report["complete"] is True
    assert (report["checked"], report["recovered"], report["failed"]) == (5, 5, 0)


def _stripe_refused_unmapped(result: Any, logs: str) -> None:
    # The local stack maps no Stripe customer: the row waits in the Stripe DLQ with its reason.
    assert result == {"batchItemFailures": []}
    refusals = [
        line.get("reason")
        for line in map(_json_or_none, logs.splitlines())
        if line and line.get("message") == "stripe sink refused"
    ]
    assert refusals == ["stripe_customer_unmapped"], logs


# What each event file must lead to. A new file in events/ needs an entry here.
EXPECTED: dict[str, Callable[[Any, str], None]] = {
    "webhook_completed.json": _http(200, status="accepted"),
    "webhook_error.json": _http(200, status="accepted"),
    "webhook_redacted_audio.json": _http(200, status="ignored"),
    "webhook_bad_auth.json": _http(401, error="unauthorized"),
    "usage_sqs_batch.json": _all_recorded(4),
    "streaming_begin.json": _http(200, status="recorded"),
    "streaming_termination.json": _http(200, status="recorded"),
    "usage_llm_gateway.json": _http(200, status="recorded", source_id="chatcmpl-7f3a"),
    "usage_voice_agent.json": _http(200, status="recorded", source_id="sess_9a648a2ab75747a9"),
    "usage_sync.json": _http(
        200, status="recorded", source_id="0d6c2b1e-5f4a-4b3c-9d8e-7f6a5b4c3d2e"
    ),
    "usage_query.json": _http(200, customer_id="acme-corp", month="2026-11"),
    "monthly_export.json": _fields(month="2026-11", status="published", row_count=0),
    "orphan_sessions.json": _fields(found=0),
    "reconciliation.json": _reconciled,
    "stripe_sink.json": _stripe_refused_unmapped,
    "notification_forwarder_sqs_batch.json": _forwarded(1),
    "entitlement.json": _http(
        200, customer_id="acme-corp", product="async", reason="no limit applies"
    ),
    "allowance_set.json": _http(200, customer_id="acme-corp"),
}


def _snake(logical_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id.removesuffix("Function")).lower()


def _function_for(name: str, event: dict[str, Any]) -> str:
    """The function an event is for: its HTTP route or SQS subscription in the template, else
    the file name (monthly_export*.json is for MonthlyExportFunction)."""
    if "routeKey" in event:
        method, path = event["routeKey"].split(" ", 1)
        return http_routes(TEMPLATE)[(method, path)]
    if "Records" in event:
        assert {r.get("eventSource") for r in event["Records"]} == {"aws:sqs"}
        (queue,) = {r["eventSourceARN"].rsplit("-", 1)[-1] for r in event["Records"]}
        (function,) = [
            f
            for f, props in sqs_subscriptions(TEMPLATE).items()
            if props["QueueLogicalId"] == queue
        ]
        return function
    (function,) = [f for f in FUNCTIONS if name.startswith(_snake(f))]
    return function


@pytest.mark.slow
@pytest.mark.parametrize("name", EVENT_FILES)
def test_invoking_each_event_gives_a_sensible_result(name: str, tmp_path: Path) -> None:
    assert name in EXPECTED, f"add what events/{name} must lead to in EXPECTED"
    event_path = EVENTS / name
    function = _function_for(name, json.loads(event_path.read_text()))

    result = run_local_stack("invoke", function, str(event_path), f"--log-dir={tmp_path}")

    assert result.returncode == 0, result.stderr
    assert "fresh local stack" in result.stderr  # says what it runs against
    log = tmp_path / f"{function}.log"  # --log-dir is honoured (it was once ignored)
    assert log.is_file(), result.stderr
    EXPECTED[name](json.loads(result.stdout), log.read_text())


@pytest.mark.slow
def test_invoke_reports_a_function_the_template_does_not_have() -> None:
    result = run_local_stack("invoke", "NoSuchFunction", str(EVENTS / EVENT_FILES[0]))

    assert result.returncode == 2
    assert "no function 'NoSuchFunction'" in result.stderr


def test_every_expectation_has_its_event_file() -> None:
    assert sorted(EXPECTED) == EVENT_FILES


def test_every_function_has_an_event() -> None:
    covered = {_function_for(n, json.loads((EVENTS / n).read_text())) for n in EVENT_FILES}
    assert sorted(covered) == sorted(FUNCTIONS)


def test_every_product_usage_route_has_an_event() -> None:
    # README: "events/ has an event for each function" - and for each product's report route.
    posted = {json.loads((EVENTS / n).read_text()).get("routeKey") for n in EVENT_FILES}
    product_routes = {
        f"POST {path}" for _, path in http_routes(TEMPLATE) if path.startswith("/usage/")
    }
    assert len(product_routes) == 3 and product_routes <= posted


def _resources_named(value: Any) -> set[str]:
    """The template resources a value refers to (!Ref, !GetAtt, ${...} in !Sub, nested)."""
    if isinstance(value, Tag):
        if value.name == "Ref":
            return {str(value.value)}
        if value.name == "GetAtt":
            return {str(value.value).split(".")[0]}
        if value.name == "Sub":
            text = value.value if isinstance(value.value, str) else value.value[0]
            return {m.split(".")[0] for m in re.findall(r"\$\{([^}]+)\}", text)}
        return _resources_named(value.value)
    if isinstance(value, list):
        return set().union(*map(_resources_named, value))
    return set()


def _declared_variables(logical_id: str) -> dict[str, Any]:
    variables = dict(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    own = (FUNCTIONS[logical_id].get("Environment") or {}).get("Variables") or {}
    return {**variables, **own}


def test_env_json_fits_the_template() -> None:
    # sam local invoke --env-vars only sets variables the template declares for the function,
    # and the ones the template fills from deployed resources (!Ref, !GetAtt) need a value there.
    env = json.loads((EVENTS / "env.json").read_text())
    assert sorted(env) == sorted(FUNCTIONS)
    resources = set(TEMPLATE["Resources"])
    for logical_id, variables in env.items():
        declared = _declared_variables(logical_id)
        assert set(variables) <= set(declared), logical_id
        from_resources = {
            name for name, value in declared.items() if _resources_named(value) & resources
        }
        assert from_resources <= set(variables), (logical_id, from_resources - set(variables))
        assert all(isinstance(v, str) for v in variables.values())
