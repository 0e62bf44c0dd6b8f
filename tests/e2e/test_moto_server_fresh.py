"""A local moto server started in a process where an earlier one ran begins empty.

moto keeps its backends per process. pytest-xdist's worksteal can run a module's tests apart, so
the module's stack is set up again after another module ran in between; the second server saw
the first one's tables and provisioning failed with "Table already exists" (seen in CI)."""

from __future__ import annotations

import pytest

from usage_meter_local.moto_server import AwsClients, MotoServer

pytestmark = pytest.mark.slow  # beside the other in-process local stacks (the session's moto off)


def _tables_after_creating_one() -> tuple[list[str], list[str]]:
    with MotoServer() as aws:
        clients = AwsClients(aws.url, "eu-west-1")
        before = clients.dynamodb.list_tables()["TableNames"]
        clients.dynamodb.create_table(
            TableName="Left",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        return before, clients.dynamodb.list_tables()["TableNames"]


def test_a_second_server_in_the_same_process_starts_without_the_first_ones_tables() -> None:
    first_before, first_after = _tables_after_creating_one()
    second_before, _ = _tables_after_creating_one()
    assert (first_before, first_after) == ([], ["Left"])
    assert second_before == []
