"""Shared benchmark setup: paths, an isolated environment, and the moto stack provisioned from
template.yaml (the same steps as tests/conftest.py, without pytest)."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
FUNCTIONS_DIR = ROOT / "functions"
INFRA_DIR = ROOT / "infra"
CLIENT_DIR = ROOT / "clients" / "python" / "src"  # usage_meter_client (the local app receiver)
RESULTS_DIR = BENCH_DIR / ".results"


def add_source_paths() -> None:
    """Make ``usage_meter`` (functions/), ``usage_meter_local`` (infra/) and
    ``usage_meter_client`` (clients/python/src/, which the local stack's app receiver uses)
    importable."""
    for path in (FUNCTIONS_DIR, INFRA_DIR, CLIENT_DIR):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


add_source_paths()
# The handlers' in-process inputs and the offline stack's fakes, shared with the tests.
from usage_meter_local.lambda_fakes import (  # noqa: E402
    API_KEYS,
    PREVIOUS_WEBHOOK_SECRET,
    PROJECTS,  # noqa: F401
    REGION,
    WEBHOOK_SECRET,
    FakeLambdaContext,  # noqa: F401
    load_event,  # noqa: F401
)

# Fake credentials, a fixed region, no metadata service: nothing can reach real AWS.
OFFLINE_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "usage-meter",
    "POWERTOOLS_METRICS_NAMESPACE": "UsageMeter",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def isolate_environment() -> None:
    """Drop every AWS_/ASSEMBLYAI_/proxy variable of the caller and set the offline ones."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "ASSEMBLYAI_", "POWERTOOLS_")) or name.lower().endswith(
            "_proxy"
        ):
            del os.environ[name]
    os.environ.update(OFFLINE_ENV)


def provision_stack(template: dict[str, Any]) -> Any:
    """Tables, queues and buckets from the template plus the secrets, inside an active mock_aws."""
    import boto3

    from usage_meter_local.template import provision

    resources = provision(
        template,
        boto3.client("dynamodb", region_name=REGION),
        boto3.client("sqs", region_name=REGION),
        boto3.client("s3", region_name=REGION),
        events=boto3.client("events", region_name=REGION),
    )
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.create_secret(
        Name="usage-meter/webhook-auth",
        SecretString=json.dumps({"current": WEBHOOK_SECRET, "previous": PREVIOUS_WEBHOOK_SECRET}),
    )
    for name, key in API_KEYS.items():
        secrets.create_secret(
            Name=f"usage-meter/assemblyai/{name}", SecretString=json.dumps({"api_key": key})
        )
    return resources


def reset_caches() -> None:
    """Forget settings, boto3 clients and handler dependencies (after an environment change)."""
    from usage_meter import settings
    from usage_meter.adapters import aws_clients
    from usage_meter.handlers import usage_processor, webhook_intake

    settings.intake_settings.cache_clear()
    settings.processor_settings.cache_clear()
    aws_clients.reset()
    webhook_intake._dependencies.cache_clear()
    usage_processor._dependencies.cache_clear()


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (``pct`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    cuts = statistics.quantiles(ordered, n=1000, method="inclusive")
    index = round(pct * 10) - 1
    if index < 0:
        return ordered[0]
    if index >= len(cuts):
        return ordered[-1]
    return cuts[index]
