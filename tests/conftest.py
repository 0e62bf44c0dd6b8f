"""Shared fixtures: recorded events, an AWS account in moto provisioned from template.yaml, and the
AssemblyAI stand-in server the real SDK talks to.

Both are started once per session (tests/embedded_aws.py, the ``assemblyai`` fixture) and put back
to their initial state before each test, so each test sees a freshly provisioned stack.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from embedded_aws import REGION, EmbeddedAws, SecretSpec, scrub_environment
from usage_meter_local import dynamodb_isolation, moto_scaling
from usage_meter_local.assemblyai_standin import AssemblyAIStandIn
from usage_meter_local.lambda_fakes import (
    API_KEYS,
    PREVIOUS_WEBHOOK_SECRET,
    PROJECTS,
    WEBHOOK_SECRET,
    FakeLambdaContext,
    load_event,  # noqa: F401  (the tests import it from here)
)
from usage_meter_local.template import (
    LocalResources,
    function_environment,
    load_template,
)

# moto's DynamoDB with AWS's isolation and ClientRequestToken idempotency, in every test (as in
# the local stack), so no test's outcome depends on which ran before it.
dynamodb_isolation.install()
moto_scaling.install()  # SQS at a cost per message, not per queued message (as in the local stack)
# Standard Webhooks secrets (whsec_ + base64): base64("test-only-report-key-01") and "-00".
REPORT_SECRET = "whsec_dGVzdC1vbmx5LXJlcG9ydC1rZXktMDE="
PREVIOUS_REPORT_SECRET = "whsec_dGVzdC1vbmx5LXJlcG9ydC1rZXktMDA="
AUTH_HEADER = "x-usage-meter-webhook-secret"
WEBHOOK_BASE_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/webhooks/assemblyai"


# make test-fast runs each Hypothesis property with a quarter of its examples, for quick feedback;
# make test (CI) runs every example. A property's count is written once, as examples(N).
QUICK_PROPERTIES = os.environ.get("USAGE_METER_QUICK_PROPERTIES") == "1"


def examples(full: int) -> int:
    """The examples a Hypothesis property runs: ``full`` (make test, CI), or a quarter of it, at
    least 5, under make test-fast (``USAGE_METER_QUICK_PROPERTIES=1``)."""
    return max(5, full // 4) if QUICK_PROPERTIES else full


def pytest_report_header() -> str:
    if QUICK_PROPERTIES:
        return "properties: a quarter of their examples (make test-fast); make test runs all"
    return "properties: every example"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, ``sam build`` (the longest) before them all: with the tests spread
    over worker processes (pytest-xdist), the long ones then start at once on different workers
    instead of one of them ending the run alone. The order is otherwise kept."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if "slow" in item.path.parts else 1

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach real AWS: fake credentials, a fixed region, no endpoint overrides."""
    scrub_environment(monkeypatch)
    # What template.yaml gives every function locally (UsageMeter/${AWS::StackName})
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "UsageMeter/usage-meter-local")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "usage-meter")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")


_clients_made_for: dict[str, str] = {}


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
        settings.forwarder_settings,
        settings.entitlement_settings,  # ALLOWANCES differs between tests (Allowances parameter)
        settings.allowance_api_settings,
    ):
        getter.cache_clear()
    # AWS clients depend only on the AWS_* environment (region, endpoint, credentials): they are
    # made again when it changed. Reusing them saves ~10 ms per client per invocation; a test
    # that alters a client it did not create must undo that (monkeypatch does).
    aws_environment = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    if aws_environment != _clients_made_for:
        aws_clients.reset()
        _clients_made_for.clear()
        _clients_made_for.update(aws_environment)
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
    # env set on top of the template's. The export's ledger check runs in-process (threads) in
    # tests (its worker processes have their own tests, test_ledger_index.py); moto (in-process)
    # is not built for the processor's concurrent records; the stand-in is local, so the shared
    # AssemblyAI budget is the whole account's (one slot every 15 ms; the budget has its own
    # tests, test_request_budget.py).
    overrides: dict[str, str] = field(
        default_factory=lambda: {
            "EXPORT_LEDGER_WORKERS": "1",
            "PROCESSOR_BATCH_CONCURRENCY": "1",
            "ASSEMBLYAI_REQUESTS_PER_5_MINUTES": "20000",
        }
    )

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

    @property
    def ops_location(self) -> list[str]:
        """The ops CLI's arguments naming this stack's table, usage queue and DLQ."""
        return ["--table", self.table, "--queue-url", self.queue_url, "--dlq-url", self.dlq_url]

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
        items = _EMBEDDED.table(self.table).scan()["Items"]  # tests only: production never scans
        return sorted(
            (i for i in items if i.get("entity") == entity), key=lambda i: (i["PK"], i["SK"])
        )

    def queue_messages(self, url: str) -> list[dict[str, Any]]:
        sqs = _EMBEDDED.client("sqs")
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


SECRETS = [
    SecretSpec(
        "usage-meter/webhook-auth",
        json.dumps({"current": WEBHOOK_SECRET, "previous": PREVIOUS_WEBHOOK_SECRET}),
    ),
    SecretSpec(
        "usage-meter/report-signing",
        json.dumps({"current": REPORT_SECRET, "previous": PREVIOUS_REPORT_SECRET}),
    ),
    *(
        SecretSpec(f"usage-meter/assemblyai/{name}", json.dumps({"api_key": key}))
        for name, key in API_KEYS.items()
    ),
]
# One per session (a module global, so Stack's helpers reach it without a new field).
_EMBEDDED = EmbeddedAws(SECRETS)


@pytest.fixture(scope="session")
def embedded_aws() -> Iterator[EmbeddedAws]:
    """The session's moto account (started by the first test that uses ``stack``)."""
    yield _EMBEDDED
    _EMBEDDED.suspend()


@pytest.fixture(scope="module", autouse=True)
def _no_embedded_aws_in_e2e(request: pytest.FixtureRequest, embedded_aws: EmbeddedAws) -> None:
    """The e2e suites run moto's server in this process or a child, with the local stack's own
    resources: in process it would share moto's backends (and names) with the embedded AWS."""
    if "e2e" in request.path.parts:
        embedded_aws.suspend()


@pytest.fixture(scope="session", autouse=True)
def _one_tls_context() -> Iterator[None]:
    """httpx builds a TLS context for each client (loading certifi's CA bundle, ~30 ms) and the
    SDK makes a client per project in every test; the session's tests share one default context
    (the stand-in is plain HTTP anyway)."""
    from httpx._transports import default as transports

    original = transports.create_ssl_context
    shared: dict[tuple[object, ...], Any] = {}

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return original(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in shared:
            shared[key] = original(verify=verify, cert=cert, trust_env=trust_env)
        return shared[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transports, "create_ssl_context", create_ssl_context)
        yield


@pytest.fixture(scope="session")
def _assemblyai_server() -> Iterator[AssemblyAIStandIn]:
    with AssemblyAIStandIn() as api:
        yield api


@pytest.fixture
def assemblyai(_assemblyai_server: AssemblyAIStandIn) -> AssemblyAIStandIn:
    """The AssemblyAI stand-in, empty but for the projects' API keys."""
    _assemblyai_server.reset().api_keys = set(API_KEYS.values())
    return _assemblyai_server


@pytest.fixture
def stack(
    assemblyai: AssemblyAIStandIn,
    monkeypatch: pytest.MonkeyPatch,
    embedded_aws: EmbeddedAws,
) -> Iterator[Stack]:
    """The service's AWS resources, freshly provisioned from template.yaml (see embedded_aws)."""
    resources = copy.deepcopy(embedded_aws.fresh())
    yield Stack(
        resources,
        load_template(),
        assemblyai,
        monkeypatch,
        # Every optional feature on, as most tests exercise them (the template's defaults leave
        # allowances and unconsumed notification events off; test_cost_model prices both).
        {
            "AssemblyAIProjects": json.dumps(PROJECTS),
            "Allowances": "enabled",
            "NotificationEvents": "always",
        },
    )
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


def usage_query_event(customer: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    """The API Gateway (HTTP API, payload 2.0) event of ``GET /customers/{customer}/usage`` with
    the query parameters ``query`` (as given, not encoded)."""
    path = f"/customers/{customer}/usage"
    return {
        "version": "2.0",
        "routeKey": "GET /customers/{customer_id}/usage",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "pathParameters": {"customer_id": customer},
        "queryStringParameters": query or None,
        "requestContext": {"http": {"method": "GET", "path": path}},
        "headers": {},
        "isBase64Encoded": False,
    }


def ops_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run the ops CLI as an operator (``alice@ops``, ``--json``) with ``argv``; assert it exits
    0 and return its JSON answer. What the functions logged before is dropped first."""
    from usage_meter import ops_cli

    capsys.readouterr()
    code = ops_cli.main(["--actor", "alice@ops", "--json", *argv])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)
