"""docs/openapi.json is generated from the functions' Powertools routers and pydantic models
(infra/openapi.py, `make openapi`): the checked-in document must be what the code generates, and
it must describe exactly the routes template.yaml gives API Gateway, with IAM where the template
puts the IAM authorizer."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from usage_meter_local.template import http_routes, load_template, resources_of

TEMPLATE = load_template()
OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
DOCUMENT = json.loads(OUTPUT.read_text())


@pytest.fixture
def openapi() -> ModuleType:
    """infra/openapi.py, imported inside a test: it imports the handler modules, whose Powertools
    Logger and Metrics read the environment the autouse fixture sets (at collection time they
    would be made without a service name or metrics namespace, for every later test)."""
    import openapi as generator

    return generator


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
    }


def _iam_routes() -> set[tuple[str, str]]:
    routes = set()
    for props in resources_of(TEMPLATE, "AWS::Serverless::Function").values():
        for event in (props.get("Events") or {}).values():
            p = event.get("Properties") or {}
            if event.get("Type") == "HttpApi" and (p.get("Auth") or {}).get("Authorizer") == (
                "AWS_IAM"
            ):
                routes.add((str(p["Method"]).upper(), str(p["Path"])))
    return routes


def test_the_checked_in_document_is_what_the_code_generates(openapi: ModuleType) -> None:
    # Given the routers and models as they are now, When the document is generated
    # Then it equals docs/openapi.json byte for byte (else: run `make openapi`)
    assert openapi.OUTPUT == OUTPUT
    assert OUTPUT.read_text() == openapi.render()


def test_every_template_route_is_documented_and_nothing_else() -> None:
    documented = set(_operations(DOCUMENT))
    in_template = set(http_routes(TEMPLATE))
    assert ("POST", "/webhooks/assemblyai") in in_template  # the intake's route is one of them
    assert documented == in_template


def test_iam_routes_carry_the_sigv4_requirement_and_no_other_route_does() -> None:
    secured = {key for key, op in _operations(DOCUMENT).items() if op.get("security")}
    assert _iam_routes()  # the template does authorize the usage API with IAM
    assert secured == _iam_routes()
    assert "sigv4" in DOCUMENT["components"]["securitySchemes"]


def test_bodies_and_parameters_come_from_the_models() -> None:
    ops = _operations(DOCUMENT)
    body = ops[("POST", "/streaming/sessions/termination")]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"].endswith("/SessionTermination")
    termination = DOCUMENT["components"]["schemas"]["SessionTermination"]
    assert "session_duration_seconds" in termination["required"]
    usage = ops[("GET", "/customers/{customer_id}/usage")]
    names = {(p["in"], p["name"]) for p in usage["parameters"]}
    assert names == {
        ("path", "customer_id"),
        ("query", "month"),
        ("query", "format"),
        ("query", "page"),
        ("query", "from"),
        ("query", "to"),
    }
    # A request the models refuse is answered 400 with an ErrorAnswer, never Powertools' 422.
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
    assert usage["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorAnswer"
    )


def test_the_http_functions_answer_errors_in_one_place() -> None:
    # Every function on the resolver answers through handlers/http_api.py: none catches a domain
    # error or builds a statusCode itself (the webhook intake, without a resolver, maps its own).
    handlers = OUTPUT.parents[1] / "functions" / "usage_meter" / "handlers"
    for name in ("usage_query", "entitlement", "allowances", "streaming_report"):
        source = (handlers / f"{name}.py").read_text()
        assert "HttpApi(" in source, name
        for needle in (
            "except RequestRejected",
            "except TransientFailure",
            "except PermanentFailure",
            "except ValidationError",
            '"statusCode"',
        ):
            assert needle not in source, (name, needle)
