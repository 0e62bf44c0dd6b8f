"""Reconciliation against the AssemblyAI stand-in (list + get through the real SDK) and moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from conftest import API_KEYS, REGION, Stack, sqs_event, usage_message_body, webhook_url
from usage_meter.adapters.assemblyai_api import transcript_source
from usage_meter.adapters.reconcile_store import DynamoReconcileStore
from usage_meter.adapters.usage_ledger import DynamoUsageLedger
from usage_meter.logic.reconciliation import ReconcileReport, reconcile_project
from usage_meter.logic.usage_processing import ProcessorDeps
from usage_meter.settings import ReconcileSettings
from usage_meter_local.assemblyai_standin import transcript

NOW = datetime.now(UTC).replace(microsecond=0)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()  # AssemblyAI: no suffix


def add(
    stack: Stack,
    tid: str,
    *,
    customer: str | None = "acme",
    hours_ago: float = 1,
    url: str | None = None,
    **fields: Any,
) -> None:
    """Add a transcript (call oldest first: the list is newest first)."""
    created = NOW - timedelta(hours=hours_ago)
    stack.api.state.add(
        transcript(
            tid,
            webhook_url=url if url is not None else (webhook_url(customer) if customer else None),
            created=_stamp(created),
            completed=_stamp(created + timedelta(minutes=2)),
            **fields,
        )
    )


class BudgetClock:
    """The request budget's time: starts at the real time (its schedule lives in the table, in
    epoch seconds) and moves only when the budget sleeps, so a pushed-back budget costs the test
    no real wait. ``slept`` lists each wait the budget asked for (seconds)."""

    def __init__(self) -> None:
        self.now = __import__("time").time()
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Quiet:
    def __init__(self) -> None:
        self.counted: dict[str, float] = {}

    def count(self, name: str, value: float = 1, *args: Any, **kwargs: Any) -> None:
        self.counted[name] = self.counted.get(name, 0) + value


def run(
    stack: Stack,
    *,
    page_size: int = 200,
    horizon_days: float = 3,
    max_items: int = 5000,
    lister: Any = None,
    metrics: Quiet | None = None,
    waits: list[float] | None = None,
    use_watermark: bool = True,
    concurrency: int = 1,
    clock: BudgetClock | None = None,
) -> ReconcileReport:
    stack.use_function("ReconciliationFunction")
    settings = ReconcileSettings.from_environ(dict(__import__("os").environ))
    ledger = DynamoUsageLedger(boto3.client("dynamodb", region_name=REGION), stack.table)
    if clock is None:
        source = transcript_source(settings, settings.table_name)
    else:
        source = transcript_source(
            settings, settings.table_name, clock=clock.time, sleep=clock.sleep
        )
    deps = ProcessorDeps(
        transcripts=source,
        ledger=ledger,
        metrics=metrics or Quiet(),
        known_projects=frozenset(settings.projects),
        billing_dimensions=settings.billing_dimensions,
    )
    return reconcile_project(
        "default",
        lister=lister or source,
        store=DynamoReconcileStore(boto3.client("dynamodb", region_name=REGION), stack.table),
        deps=deps,
        webhook_base_url=settings.webhook_base_url,
        horizon=timedelta(days=horizon_days),
        max_items=max_items,
        time_left=lambda: 60.0,
        now=NOW,
        page_size=page_size,
        sleep=(waits if waits is not None else []).append,
        use_watermark=use_watermark,
        concurrency=concurrency,
    )


def fetches(stack: Stack, tid: str) -> int:
    return sum(1 for _m, p in stack.api.state.requests if p == f"/v2/transcript/{tid}")


def ledger_ids(stack: Stack) -> dict[str, str]:
    return {r["source_id"]: r["origin"] for r in stack.items("ledger")}


def test_lost_webhooks_are_recovered_once_with_customer_and_month(stack: Stack) -> None:
    add(stack, "t-old", customer="globex", hours_ago=30, audio_duration=90)
    add(stack, "t-err", customer="acme", hours_ago=20, status="error", error="bad audio")
    add(stack, "t-new", customer="acme", hours_ago=2, audio_duration=60, plan="pro")

    result = stack.invoke("ReconciliationFunction", {"project": "default"})

    [report] = result["reports"]
    assert (report["complete"], report["checked"], report["recovered"]) == (True, 3, 3)
    rows = {r["source_id"]: r for r in stack.items("ledger")}
    assert {k: (r["customer_id"], r["origin"]) for k, r in rows.items()} == {
        "t-old": ("globex", "reconciliation"),
        "t-err": ("acme", "reconciliation"),
        "t-new": ("acme", "reconciliation"),
    }
    expected = (NOW - timedelta(hours=30) + timedelta(minutes=2)).isoformat()
    assert rows["t-old"]["occurred_at"] == expected  # the list item's completed time, UTC
    assert rows["t-old"]["month"] == expected[:7]
    assert rows["t-err"]["status"] == "failed"

    # The next scheduled run pages only from the newest transcript down to the watermark the
    # complete pass left (the newest one it saw, checked again at the boundary)
    again = stack.invoke("ReconciliationFunction", {"project": "default"})["reports"][0]
    assert (again["checked"], again["recovered"], again["already_recorded"]) == (1, 0, 1)
    # An operator's explicit horizon pages back to it, whatever earlier passes checked
    explicit = {"project": "default", "horizon_days": 3}
    again = stack.invoke("ReconciliationFunction", explicit)["reports"][0]
    assert (again["recovered"], again["already_recorded"]) == (0, 3)
    assert len(stack.items("ledger")) == 3


def test_foreign_and_missing_webhook_urls_are_not_ours_and_never_fetched_again(
    stack: Stack,
) -> None:
    add(stack, "t-foreign", url="https://other-app.example.com/hooks?customer_id=acme")
    add(stack, "t-none", customer=None)
    add(
        stack,
        "t-other-path",
        url="https://abc123.execute-api.eu-west-1.amazonaws.com/other?customer_id=acme",
    )
    add(stack, "t-ours")
    report = run(stack)
    assert (report.counts.not_ours, report.counts.recovered) == (3, 1)
    assert ledger_ids(stack) == {"t-ours": "reconciliation"}

    again = run(stack)

    assert (again.complete, again.counts.not_ours, again.counts.already_recorded) == (True, 3, 1)
    assert [fetches(stack, t) for t in ("t-foreign", "t-none", "t-other-path")] == [1, 1, 1]


def test_unfinished_transcripts_are_left_for_their_webhook(stack: Stack) -> None:
    add(stack, "t-processing", status="processing")
    add(stack, "t-queued", status="queued")
    report = run(stack)
    assert (report.counts.pending, report.counts.recovered) == (2, 0)
    assert stack.items("ledger") == []


def test_paging_across_several_pages(stack: Stack) -> None:
    for n in range(7):
        add(stack, f"t{n}", hours_ago=10 - n)
    report = run(stack, page_size=2)
    assert report.complete and report.counts.recovered == 7
    listed = [p for m, p in stack.api.state.requests if p == "/v2/transcript"]
    assert len(listed) == 4  # 2 + 2 + 2 + 1


def test_horizon_is_respected(stack: Stack) -> None:
    add(stack, "t-ancient", hours_ago=24 * 10)
    add(stack, "t-recent", hours_ago=1)
    report = run(stack, horizon_days=3)
    assert report.complete
    assert ledger_ids(stack) == {"t-recent": "reconciliation"}


def test_a_429_on_one_item_does_not_end_the_run_and_the_run_says_it_did_not_finish(
    stack: Stack,
) -> None:
    # Given six lost webhooks, the GET of one answering 429 with a Retry-After longer than a run
    # may wait (and then again on every retry)
    for n in range(6):
        add(stack, f"t{n}", hours_ago=10 - n)
    stack.api.state.fail("t2", 429, times=5, retry_after=30)
    metrics = Quiet()
    clock = BudgetClock()  # the budget's 30 s wait passes on this clock, not the test's time

    first = run(stack, page_size=2, metrics=metrics, clock=clock)

    # Then every other item is recovered in this run, and the run reports the one it could not
    # check, in its result and its metric
    assert not first.complete and "429" in str(first.stopped_because)
    assert (first.counts.recovered, first.counts.unchecked) == (5, 1)
    assert set(ledger_ids(stack)) == {"t0", "t1", "t3", "t4", "t5"}
    assert metrics.counted["ReconcileIncomplete"] == 1
    assert metrics.counted["ReconcileUnchecked"] == 1
    # and the 429 pushed the shared request budget back by its Retry-After: the next request
    # waited those 30 s (once: the budget's other waits are its 15 ms slots)
    assert [s for s in clock.slept if s > 1] == [pytest.approx(30, abs=0.1)]

    stack.api.state.faults.clear()
    second = run(stack, page_size=2, clock=clock)

    assert second.complete and second.counts.recovered == 1
    assert set(ledger_ids(stack)) == {f"t{n}" for n in range(6)}


def test_a_transient_failure_on_one_item_is_retried_with_backoff_within_the_run(
    stack: Stack,
) -> None:
    # Given a lost webhook whose GET fails twice (503, then a timeout-like 504)
    add(stack, "t-flaky", hours_ago=2)
    add(stack, "t-fine", hours_ago=1)
    stack.api.state.fail("t-flaky", 503, times=2)
    waits: list[float] = []

    report = run(stack, waits=waits)

    # Then it is recovered in the same run after two waits that back off
    assert report.complete and report.counts.recovered == 2
    assert (report.counts.retried, report.counts.unchecked) == (2, 0)
    assert waits == [1.0, 2.0]


def test_run_budget_bounds_a_run(stack: Stack) -> None:
    for n in range(5):
        add(stack, f"t{n}", hours_ago=10 - n)
    first = run(stack, max_items=2)
    assert (first.complete, first.counts.checked) == (False, 2)
    second = run(stack, max_items=100)
    assert second.complete and len(stack.items("ledger")) == 5


def test_webhook_arriving_during_the_run_is_billed_once(stack: Stack) -> None:
    for n in range(4):
        add(stack, f"t{n}", hours_ago=10 - n)
    source_holder: dict[str, Any] = {}

    class WebhookDuringRun:
        """Delivers the webhooks of t1 (not yet listed) and t3 (already recovered) mid-run."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.pages = 0

        def list_page(
            self, project: str, before_id: str | None, limit: int = 200
        ) -> dict[str, Any]:
            self.pages += 1
            if self.pages == 2:
                for tid in ("t1", "t3"):
                    stack.invoke_processor(sqs_event([usage_message_body(tid, "acme")]))
                stack.use_function("ReconciliationFunction")
            return self.inner.list_page(project, before_id, limit)

        def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
            return self.inner.fetch(project, transcript_id)

    stack.use_function("ReconciliationFunction")
    settings = ReconcileSettings.from_environ(dict(__import__("os").environ))
    source_holder["lister"] = WebhookDuringRun(transcript_source(settings, settings.table_name))

    report = run(stack, page_size=2, lister=source_holder["lister"])

    assert report.complete
    assert ledger_ids(stack) == {
        "t3": "reconciliation",
        "t2": "reconciliation",
        "t1": "webhook",
        "t0": "reconciliation",
    }
    [aggregate] = stack.items("aggregate")
    assert aggregate["usage_count"] == 4
    assert report.counts.recovered == 3 and report.counts.already_recorded == 1


@pytest.mark.parametrize("customer_param", ["a/b", "=x", ""])
def test_unusable_customer_in_our_webhook_url_is_quarantined_never_ignored(
    stack: Stack, customer_param: str
) -> None:
    add(
        stack,
        "t-bad",
        url=f"https://abc123.execute-api.eu-west-1.amazonaws.com/webhooks/assemblyai?customer_id={customer_param}",
    )
    report = run(stack)
    assert (report.counts.quarantined, report.counts.recovered) == (1, 0)
    [item] = stack.items("quarantine")
    assert (item["source_id"], item["reason"]) == ("t-bad", "invalid_attribution")
    assert "invalid_customer_id" in item["detail"]


def test_real_world_customer_ids_are_recovered(stack: Stack) -> None:
    add(stack, "t-muller", url=webhook_url("müller-gmbh", moduleId="x"), hours_ago=2)
    add(stack, "t-space", customer="acme corp", hours_ago=1)

    report = run(stack)

    assert report.counts.recovered == 2
    assert {r["source_id"]: r["customer_id"] for r in stack.items("ledger")} == {
        "t-muller": "müller-gmbh",
        "t-space": "acme corp",
    }


def test_a_deleted_transcript_is_held_visibly_and_not_fetched_again(stack: Stack) -> None:
    # Given a lost webhook whose transcript was deleted at AssemblyAI before we saw it
    add(stack, "t-deleted", url="http://deleted_by_user", audio_url="http://deleted_by_user")
    metrics = Quiet()

    report = run(stack, metrics=metrics)

    # Then it is held in quarantine with its own reason, counted, and later runs do not re-fetch
    assert report.complete and report.counts.quarantined == 1
    [item] = stack.items("quarantine")
    assert (item["source_id"], item["reason"]) == ("t-deleted", "transcript_deleted")
    assert metrics.counted["UsageQuarantined"] == 1
    again = run(stack)
    assert again.counts.quarantined == 1 and fetches(stack, "t-deleted") == 1
    assert len(stack.items("quarantine")) == 1


def test_a_refused_api_key_stops_that_project_only_with_the_reason(stack: Stack) -> None:
    # Given the eu project's key revoked at AssemblyAI, and a lost webhook in the default project
    stack.api.state.api_keys = {API_KEYS["default"]}
    add(stack, "t-lost", customer="acme", hours_ago=2)

    # When reconciliation runs over every configured project
    result = stack.invoke("ReconciliationFunction", {})

    # Then the default project is reconciled and eu reports why it could not be
    reports = {r["project"]: r for r in result["reports"]}
    assert (reports["default"]["complete"], reports["default"]["recovered"]) == (True, 1)
    assert reports["eu"]["complete"] is False
    assert "rejected project 'eu' API key (401)" in reports["eu"]["stopped_because"]
    assert ledger_ids(stack) == {"t-lost": "reconciliation"}


def test_a_refused_api_key_is_counted_for_the_alarm(stack: Stack) -> None:
    stack.api.state.api_keys = {"not-the-default-key"}  # AssemblyAI refuses the project's key
    metrics = Quiet()

    report = run(stack, metrics=metrics)

    assert not report.complete
    assert metrics.counted["ReconcileProjectFailed"] == 1  # ReconciliationFailedAlarm watches it


def test_a_transcript_gone_between_list_and_get_is_counted_and_the_run_goes_on(
    stack: Stack,
) -> None:
    # Given three lost webhooks, the middle one answering 404 to its GET (deleted meanwhile)
    add(stack, "t-old", hours_ago=3)
    add(stack, "t-gone", hours_ago=2)
    add(stack, "t-new", hours_ago=1)
    stack.api.state.fail("t-gone", 404)

    report = run(stack)

    # Then the run completes, counts it as failed, and recovers the others
    assert (report.complete, report.counts.failed, report.counts.recovered) == (True, 1, 2)
    assert ledger_ids(stack) == {"t-old": "reconciliation", "t-new": "reconciliation"}


def test_a_longer_horizon_asked_for_now_extends_a_resumed_run(stack: Stack) -> None:
    # Given a run stopped by its budget (a checkpoint with the default 3-day horizon)
    add(stack, "t-10-days", hours_ago=240)
    add(stack, "t-2h", hours_ago=2)
    add(stack, "t-1h", hours_ago=1)
    assert not run(stack, max_items=1).complete

    # When an operator resumes it with a 30-day horizon
    report = run(stack, horizon_days=30)

    # Then the older transcript is reached too
    assert report.complete
    assert set(ledger_ids(stack)) == {"t-1h", "t-2h", "t-10-days"}


def test_webhook_landing_between_the_check_and_the_write_is_billed_once(stack: Stack) -> None:
    # Given a lost webhook whose delivery finally lands while the reconciler fetches it (after
    # it found no ledger row, before its own write)
    add(stack, "t-race", hours_ago=1)

    class WebhookDuringFetch:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def list_page(
            self, project: str, before_id: str | None, limit: int = 200
        ) -> dict[str, Any]:
            return self.inner.list_page(project, before_id, limit)

        def fetch(self, project: str, transcript_id: str) -> dict[str, Any]:
            payload = self.inner.fetch(project, transcript_id)
            stack.invoke_processor(sqs_event([usage_message_body(transcript_id, "acme")]))
            stack.use_function("ReconciliationFunction")
            return payload

    stack.use_function("ReconciliationFunction")
    settings = ReconcileSettings.from_environ(dict(__import__("os").environ))

    # When reconciliation runs
    report = run(stack, lister=WebhookDuringFetch(transcript_source(settings, settings.table_name)))

    # Then the webhook's row stands alone: the reconciler's write found it and changed nothing
    assert (report.counts.recovered, report.counts.already_recorded) == (0, 1)
    assert ledger_ids(stack) == {"t-race": "webhook"}
    [aggregate] = stack.items("aggregate")
    assert aggregate["usage_count"] == 1


def test_a_pass_pages_only_what_is_new_since_the_last_complete_one(stack: Stack) -> None:
    """10 M transcripts a month per project (~13,900 an hour) only fit an hourly run if a run
    does not page the whole horizon again: a complete pass leaves a watermark (AssemblyAI lists
    newest first and pages older with before_id, GET /v2/transcript in
    AssemblyAI/assemblyai-api-spec), and the next pass stops there."""
    for n in range(6):
        add(stack, f"t{n}", hours_ago=10 - n)
    assert run(stack, page_size=2).complete
    listed_before = sum(1 for _m, p in stack.api.state.requests if p == "/v2/transcript")
    add(stack, "t-later", hours_ago=0.5)

    report = run(stack, page_size=3)

    assert report.complete and report.counts.recovered == 1
    assert report.counts.checked == 2  # t-later, and t5 at the watermark itself
    listed = sum(1 for _m, p in stack.api.state.requests if p == "/v2/transcript")
    assert listed - listed_before == 1  # one page: t-later, t5, then t4 behind the watermark


def test_a_transcript_still_processing_holds_the_watermark_until_it_finishes(
    stack: Stack,
) -> None:
    # Given a pass that saw one transcript still processing between two finished ones
    add(stack, "t-old", hours_ago=5)
    add(stack, "t-slow", hours_ago=4, status="processing")
    add(stack, "t-new", hours_ago=1)
    first = run(stack)
    assert first.complete and first.counts.pending == 1 and first.counts.recovered == 2

    # When it finishes without its webhook arriving and the next pass runs
    add(stack, "t-slow", hours_ago=4)  # the same transcript, now completed (same list place)
    second = run(stack)

    # Then the next pass reaches back to it (and no further) and recovers it
    assert second.complete and second.counts.recovered == 1
    assert set(ledger_ids(stack)) == {"t-old", "t-slow", "t-new"}
    assert second.counts.checked == 2  # t-new and t-slow; t-old is behind the watermark


def test_a_page_is_looked_up_in_batches_not_one_query_per_transcript(stack: Stack) -> None:
    from test_cost_model import counted_calls

    # Given 120 transcripts already in the ledger (a first pass recovered them)
    for n in range(120):
        add(stack, f"t{n:03d}", hours_ago=20 - n / 10)
    assert run(stack).counts.recovered == 120

    # When a pass checks them again (an explicit horizon: no watermark)
    stack.use_function("ReconciliationFunction")
    with counted_calls() as calls:
        report = run(stack, page_size=200, horizon_days=3, use_watermark=False)

    # Then the page's 120 ledger lookups (240 keys: row and verdict) took 3 BatchGetItem
    # requests and no per-transcript Query, and nothing was fetched from AssemblyAI
    assert report.counts.already_recorded == 120
    assert calls[("dynamodb", "BatchGetItem")] == 3
    assert calls[("dynamodb", "Query")] == 0
