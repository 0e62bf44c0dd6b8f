"""The local stack's moto server serializes what real DynamoDB serializes.

Real DynamoDB isolates a transaction from other transactions and from single-item writes
(serializable), and a ``TransactWriteItems`` retried with the same ``ClientRequestToken`` within
10 minutes succeeds without applying anything again (AWS DynamoDB Developer Guide, "Amazon
DynamoDB Transactions: How it works"; ``TransactWriteItems`` API, ``ClientRequestToken``). moto's
server out of the box does neither: a cancelled transaction puts back a copy of the whole table
taken when it started, erasing the writes of every request that committed meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from usage_meter_local import dynamodb_isolation
from usage_meter_local.moto_server import AwsClients, MotoServer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE = "RaceTable"
SOURCES = 40
COPIES_PER_SOURCE = 3  # duplicates: two of the three transactions of a source are cancelled
COUNTER_WRITES = 60  # single-item writes racing with the transactions


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[DynamoDBClient]:
    with MotoServer() as aws:
        client = AwsClients(aws.url, "eu-west-1").dynamodb
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
        )
        yield client


def _record(client: DynamoDBClient, source: str, month: str, **extra: Any) -> bool:
    """The processor's shape: ledger row (once) + ADD to the month's aggregate, atomically."""
    try:
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {"PK": {"S": f"USAGE#{source}"}, "SK": {"S": "ROW"}},
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"PK": {"S": "AGG"}, "SK": {"S": month}},
                        "UpdateExpression": "ADD usage_count :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ],
            **extra,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        return False
    return True


def _count(client: DynamoDBClient, month: str, sk: str = "") -> int:
    item = client.get_item(TableName=TABLE, Key={"PK": {"S": "AGG"}, "SK": {"S": sk or month}})
    return int(item.get("Item", {}).get("usage_count", {}).get("N", "0"))


def test_racing_writers_lose_nothing(dynamodb: DynamoDBClient) -> None:
    """Given 24 threads writing 40 sources three times each (120 transactions, 80 cancelled)
    and 60 single-item counter updates racing with them,
    then every source is recorded exactly once and no committed write is lost: the aggregate
    counts 40 and the counter 60 (moto unpatched loses writes here)."""
    recorded: list[bool] = []
    jobs = [("txn", f"src-{i}") for i in range(SOURCES) for _ in range(COPIES_PER_SOURCE)]
    jobs += [("counter", str(i)) for i in range(COUNTER_WRITES)]
    lock = threading.Lock()

    def worker(slice_: list[tuple[str, str]]) -> None:
        for kind, value in slice_:
            if kind == "txn":
                outcome = _record(dynamodb, value, "2026-11")
                with lock:
                    recorded.append(outcome)
            else:
                dynamodb.update_item(
                    TableName=TABLE,
                    Key={"PK": {"S": "AGG"}, "SK": {"S": "counter"}},
                    UpdateExpression="ADD usage_count :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )

    threads = [threading.Thread(target=worker, args=(jobs[i::24],)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert recorded.count(True) == SOURCES
    assert recorded.count(False) == SOURCES * (COPIES_PER_SOURCE - 1)
    assert _count(dynamodb, "2026-11") == SOURCES
    assert _count(dynamodb, "", sk="counter") == COUNTER_WRITES
    rows = dynamodb.scan(TableName=TABLE)["Items"]
    assert sum(1 for row in rows if row["PK"]["S"].startswith("USAGE#")) == SOURCES


def test_retry_with_the_same_token_does_not_apply_twice(dynamodb: DynamoDBClient) -> None:
    """Given a transaction that committed but whose answer was lost, when the SDK retries it with
    the same ClientRequestToken, then the retry succeeds (not a conflict with its own write) and
    the aggregate is added to once."""
    token = "retry-of-a-committed-transaction-01"
    assert _record(dynamodb, "retried", "2026-10", ClientRequestToken=token)
    assert _record(dynamodb, "retried", "2026-10", ClientRequestToken=token)
    assert _count(dynamodb, "2026-10") == 1
    # Without a token (or with a fresh one) the same write is a real duplicate: cancelled.
    assert not _record(dynamodb, "retried", "2026-10", ClientRequestToken="another-token-0001")
    assert _count(dynamodb, "2026-10") == 1


def test_token_reused_for_another_request_is_refused(dynamodb: DynamoDBClient) -> None:
    """The same token with other parameters inside the window: IdempotentParameterMismatch."""
    token = "token-used-for-two-requests-000001"
    assert _record(dynamodb, "first", "2026-09", ClientRequestToken=token)
    with pytest.raises(ClientError) as raised:
        _record(dynamodb, "second", "2026-09", ClientRequestToken=token)
    assert raised.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert _count(dynamodb, "2026-09") == 1


def test_failed_write_undoes_only_its_own_items(dynamodb: DynamoDBClient) -> None:
    """A transaction whose second write fails (ADD to a string) leaves its first write undone
    and every other item as it was."""
    dynamodb.put_item(
        TableName=TABLE, Item={"PK": {"S": "AGG"}, "SK": {"S": "text"}, "usage_count": {"S": "x"}}
    )
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {"PK": {"S": "USAGE#undo"}, "SK": {"S": "ROW"}},
                    }
                },
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"PK": {"S": "AGG"}, "SK": {"S": "text"}},
                        "UpdateExpression": "ADD usage_count :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )
    absent = dynamodb.get_item(TableName=TABLE, Key={"PK": {"S": "USAGE#undo"}, "SK": {"S": "ROW"}})
    assert "Item" not in absent
    kept = dynamodb.get_item(TableName=TABLE, Key={"PK": {"S": "AGG"}, "SK": {"S": "text"}})
    assert kept["Item"]["usage_count"] == {"S": "x"}


def test_token_ledger_is_bounded_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens are forgotten after the 10-minute window and beyond a fixed count (bounded memory)."""
    ledger = dynamodb_isolation._TokenLedger()
    clock = [1000.0]
    monkeypatch.setattr(dynamodb_isolation.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(dynamodb_isolation, "MAX_REMEMBERED_TOKENS", 2)
    ledger.remember("a", "d1")
    assert ledger.committed("a", "d1")
    clock[0] += dynamodb_isolation.TOKEN_WINDOW_SECONDS + 1
    assert not ledger.committed("a", "d1")
    for token in ("b", "c", "d"):
        ledger.remember(token, "d")
    assert not ledger.committed("b", "d")
    assert ledger.committed("d", "d")
