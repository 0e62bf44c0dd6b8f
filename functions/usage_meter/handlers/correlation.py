"""Correlation ids: API Gateway's request id (``requestContext.requestId``, also in the API's
access log) travels with the work it started, so one id finds every log line of one delivery.

- An HTTP function logs it as ``correlation_id`` on every line of the request.
- The webhook intake puts it on the usage message as the SQS message attribute ``correlation_id``
  and into the Received event's detail (``correlation_id``).
- The usage processor logs every line of a record with the record's id (thread-safe keys: the
  records of a batch run side by side) and puts it into the Processed event; the forwarder logs
  every line of a notification with the id from its Received event.

Plain dict access only: the intake imports this and its cold start stays lean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger

KEY = "correlation_id"  # the log key, the SQS message attribute and the event detail field
MAX_LENGTH = 128  # API Gateway's request ids are ~16 characters; anything longer is not one


def _clean(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_LENGTH and value.isprintable():
        return value
    return None


def from_api_event(event: Mapping[str, Any]) -> str | None:
    """The API request's id (``requestContext.requestId``), if the event has one."""
    return _clean((event.get("requestContext") or {}).get("requestId"))


def from_sqs_record(record: Mapping[str, Any]) -> str | None:
    """The ``correlation_id`` message attribute of an SQS record as Lambda delivers it."""
    attribute = (record.get("messageAttributes") or {}).get(KEY) or {}
    return _clean(attribute.get("stringValue"))


def from_event_body(body: str) -> str | None:
    """The ``correlation_id`` of an EventBridge event delivered as an SQS message body."""
    try:
        detail = json.loads(body).get("detail") or {}
    except (ValueError, AttributeError):
        return None
    return _clean(detail.get(KEY)) if isinstance(detail, dict) else None


def current(logger: Logger) -> str | None:
    """The id this thread's (or this invocation's) log lines carry now."""
    return _clean(logger.thread_safe_get_current_keys().get(KEY)) or logger.get_correlation_id()


@contextmanager
def for_record(logger: Logger, correlation_id: str | None) -> Iterator[None]:
    """Every log line this thread writes inside carries ``correlation_id`` (when there is one)."""
    if correlation_id is None:
        yield
        return
    logger.thread_safe_append_keys(**{KEY: correlation_id})
    try:
        yield
    finally:
        logger.thread_safe_remove_keys([KEY])
