"""The operator's command line against moto: quarantine review and resolution, DLQ inspection and
redrive, running reconciliation/export, and the audit trail every action leaves."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from conftest import REGION, Stack, load_event, ops_json, sqs_event, usage_message_body
from usage_meter import ops_cli

TID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01"  # submitted for acme-corp


def ops(stack: Stack, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    functions = ("--reconcile-function", "reconcile-fn", "--export-function", "export-fn")
    return ops_json(capsys, *stack.ops_location, *functions, *argv)


def drain(stack: Stack) -> dict[str, Any]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    )
    for m in messages:
        sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return stack.invoke_processor(sqs_event([m["Body"] for m in messages]))


def test_quarantined_mismatch_is_billed_to_the_chosen_customer(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.api.state.add(load_event("transcripts/completed.json"))
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp-eu")]))  # wrong customer
    [item] = ops(stack, capsys, "quarantine", "list")
    assert (item["reason"], item["message"]["attribution"]["customer_id"]) == (
        "customer_mismatch",
        "acme-corp-eu",
    )

    result = ops(
        stack,
        capsys,
        "quarantine",
        "resolve",
        item["id"],
        "--bill-to",
        "acme-corp-eu",
        "--reason",
        "customer renamed; webhook URL predates it",
    )
    assert result["outcome"] == "queued for billing to acme-corp-eu"
    assert drain(stack) == {"batchItemFailures": []}

    [row] = stack.items("ledger")
    assert (row["customer_id"], row["origin"], row["billable_seconds"]) == (
        "acme-corp-eu",
        "operator",
        754,
    )
    assert ops(stack, capsys, "quarantine", "list") == []
    entries = ops(stack, capsys, "audit")  # this month's trail
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("alice@ops", "quarantine.bill", item["id"])
    ]
    assert entries[0]["reason"] == "customer renamed; webhook URL predates it"


def test_dismissal_closes_the_item_without_billing(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.invoke_processor(sqs_event([usage_message_body("gone", "acme")]))  # 404 -> quarantined
    [item] = ops(stack, capsys, "quarantine", "list")
    ops(stack, capsys, "quarantine", "resolve", item["id"], "--dismiss", "--reason", "test upload")
    assert ops(stack, capsys, "quarantine", "list") == []
    assert stack.items("ledger") == []
    [entry] = stack.items("audit")
    assert (entry["action"], entry["outcome"]) == ("quarantine.dismiss", "dismissed")


def test_resolution_needs_a_reason_and_an_open_item(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = ops_cli.main(
        [
            *stack.ops_location,
            "quarantine",
            "resolve",
            "nope/x",
            "--dismiss",
            "--reason",
            "x",
        ]
    )
    assert code == 2
    assert "no open quarantined item" in capsys.readouterr().err
    assert stack.items("audit") == []


def test_dlq_list_shows_reasons_and_redrive_moves_messages_back(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.api.state.add(load_event("transcripts/completed.json"))
    stack.api.state.api_keys = {"rotated-away"}  # AssemblyAI rejects our key -> DLQ with reason
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")]))

    [dead] = ops(stack, capsys, "dlq", "list")
    assert dead["reason"] == "assemblyai_auth" and "401" in dead["detail"]
    assert len(ops(stack, capsys, "dlq", "list")) == 1  # listing leaves it there

    stack.api.state.api_keys = {"local-key-default"}  # the key is fixed
    assert ops(stack, capsys, "dlq", "redrive", "--reason", "fixed the API key") == {"moved": 1}
    assert ops(stack, capsys, "dlq", "list") == []
    assert drain(stack) == {"batchItemFailures": []}
    assert stack.items("ledger")[0]["customer_id"] == "acme-corp"
    [entry] = stack.items("audit")
    assert (entry["action"], entry["outcome"]) == ("dlq.redrive", "1 message(s) moved")


def test_reconcile_and_export_invoke_the_functions_and_are_audited(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str | None, dict[str, Any]]] = []

    def fake_invoke(name: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append((name, payload))
        return {"ok": True}

    monkeypatch.setattr(ops_cli, "_invoke", fake_invoke)
    ops(stack, capsys, "reconcile", "--horizon-days", "7", "--project", "eu", "--reason", "outage")
    ops(stack, capsys, "export", "--month", "2026-10", "--reason", "late data")
    assert calls == [
        ("reconcile-fn", {"horizon_days": 7, "project": "eu"}),
        ("export-fn", {"month": "2026-10"}),
    ]
    assert sorted(e["action"] for e in stack.items("audit")) == ["export", "reconcile"]


def test_dlq_listing_and_redrive_by_id_reach_past_the_first_ten_messages(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given 25 dead-lettered messages
    sqs = boto3.client("sqs", region_name=REGION)
    for n in range(25):
        sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=usage_message_body(f"t-{n}", "acme"))

    # When the operator lists them all, then redrives one found late in the listing
    listed = ops(stack, capsys, "dlq", "list")
    last = listed[-1]
    moved = ops(stack, capsys, "dlq", "redrive", "--id", last["message_id"], "--reason", "fixed")

    # Then every message was listed, only the chosen one moved, and the rest stay in the DLQ
    assert len({m["message_id"] for m in listed}) == 25
    assert moved == {"moved": 1}
    remaining = ops(stack, capsys, "dlq", "list")
    assert len(remaining) == 24
    assert last["message_id"] not in {m["message_id"] for m in remaining}
    assert [json.loads(m["Body"]) for m in stack.queue_messages(stack.queue_url)] == [
        json.loads(last["body"])
    ]


def test_a_conflict_cannot_be_billed_again_only_dismissed(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a transcript billed to acme-corp, then claimed with other facts (a conflict)
    stack.api.state.add(load_event("transcripts/completed.json"))
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp")]))
    # the same transcript delivered under another project (same customer and project would be a
    # duplicate settled from the ledger)
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp", project="eu")]))
    [item] = ops(stack, capsys, "quarantine", "list")
    assert item["reason"] == "conflict"

    # When the operator tries to bill it (to anyone)
    code = ops_cli.main(
        [
            *stack.ops_location,
            *("quarantine", "resolve", item["id"], "--bill-to", "globex", "--reason", "x"),
        ]
    )

    # Then it is refused and nothing moves: the item stays open, nothing is queued
    assert code == 2
    assert "conflict with usage already billed" in capsys.readouterr().err
    assert [i["id"] for i in ops(stack, capsys, "quarantine", "list")] == [item["id"]]
    assert stack.queue_messages(stack.queue_url) == []
    assert ops(
        stack, capsys, "quarantine", "resolve", item["id"], "--dismiss", "--reason", "re-run"
    ) == {"id": item["id"], "outcome": "dismissed"}


def test_a_failed_run_is_audited_too(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_invoke(name: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        raise SystemExit(f"error: {name} failed: ledger mismatch")

    monkeypatch.setattr(ops_cli, "_invoke", failing_invoke)
    with pytest.raises(SystemExit):
        ops_cli.main(
            [
                *stack.ops_location,
                *("--export-function", "export-fn"),
                *("export", "--month", "2026-10", "--reason", "late data"),
            ]
        )
    [entry] = stack.items("audit")
    assert (entry["action"], entry["outcome"]) == (
        "export",
        "failed: error: export-fn failed: ledger mismatch",
    )


def _unknown_project_item(stack: Stack, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp", project="apac")]))
    [item] = ops(stack, capsys, "quarantine", "list")
    assert item["reason"] == "unknown_project"
    return item  # type: ignore[no-any-return]


def test_billing_an_unknown_project_item_is_refused_not_requarantined(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runbook loop: billing re-queues the delivery with the same project, which the
    processor quarantines again under a new id. Refused (exit 2, one line); nothing changes."""
    item = _unknown_project_item(stack, capsys)
    argv = ("quarantine", "resolve", item["id"], "--bill-to", "acme-corp", "--reason", "x")
    assert ops_cli.main([*stack.ops_location, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("refused: ") and err.count("\n") == 1 and "--stack-name" in err
    assert [i["id"] for i in ops(stack, capsys, "quarantine", "list")] == [item["id"]]
    assert drain(stack) == {"batchItemFailures": []}  # nothing was queued
    assert stack.items("audit") == [] and stack.items("ledger") == []


@pytest.mark.parametrize(("configured", "refused"), [({"default"}, True), ({"apac"}, False)])
def test_billing_checks_the_items_project_against_the_configured_ones(
    stack: Stack, capsys: pytest.CaptureFixture[str], configured: set[str], refused: bool
) -> None:
    from usage_meter.adapters.audit_log import DynamoAuditLog
    from usage_meter.adapters.quarantine_store import DynamoQuarantine
    from usage_meter.adapters.queues import SqsUsageQueue
    from usage_meter.logic.operations import OperationRefused, resolve_quarantine

    item = _unknown_project_item(stack, capsys)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    held = DynamoQuarantine(dynamodb, stack.table)

    def resolve() -> str:
        return resolve_quarantine(
            ops_cli._quarantine_key(item["id"]),
            action="bill",
            customer_id="acme-corp",
            reason="project added",
            actor="alice@ops",
            store=held,
            audit=DynamoAuditLog(dynamodb, stack.table),
            queue=SqsUsageQueue(boto3.client("sqs", region_name=REGION), stack.queue_url),
            configured_projects=configured,
        )

    if refused:
        with pytest.raises(OperationRefused, match=r"project 'apac' .* is not configured"):
            resolve()
        assert len(ops(stack, capsys, "quarantine", "list")) == 1
    else:
        assert resolve() == "queued for billing to acme-corp"
        assert ops(stack, capsys, "quarantine", "list") == []


def test_the_configured_projects_come_from_the_stacks_parameter() -> None:
    parameters = [{"ParameterKey": "AssemblyAIProjects", "ParameterValue": '{"default": {}}'}]
    assert ops_cli._stack_projects(parameters) == frozenset({"default"})
    assert ops_cli._stack_projects([]) is None
    assert ops_cli._stack_projects([{"ParameterKey": "AssemblyAIProjects"}]) is None
