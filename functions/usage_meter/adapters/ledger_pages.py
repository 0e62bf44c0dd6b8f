"""A customer's ledger rows and the month's customers, a page at a time (port
``logic.drill_down.DrillDownReader``): one Query on the customer's GSI1 ledger shard
(``LEDGER#<month>#<shard>``), or on the month's aggregate keys (``LedgerByMonth``) for the
customer list. Opaque cursors
(``usage_keys.encode_cursor``); a cursor this module did not issue is a ValueError."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from usage_meter.adapters.table_access import AWS_ERRORS, TableAdapter, failure
from usage_meter.adapters.usage_keys import (
    LEDGER_INDEX,
    customer_key,
    customer_ledger_shard,
    decode_cursor,
    encode_cursor,
    from_item,
    ledger_partition,
    record_from_item,
    to_item,
)
from usage_meter.models.usage import UsageRecord


class DynamoLedgerPages(TableAdapter):
    """The usage API's paged reads."""

    def _customer_rows(self, customer_id: str, month: str) -> dict[str, Any]:
        return {
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk AND begins_with(GSI1SK, :customer)",
            "ExpressionAttributeValues": to_item(
                {
                    ":pk": ledger_partition(month, customer_ledger_shard(customer_id)),
                    ":customer": f"{customer_key(customer_id)}#",
                }
            ),
        }

    def customer_ledger_page(
        self, customer_id: str, month: str, limit: int, cursor: str | None = None
    ) -> tuple[list[UsageRecord], str | None]:
        """One page (at most ``limit`` rows) of a customer's ledger rows in a month, ordered by
        (product, source id), and the opaque cursor of the next page (None on the last). One
        Query on the customer's ledger shard; raises ValueError for a cursor it did not issue."""
        kwargs: dict[str, Any] = {**self._customer_rows(customer_id, month), "Limit": limit}
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor)
        try:
            response = self._client.query(TableName=self._table, **kwargs)
        except AWS_ERRORS as exc:
            raise failure("query", exc) from exc
        rows = [record_from_item(from_item(i)) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return rows, (encode_cursor(last) if last else None)

    def customers_page(
        self, month: str, limit: int, after: str | None = None
    ) -> tuple[list[str], str | None]:
        """Customers with billed usage in ``month``, in id order, at most ``limit``, starting after
        customer ``after``; and the customer to continue after (None on the last page). Reads the
        month's aggregates (a customer has one per breakdown: their keys on LedgerByMonth, then
        BatchGetItem), never the ledger."""
        start = f"CUSTOMER#{customer_key(after)}#\U0010ffff" if after else "CUSTOMER#"
        found: list[str] = []
        for item in self._month_aggregate_items(month, start):
            if int(item.get("usage_count", 0)) <= 0:
                continue  # an aggregate emptied by a row that moved month
            customer = str(item["customer_id"])
            if found and found[-1] == customer:
                continue
            if len(found) == limit:
                return found, found[-1]
            found.append(customer)
        return found, None

    def _month_aggregate_items(self, month: str, start: str) -> Iterator[dict[str, Any]]:
        """``customer_id`` and ``usage_count`` of the month's aggregates after ``start`` (an
        LMSK), in LMSK order: a page of keys on LedgerByMonth, then BatchGetItem per 100."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=LEDGER_INDEX,
            KeyConditionExpression="LMPK = :pk AND LMSK > :start",
            ExpressionAttributeValues=to_item({":pk": f"MONTH#{month}", ":start": start}),
        )
        try:
            for page in pages:
                keys = [from_item(i) for i in page.get("Items", [])]
                chunk = [{"PK": k["PK"], "SK": k["SK"]} for k in keys]
                yield from self._batch_get(chunk, "customer_id, usage_count")
        except AWS_ERRORS as exc:
            raise failure("query", exc) from exc

    def customer_ledger_rows(self, customer_id: str, month: str) -> Iterator[UsageRecord]:
        """All of a customer's ledger rows in a month, page by page (one Query on its shard)."""
        for item in self._pages(**self._customer_rows(customer_id, month)):
            yield record_from_item(item)
