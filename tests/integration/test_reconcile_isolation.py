"""One bad item never stops reconciliation (issue 17): a transcript AssemblyAI refuses to return
with a client error (a 4xx other than 401/403, which refuse the whole project's key, 404, which is
"deleted meanwhile", and 408/429, which are transient), or whose list entry cannot be read (a
timestamp that is not one), is quarantined with the reason and the run goes on with the next
item; it is not fetched again by later runs. AssemblyAI's API spec (AssemblyAI/assemblyai-api-spec,
``openapi.yml``): ``getTranscript`` (``GET /v2/transcript/{transcript_id}``) lists a 400
``BadRequest`` answer beside 401/404/429/5xx, and a ``TranscriptListItem``'s ``created`` and
``completed`` are date-times."""

from __future__ import annotations

from datetime import timedelta

from test_reconciliation import Quiet, add, fetches, ledger_ids, run

from conftest import Stack


def test_a_client_error_on_one_transcript_is_quarantined_and_the_run_goes_on(
    stack: Stack,
) -> None:
    # Given five lost webhooks, AssemblyAI answering 400 to the GET of the middle one, always
    for n in range(5):
        add(stack, f"t{n}", hours_ago=10 - n, audio_duration=60 + n)
    stack.api.state.fail("t2", 400, times=100)
    metrics = Quiet()

    report = run(stack, page_size=2, metrics=metrics)

    # Then the four others are recovered in this run, the run completes, and t2 is held with
    # AssemblyAI's answer as the reason
    assert report.complete, report.stopped_because
    assert set(ledger_ids(stack)) == {"t0", "t1", "t3", "t4"}
    assert (report.counts.recovered, report.counts.quarantined) == (4, 1)
    [held] = stack.items("quarantine")
    assert (held["source_id"], held["reason"]) == ("t2", "unreadable_transcript")
    assert "400" in held["detail"]
    assert metrics.counted["Quarantined_unreadable_transcript"] == 1
    assert metrics.counted.get("ReconcileProjectFailed", 0) == 0

    # And a later run does not ask AssemblyAI for it again
    asked = fetches(stack, "t2")
    again = run(stack, page_size=2)
    assert again.complete and fetches(stack, "t2") == asked
    assert len(stack.items("quarantine")) == 1


def test_a_list_entry_with_an_unreadable_time_is_quarantined_and_the_run_goes_on(
    stack: Stack,
) -> None:
    add(stack, "t-old", hours_ago=3)
    add(stack, "t-odd", hours_ago=2)
    add(stack, "t-new", hours_ago=1)
    stack.api.state.transcripts["t-odd"]["_completed"] = "yesterday, around noon"

    report = run(stack, metrics=Quiet())

    assert report.complete, report.stopped_because
    assert set(ledger_ids(stack)) == {"t-old", "t-new"}
    [held] = stack.items("quarantine")
    assert (held["source_id"], held["reason"]) == ("t-odd", "unreadable_transcript")
    assert "completed" in held["detail"]


def test_an_unreadable_open_session_does_not_stop_the_orphan_sweep(stack: Stack) -> None:
    """A stored open session the code cannot read (a model name no report could carry, as a
    hand edit or an unknown writer would leave it) is quarantined as ``unreadable_session`` and
    closed; the other orphan is billed, and the next sweep does not meet it again."""
    import boto3
    from test_streaming import NOW as STREAM_NOW
    from test_streaming import begin, status_of, sweep

    from conftest import REGION

    began = (STREAM_NOW - timedelta(hours=4)).isoformat()
    assert status_of(begin(stack, session_id="sess-bad", began_at=began))[0] == 200
    assert status_of(begin(stack, session_id="sess-good", began_at=began))[0] == 200
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.table)
    [bad] = [i for i in stack.items("session") if i["session_id"] == "sess-bad"]
    table.update_item(
        Key={"PK": bad["PK"], "SK": bad["SK"]},
        UpdateExpression="SET model = :m",
        ExpressionAttributeValues={":m": "NOT A MODEL NAME!"},
    )

    summary = sweep(stack)

    assert (summary["found"], summary["billed"], summary["unreadable"]) == (1, 1, 1)
    assert {r["source_id"] for r in stack.items("ledger")} == {"sess-good"}
    [held] = stack.items("quarantine")
    assert (held["source_id"], held["reason"]) == ("sess-bad", "unreadable_session")
    assert "model" in held["detail"] and "NOT A MODEL" not in held["detail"]
    again = sweep(stack)
    assert (again["found"], again["unreadable"]) == (0, 0)


def test_a_list_entry_without_an_id_is_reported_and_the_run_goes_on(stack: Stack) -> None:
    """An entry with no transcript id can be neither fetched nor quarantined (nothing names it):
    it is counted ``unchecked`` with the problem (the run reports itself incomplete, alarmed when
    it persists) and every other entry is still checked."""
    import os
    from typing import Any

    from usage_meter.adapters.assemblyai_api import transcript_source
    from usage_meter.settings import ReconcileSettings

    add(stack, "t-old", hours_ago=3)
    add(stack, "t-new", hours_ago=1)

    class JunkInTheList:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def list_page(
            self, project: str, before_id: str | None, limit: int = 200
        ) -> dict[str, Any]:
            page = dict(self.inner.list_page(project, before_id, limit))
            if before_id is None:
                page["transcripts"] = [
                    page["transcripts"][0],
                    {"status": "completed"},
                    "not an object",
                    *page["transcripts"][1:],
                ]
            return page

        def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
            return dict(self.inner.fetch(project, transcript_id))

    stack.use_function("ReconciliationFunction")
    settings = ReconcileSettings.from_environ(dict(os.environ))
    report = run(stack, lister=JunkInTheList(transcript_source(settings, settings.table_name)))

    assert set(ledger_ids(stack)) == {"t-old", "t-new"}
    assert (report.counts.recovered, report.counts.unchecked) == (2, 2)
    assert not report.complete and "without a transcript id" in str(report.stopped_because)
