"""moto, made to hold a load: the same answers, at a cost per request that barely grows.

**SQS**: the same answers, without rescanning the whole queue per message.

moto keeps a queue's messages in one list and, out of the box, answers from it in ways whose cost
grows with the queue's depth, several times per message:

- every received message checks the queue's retention period through ``get_queue_attributes``,
  which computes *all* attributes three times per name asked, each time counting the visible,
  delayed and in-flight messages over the whole list (nine passes per received message);
- every ``SendMessage`` reads ``queue.attributes`` (three passes);
- ``visible`` / ``delayed`` ask the clock through ``datetime`` arithmetic, once per message and
  pass;
- ``DeleteMessage`` walks the list twice per receipt handle.

With a few thousand messages queued (the intake accepts faster than one local processor drains)
that made the local stack spend most of its CPU time counting, and slow down as the queue grew.

``install()`` keeps every answer and rule of moto's SQS (visibility, delays, retention, receive
counts, redrive to the dead-letter queue) and changes only how they are computed:

- ``visible`` / ``delayed`` compare against ``time.time()`` (the clock moto's ``unix_time_millis``
  reads, without the ``datetime`` round trip);
- the three approximate counts are computed in one pass per ``attributes`` call, and
  ``get_queue_attributes`` computes ``attributes`` once per request;
- the retention check reads the queue's retention period directly;
- ``DeleteMessage`` finds the message in one pass.

What remains per request is moto's own receive loop: one pass picking the visible messages, a
few milliseconds at 4,000 queued (``tests/unit/test_local_moto_scaling.py``).

**EventBridge**: every ``PutEvents`` that matches a rule renders the target's input with
jsonpath-ng, and moto parses the rule's JSON paths anew each time, which builds a new yacc parser
per path (about a quarter of the local stack's CPU time under load). ``install()`` caches the
parsed paths (parsing is pure; a parsed path is only read when matched against an event).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import jsonpath_ng.ext
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend

_LOCK = threading.Lock()
_INSTALLED: list[bool] = []
_COUNTS = threading.local()  # the counts of the queue whose attributes this thread computes


def _now_ms() -> float:
    return time.time() * 1000.0


def _visible(self: Message) -> bool:
    return bool(_now_ms() > self.visible_at)


def _delayed(self: Message) -> bool:
    return bool(_now_ms() < self.delayed_until)


def message_counts(queue: Queue) -> tuple[int, int, int]:
    """(visible and not delayed, delayed, not visible) in one pass, as moto's three
    ``approximate_number_of_messages*`` properties count them."""
    now = _now_ms()
    ready = delayed = in_flight = 0
    for message in queue._messages:
        is_visible = now > message.visible_at
        is_delayed = now < message.delayed_until
        ready += is_visible and not is_delayed
        delayed += is_delayed
        in_flight += not is_visible
    return ready, delayed, in_flight


def _count(index: int) -> Callable[[Queue], int]:
    def count(self: Queue) -> int:
        snapshot = getattr(_COUNTS, "value", None)
        if snapshot is not None and snapshot[0] is self:
            return int(snapshot[1][index])
        return message_counts(self)[index]

    return count


def _attributes(original: Callable[[Queue], dict[str, Any]]) -> Callable[[Queue], dict[str, Any]]:
    def attributes(self: Queue) -> dict[str, Any]:
        _COUNTS.value = (self, message_counts(self))
        try:
            return original(self)
        finally:
            _COUNTS.value = None

    return attributes


def _get_queue_attributes(
    original: Callable[[SQSBackend, str, list[str]], dict[str, Any]],
) -> Callable[[SQSBackend, str, list[str]], dict[str, Any]]:
    def get_queue_attributes(
        self: SQSBackend, queue_name: str, attribute_names: list[str]
    ) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        valid = [*queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
        if not attribute_names or any(name not in valid for name in attribute_names):
            return original(self, queue_name, attribute_names)  # "All", nothing, or moto's error
        every = queue.attributes
        return {
            name: every[name]
            for name in attribute_names
            if name in every and every.get(name) is not None
        }

    return get_queue_attributes


def _retention_ok(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue: Any = self.get_queue(queue_name)  # moto sets the attribute from the queue's attributes
    retention_seconds = int(queue.message_retention_period)
    return bool(retention_seconds + (message.sent_timestamp or 0) / 1000 > time.time())


def _delete_message(self: Queue, receipt_handle: str) -> None:
    if receipt_handle in self.deleted_messages:
        return  # already deleted: SQS answers success again
    messages = self._messages
    for index, message in enumerate(messages):
        if message.had_receipt_handle(receipt_handle):
            self.pending_messages.discard(message)
            self.deleted_messages.update(h for h in message.all_receipt_handles if h)
            self._messages = messages[:index] + messages[index + 1 :]  # a new list, as moto
            return
    raise ReceiptHandleIsInvalid


def install() -> None:
    """Make moto's SQS (in this process) cost per message, not per queued message, and its
    EventBridge targets parse each input path once. Idempotent."""
    with _LOCK:
        if _INSTALLED:
            return
        Message.visible = property(_visible)  # type: ignore[method-assign,assignment]
        Message.delayed = property(_delayed)  # type: ignore[method-assign,assignment]
        Queue.approximate_number_of_messages = property(_count(0))  # type: ignore[method-assign,assignment]
        Queue.approximate_number_of_messages_delayed = property(_count(1))  # type: ignore[method-assign,assignment]
        Queue.approximate_number_of_messages_not_visible = property(_count(2))  # type: ignore[method-assign,assignment]
        original_attributes = Queue.__dict__["attributes"].fget
        assert original_attributes is not None
        Queue.attributes = property(_attributes(original_attributes))  # type: ignore[method-assign,assignment]
        SQSBackend.get_queue_attributes = _get_queue_attributes(  # type: ignore[method-assign,assignment]
            SQSBackend.get_queue_attributes
        )
        SQSBackend.is_message_valid_based_on_retention_period = _retention_ok  # type: ignore[method-assign]
        Queue.delete_message = _delete_message  # type: ignore[method-assign]
        # moto.events imports ``parse`` from jsonpath_ng.ext at each call, so this is what it gets.
        parse = jsonpath_ng.ext.parse  # type: ignore[attr-defined]
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(parse)  # type: ignore[attr-defined]
        _INSTALLED.append(True)
