"""IAM and logging hardening of template.yaml.

- No function may delete ledger rows: the one DeleteItem grant (reconciliation's checkpoints) is
  conditioned on the table's leading keys (``dynamodb:LeadingKeys``, IAM condition keys for
  DynamoDB, AWS DynamoDB Developer Guide "Using IAM policy conditions for fine-grained access
  control").
- The processor's role is not widened by a managed policy with ``Resource: *``: SAM's ``SQS``
  event attaches ``AWSLambdaSQSQueueExecutionRole`` (receive/delete on every queue), so the queue
  is mapped with an explicit ``AWS::Lambda::EventSourceMapping`` instead.
- Secret ARNs are matched exactly: the secret's name, then ``-`` and the six random characters
  Secrets Manager appends (``??????``), never a trailing ``*`` that would match other secrets.
- Access logs for the HTTP API; a parameter for S3 server access logging of the export bucket.
"""

from __future__ import annotations

from typing import Any

from usage_meter_local.template import Tag, load_template, resources_of, sqs_subscriptions

TEMPLATE = load_template()
FUNCTIONS = resources_of(TEMPLATE, "AWS::Serverless::Function")


def _statements(props: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in props.get("Policies") or []:
        if isinstance(policy, dict):
            out.extend(policy.get("Statement") or [])
    return out


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action")
    return [action] if isinstance(action, str) else list(action or [])


def test_no_function_can_delete_ledger_rows() -> None:
    deleters = []
    for name, props in FUNCTIONS.items():
        for statement in _statements(props):
            actions = _actions(statement)
            if any(
                a in ("dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:*")
                for a in actions
            ):
                deleters.append(name)
                assert actions == ["dynamodb:DeleteItem"], name
                condition = statement["Condition"]["ForAllValues:StringLike"]
                assert condition == {"dynamodb:LeadingKeys": ["RECONCILE#*"]}, name
    assert deleters == ["ReconciliationFunction"]


def test_no_sam_event_attaches_a_managed_policy_with_every_resource() -> None:
    # SAM attaches AWSLambdaSQSQueueExecutionRole (Resource "*") for SQS, Kinesis and DynamoDB
    # stream events; none may be used.
    for name, props in FUNCTIONS.items():
        for event in (props.get("Events") or {}).values():
            assert event["Type"] not in ("SQS", "Kinesis", "DynamoDB", "MQ", "MSK"), name
        assert not [p for p in props.get("Policies") or [] if isinstance(p, str)], name
    assert sqs_subscriptions(TEMPLATE)["UsageProcessorFunction"]["QueueLogicalId"] == "UsageQueue"
    mappings = resources_of(TEMPLATE, "AWS::Lambda::EventSourceMapping").values()
    assert mappings  # the processor's, (with ForwardUrl) the forwarder's, (with Stripe) the sink's
    for mapping in mappings:
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    processor_queue_actions = {
        a
        for s in _statements(FUNCTIONS["UsageProcessorFunction"])
        if str(s["Resource"]) == str(Tag("GetAtt", "UsageQueue.Arn"))
        for a in _actions(s)
    }
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= (
        processor_queue_actions
    )


def test_secret_arns_are_matched_exactly() -> None:
    found = 0
    for name, props in FUNCTIONS.items():
        for statement in _statements(props):
            if "secretsmanager:GetSecretValue" not in _actions(statement):
                continue
            arn = statement["Resource"]
            text = arn.value if isinstance(arn, Tag) else str(arn)
            assert text.endswith("-??????"), (name, text)
            assert ":secret:${SecretsPrefix}/" in text, (name, text)
            found += 1
    assert found >= 4


def test_http_api_has_access_logs() -> None:
    [api] = resources_of(TEMPLATE, "AWS::Serverless::HttpApi").values()
    settings = api["AccessLogSettings"]
    assert settings["DestinationArn"] == Tag("GetAtt", "HttpApiAccessLogGroup.Arn")
    for field in ("$context.requestId", "$context.routeKey", "$context.status"):
        assert field in settings["Format"]
    assert "header" not in settings["Format"].lower()  # the webhook's auth header is a secret
    group = TEMPLATE["Resources"]["HttpApiAccessLogGroup"]["Properties"]
    assert "RetentionInDays" in group


def test_export_bucket_access_logging_is_a_parameter() -> None:
    assert TEMPLATE["Parameters"]["ExportAccessLogBucket"]["Default"] == ""
    logging = TEMPLATE["Resources"]["ExportBucket"]["Properties"]["LoggingConfiguration"]
    assert isinstance(logging, Tag) and logging.name == "If"
    assert logging.value[0] == "HasExportAccessLogBucket"
