"""Powertools Tracer where tracing is on, nothing where it is off (handlers/tracing.py): the
template turns it on with TracingMode=Active only, and off the decorators leave the handler
untouched and never import the X-Ray SDK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from usage_meter.handlers.tracing import LazyTracer, tracing_enabled
from usage_meter_local.template import LocalResources, function_environment, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()


def _handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"echo": event}


@pytest.mark.parametrize("value", [None, "true", "TRUE", "1", "anything"])
def test_off_the_handler_is_returned_untouched(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    else:
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", value)
    lazy = LazyTracer()
    assert not tracing_enabled()
    assert lazy.capture_lambda_handler()(_handler) is _handler
    assert lazy.capture_method()(_handler) is _handler
    assert "tracer" not in vars(lazy)  # no Powertools Tracer was made


def test_on_the_handler_is_wrapped_by_a_powertools_tracer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aws_lambda_powertools import Tracer

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
    lazy = LazyTracer()
    wrapped = lazy.capture_lambda_handler()(_handler)
    assert wrapped is not _handler
    assert isinstance(lazy.tracer, Tracer)
    # Outside Lambda the Tracer records nothing; the handler still answers the same.
    context = type("Context", (), {"function_name": "f", "aws_request_id": "r"})()
    assert wrapped({"a": 1}, context) == {"echo": {"a": 1}}


@pytest.mark.parametrize(
    ("parameters", "disabled"),
    [({}, "true"), ({"TracingMode": "PassThrough"}, "true"), ({"TracingMode": "Active"}, "false")],
)
def test_the_template_turns_it_on_only_with_tracing_mode_active(
    parameters: dict[str, str], disabled: str
) -> None:
    resources = LocalResources(
        tables={"UsageTable": "t"}, event_buses={"UsageEventBus": "b"}, queue_urls={}
    )
    for function in ("OrphanSessionsFunction", "UsageQueryFunction"):
        env = function_environment(TEMPLATE, function, resources, parameters=parameters)
        assert env["POWERTOOLS_TRACE_DISABLED"] == disabled, function


def test_every_handler_imports_without_the_xray_sdk_when_off() -> None:
    # In a fresh interpreter (nothing imported first), with tracing off as the template's
    # default sets it, no handler module loads aws_xray_sdk.
    handlers = sorted(
        f"usage_meter.handlers.{p.stem}"
        for p in (ROOT / "functions/usage_meter/handlers").glob("*.py")
        if p.stem != "__init__"
    )
    script = (
        "import importlib, sys\n"
        f"for name in {handlers!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('aws_xray_sdk')))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT / "functions"),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
