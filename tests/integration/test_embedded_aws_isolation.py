"""The session's one embedded AWS (tests/embedded_aws.py) gives every test a freshly provisioned
stack: whatever a test wrote or changed is gone when the next test asks for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import API_KEYS, WEBHOOK_SECRET, Stack, usage_message_body
from embedded_aws import EmbeddedAws
from usage_meter_local.assemblyai_standin import AssemblyAIStandIn, transcript


def _state(stack: Stack, aws: EmbeddedAws) -> dict[str, Any]:
    sqs, s3, secrets = aws.client("sqs"), aws.client("s3"), aws.client("secretsmanager")
    return {
        "items": aws.table(stack.table).scan()["Items"],
        "messages": {
            url: sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            for url in stack.resources.queue_urls.values()
        },
        "objects": s3.list_objects_v2(Bucket=stack.bucket).get("KeyCount"),
        "queues": sorted(sqs.list_queues().get("QueueUrls", [])),
        "tables": aws.client("dynamodb").list_tables()["TableNames"],
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "secrets": {
            s["Name"]: secrets.get_secret_value(SecretId=s["Name"])["SecretString"]
            for s in secrets.list_secrets()["SecretList"]
        },
        "visibility": sqs.get_queue_attributes(
            QueueUrl=stack.queue_url, AttributeNames=["VisibilityTimeout"]
        )["Attributes"],
    }


def _write_data(stack: Stack, aws: EmbeddedAws) -> None:
    aws.table(stack.table).put_item(Item={"PK": "x", "SK": "y", "entity": "ledger"})
    sqs = aws.client("sqs")
    for url in stack.resources.queue_urls.values():
        sqs.send_message(QueueUrl=url, MessageBody=usage_message_body("t-1", "acme"))
        sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=900)
    sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=900)  # one in flight
    aws.client("s3").put_object(Bucket=stack.bucket, Key="exports/a.csv", Body=b"a")


def test_data_is_cleared_without_a_full_reset(stack: Stack, embedded_aws: EmbeddedAws) -> None:
    before = _state(stack, embedded_aws)
    resets = embedded_aws.full_resets

    _write_data(stack, embedded_aws)
    assert _state(stack, embedded_aws) != before
    embedded_aws.fresh()

    assert _state(stack, embedded_aws) == before
    assert embedded_aws.full_resets == resets
    assert before["items"] == [] and before["objects"] == 0
    assert json.loads(before["secrets"]["usage-meter/webhook-auth"])["current"] == WEBHOOK_SECRET


def _rotate_secret(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("secretsmanager").put_secret_value(
        SecretId="usage-meter/webhook-auth", SecretString='{"current": "rotated"}'
    )


def _delete_secret(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("secretsmanager").delete_secret(
        SecretId="usage-meter/report-signing", ForceDeleteWithoutRecovery=True
    )


def _add_secret(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("secretsmanager").create_secret(Name="usage-meter/extra", SecretString="{}")


def _delete_queue(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("sqs").delete_queue(QueueUrl=stack.queue_url)


def _add_queue(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("sqs").create_queue(QueueName="extra")


def _change_queue(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("sqs").set_queue_attributes(
        QueueUrl=stack.queue_url, Attributes={"VisibilityTimeout": "1"}
    )


def _delete_table(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("dynamodb").delete_table(TableName=stack.table)


def _add_table(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("dynamodb").create_table(
        TableName="extra",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _version_bucket(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("s3").put_bucket_versioning(
        Bucket=stack.bucket, VersioningConfiguration={"Status": "Enabled"}
    )


def _add_bucket(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("s3").create_bucket(
        Bucket="extra-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )


def _use_another_service(aws: EmbeddedAws, stack: Stack) -> None:
    aws.client("sns").create_topic(Name="alarms")


@pytest.mark.parametrize(
    "change",
    [
        _rotate_secret,
        _delete_secret,
        _add_secret,
        _delete_queue,
        _add_queue,
        _change_queue,
        _delete_table,
        _add_table,
        _version_bucket,
        _add_bucket,
        _use_another_service,
    ],
)
def test_any_other_change_is_undone_by_a_full_reset(
    stack: Stack, embedded_aws: EmbeddedAws, change: Callable[[EmbeddedAws, Stack], None]
) -> None:
    before = _state(stack, embedded_aws)
    resets = embedded_aws.full_resets

    if change not in (_delete_queue, _delete_table):
        _write_data(stack, embedded_aws)
    change(embedded_aws, stack)
    embedded_aws.fresh()

    assert _state(stack, embedded_aws) == before
    assert embedded_aws.full_resets == resets + 1
    if change is _use_another_service:
        assert embedded_aws.client("sns").list_topics()["Topics"] == []


def test_the_assemblyai_stand_in_starts_empty_with_the_project_keys(
    assemblyai: AssemblyAIStandIn,
) -> None:
    assert assemblyai.state.transcripts == {}
    assert assemblyai.state.faults == {}
    assert assemblyai.state.requests == []
    assert assemblyai.state.api_keys == set(API_KEYS.values())
    assemblyai.state.add(transcript("t-left-behind", webhook_url=None))
    assemblyai.state.fail("list", 500)

    assert assemblyai.reset().transcripts == {}
    assert assemblyai.state.faults == {}


def test_a_long_poll_of_an_empty_queue_answers_at_once_and_one_that_can_end_waits(
    stack: Stack, embedded_aws: EmbeddedAws
) -> None:
    import time

    sqs = embedded_aws.client("sqs")
    started = time.monotonic()
    assert sqs.receive_message(QueueUrl=stack.dlq_url, WaitTimeSeconds=5).get("Messages") is None
    assert time.monotonic() - started < 2  # moto alone would wait the 5 s

    sqs.send_message(QueueUrl=stack.dlq_url, MessageBody="soon", DelaySeconds=1)
    started = time.monotonic()
    [message] = sqs.receive_message(QueueUrl=stack.dlq_url, WaitTimeSeconds=5)["Messages"]
    assert message["Body"] == "soon" and 0.5 < time.monotonic() - started < 5
