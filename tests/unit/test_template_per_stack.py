"""template.yaml, issue 9: two stacks in one account never share a metric or an alarm; the alarms
nothing-lost needs exist; AssemblyAI's webhook route has throttling limits of its own.

API Gateway quotas (docs.aws.amazon.com/apigateway/latest/developerguide/limits.html): 10,000
requests per second per account and Region (2,500 in some Regions), burst 5,000 (1,250 there).
"""

from __future__ import annotations

import re

from usage_meter_local.template import Tag, load_template, resources_of

TEMPLATE = load_template()
PER_STACK = "UsageMeter/${AWS::StackName}"
ALARMS = resources_of(TEMPLATE, "AWS::CloudWatch::Alarm")
FUNCTIONS = resources_of(TEMPLATE, "AWS::Serverless::Function")


def test_metrics_are_published_in_a_namespace_of_the_stack() -> None:
    namespace = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    assert namespace == Tag("Sub", PER_STACK)


def test_every_alarm_on_our_own_metrics_watches_this_stack_only() -> None:
    for name, alarm in ALARMS.items():
        namespace = alarm.get("Namespace")
        if namespace is None or (isinstance(namespace, str) and namespace.startswith("AWS/")):
            continue  # AWS metrics carry the stack's own resource names as dimensions
        assert namespace == Tag("Sub", PER_STACK), name


def test_the_dashboard_reads_this_stacks_metrics() -> None:
    body, _ = TEMPLATE["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"].value
    assert '"UsageMeter",' not in body
    assert re.search(r'\["UsageMeter/\$\{AWS::StackName\}", "WebhooksAccepted"', body)


def _metric(alarm: dict[str, object]) -> object:
    return alarm.get("MetricName")


def test_the_alarms_nothing_lost_needs_exist() -> None:
    by_metric = {_metric(a): n for n, a in ALARMS.items()}
    assert "WebhookIntakeFailures" in by_metric  # intake 503s
    assert "AttributionQuarantined" in by_metric  # attribution quarantines
    assert "ReconcileIncomplete" in by_metric  # a reconciliation that cannot finish
    age = ALARMS["UsageQueueAgeAlarm"]
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert age["Dimensions"][0]["Value"] == Tag("GetAtt", "UsageQueue.QueueName")


def test_every_function_has_its_errors_alarmed() -> None:
    metrics = ALARMS["FunctionErrorsAlarm"]["Metrics"]
    watched = {
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"].value
        for m in metrics
        if "MetricStat" in m
    }
    # A function that exists only under a condition (the forwarder, the optional Stripe sink)
    # cannot be named in this unconditional alarm: it has exactly one Errors alarm of its own,
    # under the same condition.
    resources = TEMPLATE["Resources"]
    conditional = {f for f in FUNCTIONS if "Condition" in resources[f]}
    assert watched == set(FUNCTIONS) - conditional
    for function in conditional:
        [own] = [
            alarm_id
            for alarm_id, alarm in ALARMS.items()
            if alarm.get("MetricName") == "Errors"
            and alarm["Dimensions"][0]["Value"] == Tag("Ref", function)
        ]
        assert ALARMS[own]["Namespace"] == "AWS/Lambda"
        assert resources[own].get("Condition") == resources[function]["Condition"], function
    [expression] = [m for m in metrics if "Expression" in m]
    ids = {m["Id"] for m in metrics if "MetricStat" in m}
    assert set(re.findall(r"\w+", expression["Expression"])) - {"SUM"} == ids


def test_the_webhook_route_has_throttling_limits_of_its_own_within_the_account_quota() -> None:
    api = TEMPLATE["Resources"]["HttpApi"]["Properties"]
    route = api["RouteSettings"]["POST /webhooks/assemblyai"]
    assert route["ThrottlingRateLimit"] == Tag("Ref", "WebhookThrottlingRateLimit")
    assert route["ThrottlingBurstLimit"] == Tag("Ref", "WebhookThrottlingBurstLimit")
    parameters = TEMPLATE["Parameters"]
    rate = parameters["WebhookThrottlingRateLimit"]
    burst = parameters["WebhookThrottlingBurstLimit"]
    assert rate["MaxValue"] <= 10_000 and burst["MaxValue"] <= 5_000
    # The defaults fit even the Regions with the lower quota (2,500 / 1,250)
    assert rate["Default"] <= 2_500 and burst["Default"] <= 1_250
    # And are well above the limits every other route shares
    default = api["DefaultRouteSettings"]
    assert rate["Default"] > default["ThrottlingRateLimit"]
    assert burst["Default"] > default["ThrottlingBurstLimit"]
