"""The ops CLI as a newcomer meets it: readable tables by default (``--json`` for scripts), one
line and an exit code for every error instead of a traceback, and nothing hidden."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import boto3
import pytest

from conftest import Stack, load_event, sqs_event, usage_message_body
from usage_meter import ops_cli

TID = "6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a01"  # submitted for acme-corp


def cli(stack: Stack, *argv: str) -> int:
    return ops_cli.main(
        [
            *stack.ops_location,
            *("--reconcile-function", "reconcile-fn", "--actor", "alice@ops"),
            *argv,
        ]
    )


def _quarantine_one(stack: Stack) -> None:
    stack.api.state.add(load_event("transcripts/completed.json"))
    stack.invoke_processor(sqs_event([usage_message_body(TID, "acme-corp-eu")]))  # wrong customer


def test_lists_are_tables_by_default_and_json_on_request(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    _quarantine_one(stack)
    capsys.readouterr()

    assert cli(stack, "quarantine", "list") == 0
    header, rule, row = capsys.readouterr().out.splitlines()
    assert header.split()[0] == "id" and "reason" in header.split() and set(rule) <= {"-", " "}
    assert row.startswith(TID) and "customer_mismatch" in row

    assert cli(stack, "--json", "quarantine", "list") == 0
    [item] = json.loads(capsys.readouterr().out)
    assert item["id"].startswith(TID + "/")

    assert cli(stack, "audit") == 0
    assert capsys.readouterr().out.strip() == "(none)"


@pytest.mark.parametrize("bad_id", [TID, f"{TID}/", "/RECORD#x", ""])
def test_quarantine_show_of_a_malformed_id_is_a_usage_error_not_a_dynamodb_failure(
    stack: Stack, capsys: pytest.CaptureFixture[str], bad_id: str
) -> None:
    assert cli(stack, "quarantine", "show", bad_id) == 2
    err = capsys.readouterr().err
    assert "is not a quarantine id" in err and "Traceback" not in err and "DynamoDB" not in err


def test_quarantine_show_of_an_unknown_id_says_so(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(stack, "quarantine", "show", f"{TID}/RECORD#nothing") == 2
    assert "no open quarantined item" in capsys.readouterr().err


def test_missing_region_is_one_line_and_exit_2(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    assert cli(stack, "audit") == 2
    assert capsys.readouterr().err.startswith("error: no AWS region: set AWS_REGION")


def test_missing_credentials_are_one_line_and_exit_2(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    assert cli(stack, "audit") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no AWS credentials") and "Traceback" not in err


def test_a_reader_that_goes_away_is_not_a_traceback(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ops audit | head -1`: head exits, the pipe's read end closes, writes fail with EPIPE
    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = io.TextIOWrapper(os.fdopen(write_end, "wb"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stdout)
    errors = io.StringIO()
    monkeypatch.setattr(sys, "stderr", errors)
    assert cli(stack, "audit") == 141
    stdout.write("more output after the pipe broke goes nowhere\n")
    stdout.flush()  # the descriptor now points at /dev/null: no error, no traceback at exit
    assert "Traceback" not in errors.getvalue()


def test_reconcile_exits_1_when_a_project_did_not_finish_or_failed_items(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[dict[str, Any]] = [
        {"project": "default", "complete": True, "failed": 0, "stopped_because": None},
        {"project": "eu", "complete": False, "failed": 2, "stopped_because": "AssemblyAI 401"},
    ]
    monkeypatch.setattr(ops_cli, "_invoke", lambda name, payload: {"reports": reports})

    assert cli(stack, "reconcile", "--reason", "outage") == 1
    out, err = capsys.readouterr()
    assert "AssemblyAI 401" in out
    assert "error: reconciliation incomplete or with failed items for: eu" in err

    reports.pop()
    assert cli(stack, "reconcile", "--reason", "outage") == 0


def test_dlq_list_says_when_messages_are_in_flight(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs", region_name="eu-west-1")
    sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=usage_message_body("t-held", "acme"))
    sqs.receive_message(QueueUrl=stack.dlq_url, VisibilityTimeout=300)  # another reader holds it

    assert cli(stack, "--json", "dlq", "list") == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == []
    assert "note: 1 more message(s) in flight or delayed" in err


def test_reconcile_of_an_unknown_project_is_refused_in_one_line_and_audited_cleanly(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real reconciliation handler answers the CLI's invocation (as Lambda's Invoke would).
    monkeypatch.setattr(
        ops_cli, "_invoke", lambda name, payload: stack.invoke("ReconciliationFunction", payload)
    )

    assert cli(stack, "reconcile", "--project", "nope", "--reason", "x") == 2
    err = capsys.readouterr().err
    assert err.startswith("refused: unknown project 'nope'") and len(err.splitlines()) == 1
    assert "Traceback" not in err and "KeyError" not in err
    [entry] = stack.items("audit")
    assert entry["outcome"].startswith("refused: unknown project 'nope'")
    assert "Traceback" not in entry["outcome"] and "/" not in entry["outcome"]


class _FailingLambda:
    """Lambda's Invoke answer for a function that raised: its error payload with a stack trace."""

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:
        error = {
            "errorMessage": "month must be YYYY-MM",
            "errorType": "InvalidMonth",
            "stackTrace": ['  File "/var/task/usage_meter/handlers/monthly_export.py", line 9\n'],
        }
        return {"FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(error).encode())}


def test_a_function_error_is_its_message_without_the_stack_trace(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_client = boto3.client
    monkeypatch.setattr(
        ops_cli.boto3,
        "client",
        lambda name, *a, **kw: (
            _FailingLambda() if name == "lambda" else real_client(name, *a, **kw)
        ),
    )

    with pytest.raises(SystemExit) as exited:
        cli(
            stack, "--export-function", "export-fn", "export", "--month", "2026-10", "--reason", "r"
        )
    assert exited.value.code == "error: export-fn failed: InvalidMonth: month must be YYYY-MM"
    [entry] = stack.items("audit")
    assert "stackTrace" not in entry["outcome"] and "/var/task" not in entry["outcome"]


@pytest.mark.parametrize(
    "argv",
    [
        ("export", "--month", "0000-01", "--reason", "r"),
        ("export", "--month", "２０２６-１１", "--reason", "r"),  # full-width digits  # noqa: RUF001
        ("audit", "--month", "2026-13"),
        ("dlq", "list", "--limit", "-5"),
        ("dlq", "redrive", "--limit", "0", "--reason", "r"),
        ("reconcile", "--horizon-days", "0", "--reason", "r"),
        ("reconcile", "--horizon-days", "91", "--reason", "r"),
        ("ledger", "--customer", "bad id!", "--month", "2026-11"),  # README: malformed id -> 2
        ("stripe", "map", "--customer", "bad id!", "--stripe-customer", "cus_1", "--reason", "r"),
        ("limits", "show", "--customer", "bad id!"),
    ],
)
def test_out_of_range_input_is_a_usage_error_before_anything_runs(
    stack: Stack, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(stack, *argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err
    assert stack.items("audit") == []


def test_the_cli_horizon_limit_is_the_templates() -> None:
    from usage_meter.settings import HORIZON_DAYS_MAX, HORIZON_DAYS_MIN
    from usage_meter_local.template import load_template

    parameter = load_template()["Parameters"]["ReconcileHorizonDays"]
    assert (parameter["MinValue"], parameter["MaxValue"]) == (HORIZON_DAYS_MIN, HORIZON_DAYS_MAX)
    for days in (HORIZON_DAYS_MIN, HORIZON_DAYS_MAX):
        args = ops_cli.parser().parse_args(
            ["reconcile", "--horizon-days", str(days), "--reason", "r"]
        )
        assert args.horizon_days == days


@pytest.mark.parametrize(
    "argv",
    [
        ("limits", "set", "--plan", "trial", "--limit", "async:10h", "--reason", "r"),
        ("limits", "plan", "--customer", "acme-corp", "--plan", "trial", "--reason", "r"),
    ],
)
def test_limits_changes_without_an_event_bus_are_bad_usage_exit_2(
    stack: Stack, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    """README's exit codes: 2 for bad input (a missing flag), not 1 (a failure)."""
    assert cli(stack, *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: give --stack-name or --event-bus") and "Traceback" not in err


def test_a_command_without_its_resources_is_bad_usage_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert ops_cli.main(["limits", "show", "--customer", "acme-corp"]) == 2
    assert capsys.readouterr().err == "error: give --stack-name or --table\n"
