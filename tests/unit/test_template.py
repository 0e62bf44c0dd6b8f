"""template.yaml against the code: handlers import, every environment variable the code reads is
set, IAM is least-privilege, asynchronous triggers have dead-letter queues, logs are retained."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from usage_meter_local.template import (
    Tag,
    function_handlers,
    load_template,
    resources_of,
    sqs_subscriptions,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
FUNCTIONS = resources_of(TEMPLATE, "AWS::Serverless::Function")


def _env(logical_id: str) -> set[str]:
    globals_env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    own = (FUNCTIONS[logical_id].get("Environment") or {}).get("Variables") or {}
    return set(globals_env) | set(own)


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_handler_imports(logical_id: str) -> None:
    module_name, _, attribute = function_handlers(TEMPLATE)[logical_id].rpartition(".")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_environment_variable_the_code_reads_is_set(logical_id: str) -> None:
    module_name = function_handlers(TEMPLATE)[logical_id].rpartition(".")[0]
    settings_model = importlib.import_module(module_name).SETTINGS
    missing = settings_model.env_names() - _env(logical_id)
    assert not missing, f"{logical_id} reads {sorted(missing)} but template.yaml does not set them"


# settings.py and settings_base.py (the shared parsers and the intake's model, apart for the
# intake's cold start): these two files exactly, not any file that happens to share the name.
SETTINGS_MODULES = {
    Path("functions/usage_meter/settings.py"),
    Path("functions/usage_meter/settings_base.py"),
}


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = {
        path.relative_to(ROOT)
        for path in (ROOT / "functions").rglob("*.py")
        if re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text())
    }
    assert readers - SETTINGS_MODULES == set()
    assert readers >= SETTINGS_MODULES  # the check sees them (no path or pattern mistake)


def _statements(props: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement, a conditional policy (``!If [cond, policy, !Ref AWS::NoValue]``) taken as
    its policy."""
    policies = [
        p.value[1] if isinstance(p, Tag) and p.name == "If" else p
        for p in props.get("Policies", [])
    ]
    return [s for policy in policies for s in policy.get("Statement", [])]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_iam_statements_name_exact_actions_and_resources(logical_id: str) -> None:
    statements = _statements(FUNCTIONS[logical_id])
    assert statements, "every function states its own permissions"
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all("*" not in action for action in actions), statement
        assert statement["Resource"] != "*", statement


def test_functions_run_python_313_on_arm64_with_powertools_settings() -> None:
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"):
        assert name in function_globals["Environment"]["Variables"]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_logs_to_a_log_group_with_retention(logical_id: str) -> None:
    log_group = FUNCTIONS[logical_id]["LoggingConfig"]["LogGroup"]
    assert isinstance(log_group, Tag) and log_group.name == "Ref"
    assert "RetentionInDays" in TEMPLATE["Resources"][log_group.value]["Properties"]


def test_sqs_consumers_report_partial_failures_and_their_queue_has_a_dlq() -> None:
    queues = resources_of(TEMPLATE, "AWS::SQS::Queue")
    subscriptions = sqs_subscriptions(TEMPLATE)
    assert subscriptions
    for props in subscriptions.values():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        redrive = queues[props["QueueLogicalId"]]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"].value.split(".")[0] in queues


def test_queue_visibility_covers_six_processor_timeouts() -> None:
    timeout = FUNCTIONS["UsageProcessorFunction"]["Timeout"]
    visibility = TEMPLATE["Resources"]["UsageQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * timeout


def test_the_meters_load_on_assemblyai_is_one_shared_budget_inside_the_account_limit() -> None:
    # 20,000 requests / 5 minutes, account-wide: processor and reconciliation share one budget,
    # a small share by default, never more than the whole account's
    share = TEMPLATE["Parameters"]["AssemblyAIRequestShare"]
    assert share["Default"] <= 20_000 * 0.1 and share["MaxValue"] <= 20_000
    for name in ("UsageProcessorFunction", "ReconciliationFunction"):
        env = FUNCTIONS[name]["Environment"]["Variables"]
        assert env["ASSEMBLYAI_REQUESTS_PER_5_MINUTES"] == Tag("Ref", "AssemblyAIRequestShare")
    scaling = sqs_subscriptions(TEMPLATE)["UsageProcessorFunction"]["ScalingConfig"]
    assert scaling["MaximumConcurrency"] == Tag("Ref", "ProcessorMaxConcurrency")


def test_usage_table_is_on_demand_with_point_in_time_recovery() -> None:
    table = TEMPLATE["Resources"]["UsageTable"]
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    assert "TimeToLiveSpecification" not in props, "dedupe has no TTL: billed at most once, forever"


def test_no_secret_values_in_the_template() -> None:
    text = (ROOT / "template.yaml").read_text()
    # only the documented placeholder shapes, never a value
    keys = re.findall(r'"(?:api_key|current|previous)":', text)
    assert keys
    assert re.findall(r'"(?:api_key|current|previous)":\s*"([^"]*)"', text) == ["..."] * len(keys)
    assert not re.search(r"[0-9a-f]{32}", text), "something that looks like an API key"


def test_dlq_depth_has_an_alarm() -> None:
    alarms = resources_of(TEMPLATE, "AWS::CloudWatch::Alarm").values()
    watched = [
        a["Dimensions"][0]["Value"]
        for a in alarms
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    assert Tag("GetAtt", "UsageDeadLetterQueue.QueueName") in watched


def test_default_projects_parameter_is_valid_settings() -> None:
    from usage_meter.settings import ProcessorSettings

    projects = TEMPLATE["Parameters"]["AssemblyAIProjects"]["Default"]
    settings = ProcessorSettings.from_environ(
        {
            "USAGE_TABLE_NAME": "t",
            "USAGE_QUEUE_URL": "q",
            "USAGE_DLQ_URL": "d",
            "EVENT_BUS_NAME": "b",
            "BILLING_DIMENSIONS": "plan",
            "ASSEMBLYAI_PROJECTS": projects,
        }
    )
    assert settings.projects["default"].base_url == "https://api.assemblyai.com"
    assert json.loads(projects)["default"]["api_key_secret_id"].startswith(
        TEMPLATE["Parameters"]["SecretsPrefix"]["Default"] + "/assemblyai/"
    )


def test_dashboard_body_is_valid_json_with_the_key_metrics() -> None:
    body, _variables = TEMPLATE["Resources"]["OperationsDashboard"]["Properties"][
        "DashboardBody"
    ].value
    document = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    metrics = {m[1] for w in document["widgets"] for m in w["properties"]["metrics"] if len(m) > 1}
    for name in (
        "WebhooksAccepted",
        "DuplicateDelivery",
        "UsageConflict",
        "ReconcileRecovered",
        "UsageSecondsRecorded",
    ):
        assert name in metrics


def test_every_alarm_the_operators_need_exists() -> None:
    alarms = set(resources_of(TEMPLATE, "AWS::CloudWatch::Alarm"))
    assert {
        "DeadLetterQueueNotEmptyAlarm",
        "QuarantineAlarm",
        "ProcessorErrorsAlarm",
        "ReconciliationRecoveredAlarm",
        "ReconciliationFailedAlarm",
        "ExportFailedAlarm",
        "ExportLedgerMismatchAlarm",
        "ExportCustomersHeldAlarm",
    } <= alarms


def test_outputs_give_the_api_base_url_the_other_urls_start_with() -> None:
    outputs = TEMPLATE["Outputs"]
    base = outputs["ApiBaseUrl"]["Value"]
    assert isinstance(base, Tag) and base.name == "Sub"
    assert base.value == "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    for name in ("WebhookUrl", "UsageApiUrl"):
        value = outputs[name]["Value"]
        assert isinstance(value, Tag) and value.value.startswith(base.value + "/"), name


def test_samconfig_environments_are_separate_stacks_with_valid_parameters() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    stacks, prefixes = set(), set()
    for env in ("dev", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        overrides = dict(o.split("=", 1) for o in deploy["parameter_overrides"])
        assert set(overrides) <= set(TEMPLATE["Parameters"]), env
        prefix = overrides["SecretsPrefix"]
        assert re.fullmatch(TEMPLATE["Parameters"]["SecretsPrefix"]["AllowedPattern"], prefix)
        for project in json.loads(overrides["AssemblyAIProjects"]).values():
            assert project["api_key_secret_id"].startswith(prefix + "/"), env  # IAM scope
        stacks.add(config[env]["global"]["parameters"]["stack_name"])
        prefixes.add(prefix)
    assert len(stacks) == len(prefixes) == 2
    assert config["default"]["validate"]["parameters"]["lint"] is True
