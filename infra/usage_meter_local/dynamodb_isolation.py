"""moto's DynamoDB, made to serialize what real DynamoDB serializes.

moto's server answers requests on many threads and its DynamoDB backend takes no lock, so out of
the box:

- a transaction is not isolated from a concurrent one: ``TransactWriteItems`` snapshots each
  table it touches with a deep copy of the *whole table* and, when it is cancelled, puts that copy
  back, erasing every write another request made in between (lost writes under load, and a copy of
  the table per transaction: memory grew until the kernel killed the local stack at about 3,000
  webhooks);
- ``ClientRequestToken`` is ignored, so when an SDK retries a transaction whose answer was lost
  (or that is still running), the retry runs again and is cancelled by the first run's own write.

Real DynamoDB applies each request atomically, isolates transactions from each other and from
single-item writes (serializable), and makes ``TransactWriteItems`` idempotent for 10 minutes per
client token: an identical call returns success without applying anything again, a call with the
same token and other parameters fails with ``IdempotentParameterMismatchException``. Sources:
AWS DynamoDB Developer Guide, "Amazon DynamoDB Transactions: How it works" (isolation levels,
idempotency) and the ``ClientRequestToken`` documentation of the ``TransactWriteItems`` API
(botocore's service model marks it ``idempotencyToken``, so every boto3 call carries one and its
retries reuse it).

``install()`` gives the local stack's moto server those semantics:

- every DynamoDB request runs under one lock (moto's backend is in memory, so one request takes
  well under a millisecond of the lock; a request is then atomic, as on AWS);
- a transaction checks every condition first, then applies its writes, undoing only the items it
  touched if one of them fails: no copy of the table, no lost writes of other requests;
- a client token of a transaction that succeeded in the last 10 minutes answers success without
  applying anything again (a different request under the same token is refused).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    DynamodbException,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' documented limit
TOKEN_WINDOW_SECONDS = 600.0  # "valid for 10 minutes after the first request ... is completed"
MAX_REMEMBERED_TOKENS = 100_000  # bounded memory: older tokens are forgotten first

_LOCK = threading.RLock()
_INSTALLED: list[bool] = []  # non-empty once install() ran


class IdempotentParameterMismatch(DynamodbException):
    """The client token was used in the last 10 minutes for a different request."""

    def __init__(self) -> None:
        super().__init__(
            "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
            "The request uses the same client token as a previous, but non-identical request.",
        )


class _TokenLedger:
    """Client tokens of committed transactions: token -> (digest of the request, when)."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def committed(self, token: str, digest: str) -> bool:
        """True when ``token`` committed this very request within the window; raises
        ``IdempotentParameterMismatch`` when it committed another one."""
        self._forget(time.monotonic())
        seen = self._seen.get(token)
        if seen is None:
            return False
        if seen[0] != digest:
            raise IdempotentParameterMismatch
        return True

    def remember(self, token: str, digest: str) -> None:
        self._seen[token] = (digest, time.monotonic())
        self._seen.move_to_end(token)
        while len(self._seen) > MAX_REMEMBERED_TOKENS:
            self._seen.popitem(last=False)

    def _forget(self, now: float) -> None:
        while self._seen:
            _, (_, at) = next(iter(self._seen.items()))
            if now - at <= TOKEN_WINDOW_SECONDS:
                return
            self._seen.popitem(last=False)


TOKENS = _TokenLedger()


def _key_of(table: Table, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    attrs = op["Item"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    missing = [name for name in names if name not in attrs]
    if missing:
        raise MockValidationException(
            f"One or more parameter values were invalid: Missing the key {missing[0]} in the item"
        )
    return {name: attrs[name] for name in names}


def _restore(table: Table, key: dict[str, Any], before: Item | None) -> None:
    """Put one item back as it was before the transaction (absent: delete it)."""
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    if before is None:
        table.delete_item(hash_value, range_value)
    elif range_value is not None:
        table.items[hash_value][range_value] = before
    else:
        table.items[hash_value] = before  # type: ignore[assignment]


Step = tuple[str, dict[str, Any], Table, dict[str, Any]]  # (operation, its body, table, key)


def _plan(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Step]:
    """The transaction's steps, refused as DynamoDB refuses them (size, shape, one op per item)."""
    if len(transact_items) > MAX_TRANSACTION_ITEMS:
        raise TooManyTransactionsException
    steps: list[Step] = []
    seen: set[tuple[str, str]] = set()
    for entry in transact_items:
        if len(entry) != 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise MockValidationException(f"Unsupported transaction operation {op_type}")
        table = backend.get_table(op["TableName"])
        key = _key_of(table, op_type, op)
        identity = (op["TableName"], json.dumps(key, sort_keys=True, default=str))
        if identity in seen:
            raise MultipleTransactionsException
        seen.add(identity)
        steps.append((op_type, op, table, key))
    return steps


def _check_conditions(backend: DynamoDBBackend, steps: list[Step]) -> None:
    """Every condition against the state before any write; TransactionCanceledException with one
    reason per item (``None`` for those that passed) when one fails."""
    reasons: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for _, op, _, key in steps:
        condition = op.get("ConditionExpression")
        current = backend.get_item(op["TableName"], key)
        if condition is None or get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current):
            reasons.append((None, None, None))
            continue
        old = None
        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None:
            old = current.to_json()["Attributes"]
        reasons.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)


def _apply(backend: DynamoDBBackend, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if op_type == "Put":
        backend.put_item(
            op["TableName"],
            op["Item"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )
    elif op_type == "Delete":
        backend.delete_item(op["TableName"], key)
    elif op_type == "Update":
        backend.update_item(
            op["TableName"],
            key,
            update_expression=op["UpdateExpression"],
            condition_expression=None,
            expression_attribute_names=names or {},
            expression_attribute_values=values or {},
        )


def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """All-or-nothing ``TransactWriteItems`` that undoes only the items it touched.

    Conditions are evaluated against the state before any write (DynamoDB cancels the whole
    transaction with one reason per item); writes are then applied in order, and an error in one
    of them undoes the ones before. Runs under the request lock.
    """
    steps = _plan(backend, transact_items)
    _check_conditions(backend, steps)
    undo: list[tuple[Table, dict[str, Any], Item | None]] = []
    try:
        for op_type, op, table, key in steps:
            undo.append((table, key, copy.deepcopy(backend.get_item(op["TableName"], key))))
            _apply(backend, op_type, op, key)
    except Exception:
        for table, key, before in reversed(undo):
            _restore(table, key, before)
        raise


def _request_digest(body: dict[str, Any]) -> str:
    canonical = {name: value for name, value in body.items() if name != "ClientRequestToken"}
    text = json.dumps(canonical, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    def locked(self: DynamoHandler, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(self, *args, **kwargs)

    locked.__wrapped__ = method  # type: ignore[attr-defined]
    return locked


def install() -> None:
    """Give moto's DynamoDB (in this process) AWS's isolation and idempotency. Idempotent."""
    with _LOCK:
        if _INSTALLED:
            return
        handler_transact = DynamoHandler.transact_write_items

        def transact_with_token(self: DynamoHandler) -> Any:
            token = self.body.get("ClientRequestToken")
            if token is None:
                return handler_transact(self)
            digest = _request_digest(self.body)
            if TOKENS.committed(token, digest):
                return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
            answer = handler_transact(self)
            TOKENS.remember(token, digest)
            return answer

        DynamoHandler.transact_write_items = transact_with_token  # type: ignore[method-assign]
        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign,assignment]
        DynamoHandler.call_action = _serialized(DynamoHandler.call_action)  # type: ignore[method-assign]
        _INSTALLED.append(True)
