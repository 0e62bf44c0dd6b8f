"""The webhook intake's cold start: docs/decisions.md ("Intake cold start without pydantic, boto3 or
the HTTP resolver") and the handler's docstring say it never imports the assemblyai SDK, pydantic,
boto3 (botocore clients only), Powertools' HTTP resolver or the other functions' settings models
(docs/decisions.md, "The intake builds only its own settings"). Checked in a fresh interpreter,
where nothing else has imported them first, both after the import and after handling a real
delivery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENT = ROOT / "tests" / "events" / "apigw" / "webhook_completed.json"

# Top-level packages (or package prefixes) the intake must never load.
FORBIDDEN = (
    "assemblyai",  # the SDK: the intake never calls AssemblyAI (store-first)
    "httpx",  # what the SDK brings in
    "pydantic",  # plain dataclasses + re checks instead
    "boto3",  # botocore clients instead (boto3 drags in s3transfer)
    "s3transfer",
    "aws_lambda_powertools.event_handler",  # no APIGatewayHttpResolver
    "aws_xray_sdk",  # the Tracer only where tracing is on (handlers/tracing.py)
    # Every other function's settings models (18 dataclasses, ~15 ms of CPU at import): the
    # intake's model and the shared parsers are in usage_meter/settings_base.py.
    "usage_meter.settings",
)

# Run in the subprocess: import the handler, report what is loaded, then handle the recorded
# webhook with stubbed botocore clients (no network) and report again.
SCRIPT = r"""
import json, sys

def loaded():
    return sorted(sys.modules)

import usage_meter.handlers.webhook_intake as intake
after_import = loaded()

from botocore.stub import Stubber
from usage_meter.adapters import aws_clients

secrets = aws_clients.secrets_manager()
sqs = aws_clients.sqs()
secret_stub, sqs_stub = Stubber(secrets), Stubber(sqs)
secret_stub.add_response(
    "get_secret_value",
    {"SecretString": json.dumps({"current": "local-webhook-secret-current"})},
)
sqs_stub.add_response("send_message", {"MessageId": "m-1", "MD5OfMessageBody": "0" * 32})
events_stub = Stubber(aws_clients.events())
events_stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]})
secret_stub.activate()
sqs_stub.activate()
events_stub.activate()

class Context:
    function_name = "webhook-intake"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:webhook-intake"
    aws_request_id = "req-1"

event = json.loads(open(sys.argv[1]).read())
response = intake.handler(event, Context())
sqs_stub.assert_no_pending_responses()
events_stub.assert_no_pending_responses()
print("RESULT " + json.dumps(
    {"status": response["statusCode"], "after_import": after_import, "after_call": loaded()}
))
"""


def _forbidden(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


@pytest.fixture(scope="module")
def intake_modules() -> dict[str, object]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ASSEMBLYAI_", "PYTHON"))
    }
    env.update(
        PYTHONPATH=str(ROOT / "functions"),
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        POWERTOOLS_SERVICE_NAME="usage-meter",
        POWERTOOLS_METRICS_NAMESPACE="UsageMeter",
        POWERTOOLS_TRACE_DISABLED="true",
        USAGE_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/UsageQueue",
        WEBHOOK_SECRET_ID="usage-meter/webhook-auth",
        BILLING_DIMENSIONS="plan,team",
        EVENT_BUS_NAME="usage-meter-bus",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(EVENT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    result: dict[str, object] = json.loads(line.removeprefix("RESULT "))
    return result


def test_importing_the_intake_loads_none_of_the_heavy_packages(
    intake_modules: dict[str, object],
) -> None:
    # Given a fresh interpreter with only functions/ on the path
    # When usage_meter.handlers.webhook_intake is imported
    modules = intake_modules["after_import"]
    assert isinstance(modules, list)
    # Then the handler is there, and neither the SDK, pydantic, boto3 nor the HTTP resolver is
    assert "usage_meter.handlers.webhook_intake" in modules
    assert "botocore" in modules  # the clients it does use (sanity check of the listing)
    assert _forbidden(modules) == []


def test_handling_a_delivery_loads_none_of_the_heavy_packages(
    intake_modules: dict[str, object],
) -> None:
    # Given the same interpreter, with botocore clients stubbed (no network)
    # When the recorded AssemblyAI webhook is handled end to end (secret read, message enqueued)
    modules = intake_modules["after_call"]
    assert isinstance(modules, list)
    # Then it was accepted without lazily importing any of them either
    assert intake_modules["status"] == 200
    assert _forbidden(modules) == []


def test_the_guard_itself_spots_a_forbidden_import() -> None:
    # Given module lists with and without a forbidden package
    # Then only real matches are reported (no prefix accidents such as "boto3x" or "httpxyz")
    assert _forbidden(["pydantic.main", "boto3", "assemblyai.types", "json"]) == [
        "assemblyai.types",
        "boto3",
        "pydantic.main",
    ]
    assert _forbidden(["boto3x", "httpxyz", "aws_lambda_powertools.logging"]) == []
    assert _forbidden(["usage_meter.settings_base", "usage_meter.settings"]) == [
        "usage_meter.settings"
    ]
