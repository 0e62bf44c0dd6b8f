"""template.yaml: the notification bus, the forwarding rule, queue, DLQ, alarm and forwarder,
and least-privilege IAM around them (docs/decisions.md, "Forwarding")."""

from __future__ import annotations

from typing import Any

from usage_meter_local.template import Tag, condition_holds, load_template, resources_of

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FORWARDING = {"ForwardUrl": "https://app.example/hook"}
BUS_NAME = Tag("If", ["CreateEventBus", Tag("Ref", "UsageEventBus"), Tag("Ref", "EventBusName")])


def _statements(logical_id: str) -> list[dict[str, Any]]:
    """The function's policy statements, including those of a conditional (``!If``) policy."""
    props = RESOURCES[logical_id]["Properties"]
    policies: list[Any] = []
    for policy in props.get("Policies", []):
        if isinstance(policy, Tag) and policy.name == "If":
            policies.extend(p for p in policy.value[1:] if isinstance(p, dict))
        else:
            policies.append(policy)
    return [s for policy in policies for s in policy.get("Statement", [])]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_the_stack_creates_its_bus_unless_an_existing_one_is_named() -> None:
    assert RESOURCES["UsageEventBus"]["Type"] == "AWS::Events::EventBus"
    assert condition_holds(TEMPLATE, "UsageEventBus")
    assert not condition_holds(TEMPLATE, "UsageEventBus", {"EventBusName": "company-bus"})
    for function in ("WebhookIntakeFunction", "UsageProcessorFunction"):
        env = RESOURCES[function]["Properties"]["Environment"]["Variables"]
        assert env["EVENT_BUS_NAME"] == BUS_NAME


def test_only_the_functions_that_publish_may_and_only_on_that_bus() -> None:
    # The intake and the processor publish notification events; every function that records
    # usage or changes an allowance publishes threshold events (issue 16).
    publishers = {}
    for logical_id in resources_of(TEMPLATE, "AWS::Serverless::Function"):
        for statement in _statements(logical_id):
            if any(a.startswith("events:") for a in _actions(statement)):
                publishers[logical_id] = statement
    assert set(publishers) == {
        "WebhookIntakeFunction",
        "UsageProcessorFunction",
        "ReconciliationFunction",
        "StreamingReportFunction",
        "OrphanSessionsFunction",
        "AllowanceFunction",
    }
    for statement in publishers.values():
        assert _actions(statement) == ["events:PutEvents"]
        resource = statement["Resource"]
        assert resource.name == "If" and resource.value[0] == "CreateEventBus"
        assert resource.value[1] == Tag("GetAtt", "UsageEventBus.Arn")
        assert resource.value[2].value.endswith(":event-bus/${EventBusName}")


def test_forwarding_exists_only_with_a_forward_url() -> None:
    forwarding = [
        "ForwardNotificationsRule",
        "ForwardQueue",
        "ForwardDeadLetterQueue",
        "ForwardQueuePolicy",
        "NotificationForwarderFunction",
        "NotificationForwarderLogGroup",
        "ForwardDeadLetterQueueAlarm",
    ]
    for logical_id in forwarding:
        assert not condition_holds(TEMPLATE, logical_id), logical_id
        assert condition_holds(TEMPLATE, logical_id, FORWARDING), logical_id


def test_the_rule_sends_received_notifications_to_the_queue_with_retries_and_a_dlq() -> None:
    rule = RESOURCES["ForwardNotificationsRule"]["Properties"]
    assert rule["EventBusName"] == BUS_NAME
    assert rule["EventPattern"] == {
        "source": ["usage-meter"],
        "detail-type": ["AssemblyAI Notification Received"],
    }
    [target] = rule["Targets"]
    assert target["Arn"] == Tag("GetAtt", "ForwardQueue.Arn")
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400
    assert target["DeadLetterConfig"]["Arn"] == Tag("GetAtt", "ForwardDeadLetterQueue.Arn")
    queue = RESOURCES["ForwardQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == Tag(
        "GetAtt", "ForwardDeadLetterQueue.Arn"
    )
    assert (
        queue["VisibilityTimeout"]
        >= 6 * RESOURCES["NotificationForwarderFunction"]["Properties"]["Timeout"]
    )


def test_only_that_rule_may_write_to_the_forward_queues() -> None:
    [statement] = RESOURCES["ForwardQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": Tag("GetAtt", "ForwardNotificationsRule.Arn")}
    }


def test_the_forwarder_reads_only_its_queue_and_secrets_and_writes_only_its_dlq() -> None:
    function = RESOURCES["NotificationForwarderFunction"]["Properties"]
    env = function["Environment"]["Variables"]
    assert env["FORWARD_URL"] == Tag("Ref", "ForwardUrl")  # the one configured destination
    granted: dict[str, list[Any]] = {}
    for statement in _statements("NotificationForwarderFunction"):
        for action in _actions(statement):
            granted.setdefault(action, []).append(statement["Resource"])
    assert set(granted) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
    }
    assert granted["sqs:ReceiveMessage"] == [Tag("GetAtt", "ForwardQueue.Arn")]
    assert granted["sqs:SendMessage"] == [Tag("GetAtt", "ForwardDeadLetterQueue.Arn")]
    secrets = [s.value for s in granted["secretsmanager:GetSecretValue"]]
    assert [s.rsplit(":secret:", 1)[1] for s in secrets] == [
        "${SecretsPrefix}/forward-signing-??????",
        "${SecretsPrefix}/forward-auth-??????",
    ]
    [mapping] = [
        m
        for m in resources_of(TEMPLATE, "AWS::Lambda::EventSourceMapping").values()
        if m["FunctionName"] == Tag("Ref", "NotificationForwarderFunction")
    ]
    assert mapping["EventSourceArn"] == Tag("GetAtt", "ForwardQueue.Arn")


def test_the_forwarding_dlq_and_failed_publishing_have_alarms() -> None:
    dlq_alarm = RESOURCES["ForwardDeadLetterQueueAlarm"]["Properties"]
    assert dlq_alarm["Dimensions"][0]["Value"] == Tag("GetAtt", "ForwardDeadLetterQueue.QueueName")
    assert dlq_alarm["Threshold"] == 0
    publish = RESOURCES["NotificationPublishFailedAlarm"]["Properties"]
    assert publish["MetricName"] == "NotificationPublishFailures"


def test_billing_dimensions_default_to_an_allow_list() -> None:
    parameter = TEMPLATE["Parameters"]["BillingDimensions"]
    assert parameter["Default"] == "plan,team"
    for function in ("WebhookIntakeFunction", "ReconciliationFunction"):
        env = RESOURCES[function]["Properties"]["Environment"]["Variables"]
        assert env["BILLING_DIMENSIONS"] == Tag("Ref", "BillingDimensions")


def test_the_events_endpoint_goes_through_an_api_destination_and_connection() -> None:
    endpoint = {"EventsEndpointUrl": "https://events.example/usage"}
    names = [
        "EventsEndpointConnection",
        "EventsEndpointDestination",
        "EventsEndpointRule",
        "EventsEndpointRole",
        "EventsEndpointDeadLetterQueue",
        "EventsEndpointDeadLetterQueuePolicy",
        "EventsEndpointDeadLetterQueueAlarm",
    ]
    for logical_id in names:
        assert not condition_holds(TEMPLATE, logical_id), logical_id
        assert condition_holds(TEMPLATE, logical_id, endpoint), logical_id
    connection = RESOURCES["EventsEndpointConnection"]["Properties"]
    assert connection["AuthorizationType"] == "API_KEY"
    key = connection["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyValue"]
    assert key.name == "Sub" and key.value.startswith("{{resolve:secretsmanager:${SecretsPrefix}/")
    destination = RESOURCES["EventsEndpointDestination"]["Properties"]
    assert destination["ConnectionArn"] == Tag("GetAtt", "EventsEndpointConnection.Arn")
    assert destination["InvocationEndpoint"] == Tag("Ref", "EventsEndpointUrl")
    rule = RESOURCES["EventsEndpointRule"]["Properties"]
    assert rule["EventBusName"] == BUS_NAME
    [target] = rule["Targets"]
    assert target["Arn"] == Tag("GetAtt", "EventsEndpointDestination.Arn")
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["DeadLetterConfig"]["Arn"] == Tag("GetAtt", "EventsEndpointDeadLetterQueue.Arn")
    # The rule's role may invoke that one destination and nothing else.
    role = RESOURCES["EventsEndpointRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": Tag("Ref", "AWS::AccountId")}
    }
    [policy] = role["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "events:InvokeApiDestination"
    assert statement["Resource"] == Tag("GetAtt", "EventsEndpointDestination.Arn")
    [dlq_statement] = RESOURCES["EventsEndpointDeadLetterQueuePolicy"]["Properties"][
        "PolicyDocument"
    ]["Statement"]
    assert dlq_statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": Tag("GetAtt", "EventsEndpointRule.Arn")}
    }
    alarm = RESOURCES["EventsEndpointDeadLetterQueueAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == Tag(
        "GetAtt", "EventsEndpointDeadLetterQueue.QueueName"
    )
