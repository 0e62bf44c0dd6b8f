"""How the usage table's adapters call DynamoDB, and how its errors become domain errors.

- ``TableAdapter``: the client and table name every adapter over the usage table holds, with the
  paged Query helpers they share.
- ``failure``: the one translation of a DynamoDB/botocore error into ``TransientFailure`` or
  ``PermanentFailure``; no ``ClientError`` leaves an adapter.
- Retries that already committed: boto3 retries a call whose answer was lost, so every write is
  idempotent for its caller. Transactions carry a ``ClientRequestToken`` (``new_token``, one per
  call, reused by the SDK's retries: DynamoDB applies it once and answers the retry with success).
  A conditional put carries a ``write_id`` and asks for the item on a failed condition
  (``ReturnValuesOnConditionCheckFailure=ALL_OLD``): when the item there is its own write
  (``own_write``), the retry's outcome is the first attempt's, never a duplicate or conflict.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.adapters.usage_keys import from_item, to_item
from usage_meter.logic.errors import (
    STORAGE_REFUSED,
    PermanentFailure,
    TransientFailure,
    UnstorableUsage,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AWS_ERRORS = (ClientError, BotoCoreError)
PERMANENT_DYNAMODB_ERRORS = frozenset({"ValidationException"})


class TableAdapter:
    """Base of the usage table's adapters: ``client`` (a DynamoDB client) and ``table_name``."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a Query (all pages), as Python values. Raises a domain error."""
        return list(self._pages(**kwargs))

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The items of a Query, one page at a time (memory: one page, at most 1 MB)."""
        paginator = self._client.get_paginator("query")
        try:
            for page in paginator.paginate(TableName=self._table, **kwargs):
                for item in page.get("Items", []):
                    yield from_item(item)
        except AWS_ERRORS as exc:
            raise failure("query", exc) from exc

    def _batch_get(
        self, keys: list[dict[str, Any]], projection: str | None = None, *, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """The items at ``keys`` (PK/SK values; those that exist), in the order of ``keys``, as
        Python values: BatchGetItem, 100 keys a request (DynamoDB's limit), unprocessed keys asked
        again. ``projection``: attributes besides PK and SK. Raises a domain error."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        extra: dict[str, Any] = {"ConsistentRead": consistent}
        if projection:
            extra["ProjectionExpression"] = f"PK, SK, {projection}"
        for start in range(0, len(keys), 100):
            chunk = [to_item(k) for k in keys[start : start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": chunk, **extra}}
            while request:
                try:
                    answer = self._client.batch_get_item(RequestItems=request)
                except AWS_ERRORS as exc:
                    raise failure("batch read", exc) from exc
                for item in answer.get("Responses", {}).get(self._table, []):
                    values = from_item(item)
                    found[str(values["PK"]), str(values["SK"])] = values
                request = answer.get("UnprocessedKeys") or {}
        wanted = ((str(k["PK"]), str(k["SK"])) for k in keys)
        return [found[k] for k in wanted if k in found]


def new_token() -> str:
    """One idempotency token per logical write (36 characters: ClientRequestToken's maximum)."""
    return str(uuid.uuid4())


def error_code(exc: Exception) -> str | None:
    """The AWS error code of a ClientError (None for any other error)."""
    return exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None


def condition_failed(exc: Exception) -> bool:
    """Whether a single-item write failed only its condition."""
    return error_code(exc) == "ConditionalCheckFailedException"


def own_write(exc: ClientError, write_id: str) -> bool:
    """Whether a failed ``attribute_not_exists`` put found its own earlier attempt's item (the
    first attempt committed, its answer was lost and the SDK retried)."""
    old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
    stored = old.get("write_id")
    return isinstance(stored, dict) and stored.get("S") == write_id


def raise_if_unstorable(exc: ClientError) -> None:
    """A ValidationException can never succeed on a retry: UnstorableUsage, with DynamoDB's
    reason (it names limits, never the values)."""
    error = exc.response.get("Error", {})
    reasons = exc.response.get("CancellationReasons") or []
    invalid = any(r.get("Code") == "ValidationError" for r in reasons)
    if error.get("Code") == "ValidationException" or invalid:
        code = error.get("Code", "")
        raise UnstorableUsage(
            f"DynamoDB refused the usage ({code}): {error.get('Message', '')}"[:500]
        ) from exc


def ledger_row_exists(exc: ClientError) -> bool:
    """True when a transaction was cancelled only because its first item's condition failed
    (for the ledger's writes: the ledger row already exists)."""
    error = exc.response.get("Error", {})
    if error.get("Code") != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    if reasons:
        return reasons[0].get("Code") == "ConditionalCheckFailed"
    return "ConditionalCheckFailed" in str(error.get("Message", ""))


def transaction_conflict(exc: ClientError) -> bool:
    """True when a transaction was cancelled for a conflict with another one (nothing was
    written; retrying is safe) and not because the ledger row exists."""
    error = exc.response.get("Error", {})
    if error.get("Code") != "TransactionCanceledException" or ledger_row_exists(exc):
        return False
    reasons = exc.response.get("CancellationReasons") or []
    if reasons:
        return any(r.get("Code") == "TransactionConflict" for r in reasons)
    return "TransactionConflict" in str(error.get("Message", ""))


def failure(action: str, exc: Exception) -> TransientFailure | PermanentFailure:
    """A DynamoDB error as a domain error: PermanentFailure (reason ``dynamodb_validation``) when
    the request itself is invalid, which no retry can fix (a ValidationException, or a
    transaction cancelled for a ValidationError); TransientFailure for everything else
    (throttling, 5xx, network, a condition that may pass later)."""
    code = error_code(exc)
    text = f"DynamoDB could not {action}: {code or type(exc).__name__}: {exc}"
    if isinstance(exc, ClientError):
        reasons = exc.response.get("CancellationReasons") or []
        invalid = any(r.get("Code") == "ValidationError" for r in reasons)
        if code in PERMANENT_DYNAMODB_ERRORS or invalid:
            return PermanentFailure(STORAGE_REFUSED, text)
    return TransientFailure(text)
