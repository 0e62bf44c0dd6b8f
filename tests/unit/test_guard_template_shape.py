"""Guards on the deployed shape in template.yaml that design.md and docs/decisions.md rely on: the
monthly export runs on EventBridge Scheduler in UTC with retries and a dead-letter queue, only the
usage API is IAM-authorized, nothing may Scan the table, and no alarm uses what CloudWatch alarms
refuse (SEARCH in a metric-math expression)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from typing import Any

import pytest

from usage_meter_local.template import Tag, load_template, resources_of

TEMPLATE = load_template()
EXPORT_FUNCTION = "MonthlyExportFunction"
USAGE_ROUTE = ("GET", "/customers/{customer_id}/usage")
WEBHOOK_ROUTE = ("POST", "/webhooks/assemblyai")
# SAM policy templates and AWS managed policies that include dynamodb:Scan.
SCAN_GRANTING_POLICIES = frozenset({"DynamoDBCrudPolicy", "DynamoDBReadPolicy"})
SCAN_GRANTING_MANAGED = re.compile(r"AmazonDynamoDB(FullAccess|ReadOnlyAccess)")


def _text(value: Any) -> str:
    """A template value as text: a plain string, or the string inside ``!Sub``/``!Ref`` tags."""
    if isinstance(value, Tag):
        inner = value.value
        return _text(inner[0] if isinstance(inner, list) and inner else inner)
    return str(value)


def _getatt_target(value: Any) -> str | None:
    """The logical id of ``!GetAtt X.Arn`` (short or list form), else None."""
    if isinstance(value, Tag) and value.name == "GetAtt":
        target = value.value
        return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
    return None


# -- the monthly export schedule ---------------------------------------------------------------


def _export_schedules(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every schedule that runs the export, normalised: SAM ScheduleV2 events on the function,
    AWS::Scheduler::Schedule resources targeting it, and (as "rule") EventBridge rule schedules."""
    found: list[dict[str, Any]] = []
    function = template["Resources"][EXPORT_FUNCTION]["Properties"]
    for event in (function.get("Events") or {}).values():
        props = event.get("Properties") or {}
        if event["Type"] == "ScheduleV2":
            found.append(
                {
                    "kind": "scheduler",
                    "expression": _text(props.get("ScheduleExpression")),
                    "timezone": props.get("ScheduleExpressionTimezone"),
                    "retry": props.get("RetryPolicy"),
                    "dead_letter": (props.get("DeadLetterConfig") or {}).get("Arn"),
                    "late_usage": '"late_usage": true' in str(props.get("Input") or ""),
                }
            )
        elif event["Type"] in ("Schedule", "CloudWatchEvent", "EventBridgeRule"):
            found.append({"kind": "rule", "expression": _text(props.get("Schedule"))})
    for schedule in resources_of(template, "AWS::Scheduler::Schedule").values():
        target = schedule.get("Target") or {}
        if _getatt_target(target.get("Arn")) == EXPORT_FUNCTION:
            found.append(
                {
                    "kind": "scheduler",
                    "expression": _text(schedule.get("ScheduleExpression")),
                    "timezone": schedule.get("ScheduleExpressionTimezone"),
                    "retry": target.get("RetryPolicy"),
                    "dead_letter": (target.get("DeadLetterConfig") or {}).get("Arn"),
                }
            )
    return found


def test_monthly_export_runs_on_eventbridge_scheduler_in_utc_with_retries_and_a_dlq() -> None:
    # Given the schedules that run the monthly export (not the hourly late-usage re-export,
    # which only republishes months that already have a version)
    schedules = [s for s in _export_schedules(TEMPLATE) if not s.get("late_usage")]

    # Then there is exactly one, on EventBridge Scheduler (not an EventBridge rule)
    assert [s["kind"] for s in schedules] == ["scheduler"]
    [schedule] = schedules
    # And it fires once a month: cron(minute hour day-of-month month day-of-week year)
    match = re.fullmatch(r"cron\((.+)\)", schedule["expression"].strip())
    assert match, schedule["expression"]
    _minute, _hour, day_of_month, month, day_of_week, _year = match.group(1).split()
    assert day_of_month not in ("*", "?") and month == "*" and day_of_week == "?"
    # And in UTC (the scheduler's default when unset; any other zone moves month boundaries)
    assert schedule["timezone"] in (None, "UTC", "Etc/UTC")
    # And a failed invocation is retried, then kept in a queue that exists and is alarmed on
    assert schedule["retry"] and schedule["retry"]["MaximumRetryAttempts"] >= 1
    queue = _getatt_target(schedule["dead_letter"])
    assert queue in resources_of(TEMPLATE, "AWS::SQS::Queue"), schedule["dead_letter"]
    watched = [
        _getatt_target(d.get("Value"))
        for alarm in resources_of(TEMPLATE, "AWS::CloudWatch::Alarm").values()
        if alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        for d in alarm.get("Dimensions") or []
    ]
    assert queue in watched


# -- HTTP routes and their authorizers ---------------------------------------------------------


def _route_authorizers(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> the authorizer API Gateway applies: the route's own, else its API's
    DefaultAuthorizer, else NONE."""
    apis = resources_of(template, "AWS::Serverless::HttpApi")
    routes: dict[tuple[str, str], str] = {}
    for function in resources_of(template, "AWS::Serverless::Function").values():
        for event in (function.get("Events") or {}).values():
            if event["Type"] != "HttpApi":
                continue
            props = event.get("Properties") or {}
            api_id = props.get("ApiId")
            api = apis.get(api_id.value) if isinstance(api_id, Tag) else None
            default = ((api or {}).get("Auth") or {}).get("DefaultAuthorizer", "NONE")
            authorizer = (props.get("Auth") or {}).get("Authorizer", default)
            routes[(str(props["Method"]).upper(), props["Path"])] = authorizer
    return routes


def test_only_the_usage_api_is_iam_authorized() -> None:
    # Given every HTTP route with the authorizer it ends up with
    routes = _route_authorizers(TEMPLATE)
    streaming = {
        route: auth for route, auth in routes.items() if route[1].startswith("/streaming/")
    }

    # Then dashboards call the usage API with SigV4...
    assert routes[USAGE_ROUTE] == "AWS_IAM"
    assert any(
        (api.get("Auth") or {}).get("EnableIamAuthorizer") is True
        for api in resources_of(TEMPLATE, "AWS::Serverless::HttpApi").values()
    )
    # ...while AssemblyAI's webhook (shared header secret) and the app backend's streaming reports
    # (HMAC signature) could not sign with AWS credentials, so they carry no API Gateway authorizer
    assert routes[WEBHOOK_ROUTE] == "NONE"
    assert len(streaming) >= 2, routes
    assert set(streaming.values()) == {"NONE"}, streaming


# -- IAM: nothing may Scan ---------------------------------------------------------------------


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, Tag):
        yield from _walk(value.value)
    elif isinstance(value, dict):
        for child in value.values():
            yield from _walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def scan_grants(template: dict[str, Any]) -> list[str]:
    """Every place in the template that lets a principal call dynamodb:Scan."""
    offenders: list[str] = []
    for logical_id, resource in template["Resources"].items():
        for node in _walk(resource.get("Properties") or {}):
            if not isinstance(node, dict):
                continue
            if node.get("Effect") == "Allow" and "Action" in node:
                for action in _as_list(node["Action"]):
                    if fnmatch.fnmatchcase("dynamodb:scan", _text(action).lower()):
                        offenders.append(f"{logical_id}: {_text(action)}")
            if node.get("Effect") == "Allow" and "NotAction" in node:
                excluded = [_text(a).lower() for a in _as_list(node["NotAction"])]
                if not any(fnmatch.fnmatchcase("dynamodb:scan", a) for a in excluded):
                    offenders.append(f"{logical_id}: NotAction {excluded}")
            offenders.extend(
                f"{logical_id}: {name}" for name in node if name in SCAN_GRANTING_POLICIES
            )
        for node in _walk(resource.get("Properties") or {}):
            if isinstance(node, str) and SCAN_GRANTING_MANAGED.search(node):
                offenders.append(f"{logical_id}: {node}")
    return offenders


def test_no_policy_in_the_template_grants_dynamodb_scan() -> None:
    # Given every IAM statement, SAM policy template and managed policy in the template
    # Then none allows dynamodb:Scan (keys are designed so export and usage query never Scan)
    assert scan_grants(TEMPLATE) == []


@pytest.mark.parametrize(
    "policy",
    [
        {"Statement": [{"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": "x"}]},
        {"Statement": [{"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "x"}]},
        {"Statement": [{"Effect": "Allow", "Action": "DynamoDB:S*", "Resource": "x"}]},
        {"Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "x"}]},
        {"DynamoDBReadPolicy": {"TableName": Tag("Ref", "UsageTable")}},
        "arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess",
    ],
)
def test_the_scan_guard_recognises_every_way_of_granting_it(policy: Any) -> None:
    # Given a function whose policies grant Scan in one of the ways IAM or SAM allow
    template = {
        "Resources": {
            "F": {"Type": "AWS::Serverless::Function", "Properties": {"Policies": [policy]}}
        }
    }
    # Then the guard reports it
    assert scan_grants(template) != []


def test_the_scan_guard_ignores_denies_and_other_actions() -> None:
    template = {
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Policies": [
                        {
                            "Statement": [
                                {"Effect": "Deny", "Action": "dynamodb:*", "Resource": "x"}
                            ]
                        },
                        {"Statement": [{"Effect": "Allow", "Action": "dynamodb:Query"}]},
                        {"DynamoDBWritePolicy": {"TableName": "t"}},
                    ]
                },
            }
        }
    }
    assert scan_grants(template) == []


# -- alarms CloudWatch accepts -----------------------------------------------------------------


def search_alarms(template: dict[str, Any]) -> list[str]:
    """Alarms with a metric-math expression using SEARCH (CloudWatch rejects them)."""
    return [
        name
        for name, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items()
        for query in alarm.get("Metrics") or []
        if "SEARCH(" in re.sub(r"\s+", "", _text(query.get("Expression") or "")).upper()
    ]


def test_no_alarm_uses_a_search_expression() -> None:
    # Given every CloudWatch alarm
    # Then none is built on SEARCH(...), which CloudWatch does not allow in alarms
    assert search_alarms(TEMPLATE) == []


def test_the_search_guard_finds_a_search_alarm() -> None:
    alarm = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "Metrics": [
                {
                    "Id": "q",
                    "Expression": "SUM(search ('{UsageMeter,service} Quarantined_', 'Sum', 300))",
                    "ReturnData": True,
                }
            ]
        },
    }
    assert search_alarms({"Resources": {"QuarantineAlarm": alarm}}) == ["QuarantineAlarm"]
