"""Stripe Billing meter events through the official ``stripe`` SDK (``StripeClient``), and the
usage table items the sink keeps: the company's customer -> Stripe customer mapping and a marker
per sent source.

- mapping: PK ``STRIPE_CUSTOMER#<customer>``, SK ``MAPPING`` (``stripe_customer_id``).
- sent:    PK ``STRIPE_SENT#<identifier>``, SK ``METER_EVENT`` (value, event name, sent_at).

The SDK's own network retries are off: SQS redelivery (with the message's receive count) is the
one retry mechanism, so a slow Stripe never multiplies requests inside one invocation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import stripe
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.stripe_sink import MeterEvent, SinkRefused

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()


class StripeMeterEvents:
    """``StripeMeter`` over ``POST /v1/billing/meter_events``."""

    def __init__(self, api_key: str, base_url: str | None = None, timeout: float = 10) -> None:
        options: dict[str, Any] = {"max_network_retries": 0}
        if base_url:
            options["base_addresses"] = {"api": base_url}
        self._client = stripe.StripeClient(
            api_key, http_client=stripe.RequestsClient(timeout=timeout), **options
        )

    def send(self, event: MeterEvent) -> None:
        try:
            self._client.v1.billing.meter_events.create(
                params={
                    "event_name": event.event_name,
                    "identifier": event.identifier,
                    "payload": {
                        "stripe_customer_id": event.stripe_customer_id,
                        "value": event.value,
                    },
                    "timestamp": event.timestamp,
                }
            )
        except (stripe.RateLimitError, stripe.APIConnectionError) as exc:
            raise TransientFailure(f"Stripe unavailable ({type(exc).__name__})") from exc
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            raise TransientFailure(f"Stripe refused the API key ({exc.http_status})") from exc
        except stripe.InvalidRequestError as exc:
            detail = f"{exc.code or exc.http_status}: {exc.user_message}"
            raise SinkRefused("stripe_rejected", detail) from exc
        except stripe.StripeError as exc:  # 5xx and anything else: retry through SQS
            raise TransientFailure(f"Stripe error ({exc.http_status})") from exc


class DynamoSinkStore:
    """``SinkStore`` in the usage table (the only code that knows these keys)."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key={k: {"S": v} for k, v in key.items()},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(f"DynamoDB read failed: {type(exc).__name__}") from exc
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None

    def stripe_customer(self, customer_id: str) -> str | None:
        item = self._get({"PK": f"STRIPE_CUSTOMER#{customer_id}", "SK": "MAPPING"})
        return str(item["stripe_customer_id"]) if item else None

    def map_customer(self, customer_id: str, stripe_customer_id: str) -> None:
        self._put(
            {
                "PK": f"STRIPE_CUSTOMER#{customer_id}",
                "SK": "MAPPING",
                "entity": "stripe_customer",
                "customer_id": customer_id,
                "stripe_customer_id": stripe_customer_id,
                "mapped_at": datetime.now(UTC).isoformat(),
            }
        )

    def sent_value(self, identifier: str) -> str | None:
        item = self._get({"PK": f"STRIPE_SENT#{identifier}", "SK": "METER_EVENT"})
        return str(item["value"]) if item else None

    def mark_sent(self, identifier: str, value: str, event_name: str) -> None:
        self._put(
            {
                "PK": f"STRIPE_SENT#{identifier}",
                "SK": "METER_EVENT",
                "entity": "stripe_sent",
                "value": value,
                "event_name": event_name,
                "sent_at": datetime.now(UTC).isoformat(),
            }
        )

    def _put(self, values: dict[str, str]) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={k: _serializer.serialize(v) for k, v in values.items()},
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientFailure(f"DynamoDB write failed: {type(exc).__name__}") from exc
