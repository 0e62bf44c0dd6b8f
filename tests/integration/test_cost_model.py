"""benchmarks/cost_model.py prices what each flow does: these tests run the flows through the real
handlers against moto and count every AWS call they make, the bytes they log (logs and EMF
metrics are billed by the byte) and the size of every item they write (write units are per KB).
A change that adds a call, a log line or a kilobyte fails here until the cost model says so."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import boto3
import botocore.client
import pytest
from benchmarks import cost_model
from test_streaming import begin_body, report_event, termination_body

from conftest import REGION, Stack, load_event, sqs_event

N = 10  # one full batch


@contextmanager
def counted_calls() -> Iterator[Counter[tuple[str, str]]]:
    """Every botocore API call made inside the block, by (service, operation)."""
    calls: Counter[tuple[str, str]] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(client: Any, operation: str, params: Any) -> Any:
        calls[(client.meta.service_model.service_name, operation)] += 1
        return original(client, operation, params)

    botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute name bytes + value bytes (numbers: ~1 byte per two
    significant digits + 1; maps and lists: 3 bytes + their elements + 1 per element)."""

    def size(value: Any) -> int:
        if isinstance(value, str):
            return len(value.encode())
        if isinstance(value, bool) or value is None:
            return 1
        if isinstance(value, (int, Decimal)):
            return len(str(value).replace("-", "").replace(".", "")) // 2 + 1 + 1
        if isinstance(value, dict):
            return 3 + sum(len(k.encode()) + size(v) + 1 for k, v in value.items())
        if isinstance(value, (list, set, tuple)):
            return 3 + sum(size(v) + 1 for v in value)
        return len(str(value))

    return sum(len(name.encode()) + size(value) for name, value in item.items())


def _webhooks(stack: Stack, count: int = N) -> list[dict[str, Any]]:
    base = load_event("apigw/webhook_completed.json")
    transcript = load_event("transcripts/completed.json")
    events = []
    for n in range(count):
        tid = f"6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1b{n:02d}"
        stack.api.state.add({**transcript, "id": tid})
        events.append({**base, "body": json.dumps({"transcript_id": tid, "status": "completed"})})
    return events


def _drain(stack: Stack) -> list[str]:
    """The queued bodies, then an empty queue (the event source would delete them)."""
    messages = stack.queue_messages(stack.queue_url)
    sqs = boto3.client("sqs", region_name=REGION)
    for m in messages:
        sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return [m["Body"] for m in messages]


def _per_event(calls: Counter[tuple[str, str]]) -> dict[tuple[str, str], Decimal]:
    return {k: Decimal(v) / N for k, v in calls.items() if k[0] != "secretsmanager"}


def _logged(capsys: pytest.CaptureFixture[str], run: Callable[[], object]) -> int:
    """Bytes the functions write to stdout (what Lambda sends to CloudWatch Logs) during run."""
    from usage_meter.handlers import streaming_report, usage_processor, webhook_intake

    capsys.readouterr()
    for module in (webhook_intake, usage_processor, streaming_report):
        module.logger.registered_handler.stream = sys.stdout  # this test's captured stdout
    run()
    return len(capsys.readouterr().out.encode())


def test_async_transcripts_make_the_calls_the_cost_model_prices(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given warm functions (secrets read once before) and ten new webhooks
    *events, warm = _webhooks(stack, N + 1)
    stack.invoke_intake(warm)
    stack.invoke_processor(sqs_event(_drain(stack)))

    # When the ten transcripts go through intake and processor (one batch)
    with counted_calls() as calls:
        logged = _logged(capsys, lambda: [stack.invoke_intake(e) for e in events])
    bodies = _drain(stack)
    assert len(bodies) == N
    with counted_calls() as processor_calls:
        logged += _logged(capsys, lambda: stack.invoke_processor(sqs_event(bodies)))
    calls.update(processor_calls)

    # Then they made the calls cost_model prices with every feature on (the pacer: worst case)
    per = _per_event(calls)
    pacer = per.pop(("dynamodb", "UpdateItem"))
    expected = cost_model.calls_with(cost_model.ASYNC_CALLS, "async", *cost_model.ALL_FEATURES)
    assert pacer <= expected.pop(("dynamodb", "UpdateItem"))
    assert per == expected
    assert logged / N <= cost_model.LOG_BYTES["async"], logged / N
    for entity in ("ledger", "aggregate"):
        assert all(item_bytes(i) <= cost_model.MAX_ITEM_BYTES for i in stack.items(entity))


def test_a_redelivery_costs_one_read_and_no_assemblyai_request(stack: Stack) -> None:
    events = _webhooks(stack)
    for event in events:
        stack.invoke_intake(event)
    bodies = _drain(stack)
    stack.invoke_processor(sqs_event(bodies))
    fetched = len(stack.api.state.requests)

    with counted_calls() as calls:
        for event in events:
            stack.invoke_intake(event)
    bodies = _drain(stack)
    with counted_calls() as processor_calls:
        stack.invoke_processor(sqs_event(bodies, receive_count=2))
    calls.update(processor_calls)

    assert _per_event(calls) == cost_model.calls_with(
        cost_model.DUPLICATE_CALLS, "duplicate", *cost_model.ALL_FEATURES
    )
    assert len(stack.api.state.requests) == fetched


def test_streaming_sessions_make_the_calls_the_cost_model_prices(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    def session(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        sid = f"b6a3f5d2-1c4e-4a7b-9e8f-0a1b2c3d4e{n:02d}"
        return (
            report_event("/streaming/sessions/begin", begin_body(session_id=sid)),
            report_event("/streaming/sessions/termination", termination_body(session_id=sid)),
        )

    warm_begin, warm_end = session(99)
    stack.invoke("StreamingReportFunction", warm_begin)
    stack.invoke("StreamingReportFunction", warm_end)

    def run() -> None:
        for n in range(N):
            for event in session(n):
                assert stack.invoke("StreamingReportFunction", event)["statusCode"] == 200

    with counted_calls() as calls:
        logged = _logged(capsys, run)

    assert _per_event(calls) == cost_model.calls_with(
        cost_model.STREAMING_CALLS, "streaming", *cost_model.ALL_FEATURES
    )
    assert logged / N <= cost_model.LOG_BYTES["streaming"], logged / N
    for entity in ("ledger", "aggregate", "session"):
        assert all(item_bytes(i) <= cost_model.MAX_ITEM_BYTES for i in stack.items(entity))


def test_the_model_reserves_budget_slots_as_the_pacer_does() -> None:
    from usage_meter.adapters import request_budget

    assert cost_model.PACER_LEASE == request_budget.LEASE


def _template_defaults(stack: Stack) -> None:
    """The template's own defaults: Allowances disabled, NotificationEvents auto with no
    consumer (no ForwardUrl, no EventsEndpointUrl, the stack's own bus)."""
    stack.parameters.pop("Allowances")
    stack.parameters.pop("NotificationEvents")


def test_with_the_template_defaults_a_transcript_makes_only_the_core_calls(stack: Stack) -> None:
    """No EventBridge event, no summary item, no threshold check: what the $6 target is judged
    on (benchmarks/cost_model.py ASYNC_CALLS and DUPLICATE_CALLS)."""
    _template_defaults(stack)
    *events, warm = _webhooks(stack, N + 1)
    stack.invoke_intake(warm)
    stack.invoke_processor(sqs_event(_drain(stack)))

    with counted_calls() as calls:
        for event in events:
            assert stack.invoke_intake(event)["statusCode"] == 200
    bodies = _drain(stack)  # the event source's receive and delete: modelled, not counted
    with counted_calls() as processor_calls:
        stack.invoke_processor(sqs_event(bodies))
    calls.update(processor_calls)
    per = _per_event(calls)
    assert per.pop(("dynamodb", "UpdateItem")) <= cost_model.ASYNC_CALLS[("dynamodb", "UpdateItem")]
    assert per == {k: v for k, v in cost_model.ASYNC_CALLS.items() if k[1] != "UpdateItem"}
    assert len(stack.items("ledger")) == N + 1
    assert stack.items("usage_summary") == []  # no summary kept with allowances off

    with counted_calls() as calls:  # the same transcripts again: settled from the ledger
        for event in events:
            stack.invoke_intake(event)
    bodies = _drain(stack)
    with counted_calls() as processor_calls:
        stack.invoke_processor(sqs_event(bodies, receive_count=2))
    calls.update(processor_calls)
    assert _per_event(calls) == cost_model.DUPLICATE_CALLS


def test_with_the_template_defaults_a_streaming_session_makes_only_the_core_calls(
    stack: Stack,
) -> None:
    _template_defaults(stack)
    sessions = [f"b6a3f5d2-1c4e-4a7b-9e8f-0a1b2c3d4e{n:02d}" for n in range(N)]
    with counted_calls() as calls:
        for sid in sessions:
            for path, body in (
                ("/streaming/sessions/begin", begin_body(session_id=sid)),
                ("/streaming/sessions/termination", termination_body(session_id=sid)),
            ):
                answer = stack.invoke("StreamingReportFunction", report_event(path, body))
                assert answer["statusCode"] == 200
    assert _per_event(calls) == cost_model.STREAMING_CALLS
    assert stack.items("usage_summary") == []


def test_the_allowance_routes_refuse_when_allowances_are_off(stack: Stack) -> None:
    """Nothing answers from a summary that is not kept: 409 allowances_disabled."""
    _template_defaults(stack)
    answer = stack.invoke(
        "EntitlementFunction",
        {
            "routeKey": "GET /customers/{customer_id}/entitlement",
            "pathParameters": {"customer_id": "acme"},
            "queryStringParameters": {"product": "async"},
        },
    )
    assert answer["statusCode"] == 409
    assert json.loads(answer["body"])["error"] == "allowances_disabled"
