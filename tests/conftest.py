"""Shared fixtures: recorded events, an AWS account in moto provisioned from template.yaml, and the
AssemblyAI stand-in server the real SDK talks to."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from usage_meter_local.assemblyai_standin import AssemblyAIStandIn
from usage_meter_local.template import (
    LocalResources,
    function_environment,
    load_template,
    provision,
)

EVENTS = Path(__file__).parent / "events"
REGION = "eu-west-1"
WEBHOOK_SECRET = "local-webhook-secret-current"
PREVIOUS_WEBHOOK_SECRET = "local-webhook-secret-previous"
REPORT_SECRET = "local-report-signing-current"
PREVIOUS_REPORT_SECRET = "local-report-signing-previous"
API_KEYS = {"default": "local-key-default", "eu": "local-key-eu"}
AUTH_HEADER = "x-usage-meter-webhook-secret"
WEBHOOK_BASE_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/webhooks/assemblyai"


def load_event(relative: str) -> dict[str, Any]:
    return json.loads((EVENTS / relative).read_text())


@dataclass
class FakeLambdaContext:
    function_name: str = "usage-meter-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:usage-meter-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach real AWS: fake credentials, a fixed region, no endpoint overrides."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "ASSEMBLYAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "UsageMeter")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "usage-meter")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")


def _reset_caches() -> None:
    from usage_meter import settings
    from usage_meter.adapters import aws_clients
    from usage_meter.handlers import usage_processor, webhook_intake

    for getter in (
        settings.intake_settings,
        settings.processor_settings,
        settings.export_settings,
        settings.usage_query_settings,
        settings.streaming_report_settings,
        settings.orphan_settings,
        settings.reconcile_settings,
        settings.stripe_sink_settings,
    ):
        getter.cache_clear()
    aws_clients.reset()
    webhook_intake._dependencies.cache_clear()
    usage_processor._dependencies.cache_clear()


@dataclass
class Stack:
    """The deployed shape of the service inside moto, plus helpers to drive and inspect it."""

    resources: LocalResources
    template: dict[str, Any]
    api: AssemblyAIStandIn
    monkeypatch: pytest.MonkeyPatch
    parameters: dict[str, str]
    overrides: dict[str, str] = field(default_factory=dict)  # env set on top of the template's

    @property
    def table(self) -> str:
        return self.resources.tables["UsageTable"]

    @property
    def queue_url(self) -> str:
        return self.resources.queue_urls["UsageQueue"]

    @property
    def bucket(self) -> str:
        return self.resources.buckets["ExportBucket"]

    @property
    def dlq_url(self) -> str:
        return self.resources.queue_urls["UsageDeadLetterQueue"]

    def use_function(self, logical_id: str) -> None:
        env = function_environment(
            self.template, logical_id, self.resources, parameters=self.parameters
        )
        local = {
            "ASSEMBLYAI_BASE_URL_OVERRIDE": self.api.url,  # the real SDK, pointed at the stand-in
            "WEBHOOK_BASE_URL": WEBHOOK_BASE_URL,
        }
        env.update({name: value for name, value in local.items() if name in env})
        for name, value in {**env, **self.overrides}.items():
            self.monkeypatch.setenv(name, value)
        _reset_caches()

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Invoke a function the way Lambda would: its handler and environment from the template."""
        import importlib

        from usage_meter_local.template import function_handlers

        module_name, _, attribute = function_handlers(self.template)[logical_id].rpartition(".")
        self.use_function(logical_id)
        module = importlib.import_module(module_name)
        if hasattr(module, "_dependencies"):
            module._dependencies.cache_clear()
        return getattr(module, attribute)(event, FakeLambdaContext())

    def invoke_intake(self, event: dict[str, Any]) -> dict[str, Any]:
        from usage_meter.handlers import webhook_intake

        self.use_function("WebhookIntakeFunction")
        return webhook_intake.handler(event, FakeLambdaContext())  # type: ignore[arg-type]

    def invoke_processor(self, event: dict[str, Any]) -> dict[str, Any]:
        from usage_meter.handlers import usage_processor

        self.use_function("UsageProcessorFunction")
        return usage_processor.handler(event, FakeLambdaContext())  # type: ignore[arg-type]

    # -- inspection -------------------------------------------------------------------------
    def items(self, entity: str) -> list[dict[str, Any]]:
        client = boto3.resource("dynamodb", region_name=REGION).Table(self.table)
        items = client.scan()["Items"]  # tests only: production code never scans
        return sorted(
            (i for i in items if i.get("entity") == entity), key=lambda i: (i["PK"], i["SK"])
        )

    def queue_messages(self, url: str) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
                VisibilityTimeout=0,
            ).get("Messages", [])
            new = [m for m in batch if m["MessageId"] not in {o["MessageId"] for o in out}]
            if not new:
                return out
            out.extend(new)


@pytest.fixture
def assemblyai() -> Iterator[AssemblyAIStandIn]:
    with AssemblyAIStandIn() as api:
        api.state.api_keys = set(API_KEYS.values())
        yield api


@pytest.fixture
def stack(assemblyai: AssemblyAIStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    template = load_template()
    projects = {
        "default": {
            "api_key_secret_id": "usage-meter/assemblyai/default",
            "base_url": "https://api.assemblyai.com",
        },
        "eu": {
            "api_key_secret_id": "usage-meter/assemblyai/eu",
            "base_url": "https://api.eu.assemblyai.com",
        },
    }
    with mock_aws():
        resources = provision(
            template,
            boto3.client("dynamodb", region_name=REGION),
            boto3.client("sqs", region_name=REGION),
            boto3.client("s3", region_name=REGION),
        )
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secrets.create_secret(
            Name="usage-meter/webhook-auth",
            SecretString=json.dumps(
                {"current": WEBHOOK_SECRET, "previous": PREVIOUS_WEBHOOK_SECRET}
            ),
        )
        secrets.create_secret(
            Name="usage-meter/report-signing",
            SecretString=json.dumps({"current": REPORT_SECRET, "previous": PREVIOUS_REPORT_SECRET}),
        )
        for name, key in API_KEYS.items():
            secrets.create_secret(
                Name=f"usage-meter/assemblyai/{name}", SecretString=json.dumps({"api_key": key})
            )
        st = Stack(
            resources,
            template,
            assemblyai,
            monkeypatch,
            {"AssemblyAIProjects": json.dumps(projects)},
        )
        yield st
    _reset_caches()


def usage_message_body(
    transcript_id: str,
    customer_id: str,
    *,
    project: str = "default",
    dimensions: dict[str, str] | None = None,
    received_at: str = "2026-11-03T14:05:09.123Z",
    status: str = "completed",
) -> str:
    return json.dumps(
        {
            "schema_version": 1,
            "transcript_id": transcript_id,
            "webhook_status": status,
            "attribution": {
                "customer_id": customer_id,
                "project": project,
                "dimensions": dimensions or {},
            },
            "received_at": received_at,
        }
    )


def sqs_event(bodies: list[str], receive_count: int = 1) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping delivers it (receipt handles are fake)."""
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:UsageQueue",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


def webhook_url(customer_id: str, **params: str) -> str:
    from urllib.parse import urlencode

    query = urlencode({"customer_id": customer_id, **params})
    return f"{WEBHOOK_BASE_URL}?{query}"
