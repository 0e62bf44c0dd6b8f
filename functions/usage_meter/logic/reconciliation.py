"""Reconciliation: recover usage whose webhook never reached us.

AssemblyAI gives up on a webhook after about ten failed attempts in two minutes, so an outage, a
bad deploy or a rotated secret loses usage silently unless we look. For each configured project we
page through AssemblyAI's transcript list (newest first, ``before_id`` paging) back to a horizon,
and every ``completed``/``error`` transcript with no ledger row whose ``webhook_url`` points at
this deployment is recorded through the very same path as a webhook (``process_usage_message``,
one conditional transaction), so it cannot matter whether the webhook or the reconciler comes
first. The month is the list item's ``completed`` time (UTC).

A run is bounded (items per run, the Lambda's remaining time) and resumable: its cursor is saved
after every page, and a run that stops early (time, budget, 429) continues there next time. A
project whose API key AssemblyAI refuses stops with the reason in its report and the
``ReconcileProjectFailed`` metric (alarmed); the other projects are still reconciled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from usage_meter.logic.errors import (
    PermanentFailure,
    RequestRejected,
    TranscriptNotFound,
    TransientFailure,
)
from usage_meter.logic.usage_processing import Outcome, ProcessorDeps, process_usage_message
from usage_meter.logic.webhook_intake import parse_attribution
from usage_meter.models.coverage import UncoveredReason, UncoveredTranscript
from usage_meter.models.reconciliation import Checkpoint, ReconcileCounts
from usage_meter.models.transcript import TranscriptFacts
from usage_meter.models.webhook import Attribution, UsageMessage

FINISHED = frozenset({"completed", "error"})
PAGE_SIZE = 200


class TranscriptLister(Protocol):
    def list_page(
        self, project: str, before_id: str | None, limit: int = PAGE_SIZE
    ) -> dict[str, Any]: ...

    def fetch(self, project: str, transcript_id: str) -> dict[str, Any]: ...


class ReconcileStore(Protocol):
    def has_usage(self, product: str, source_id: str) -> bool: ...

    def load_checkpoint(self, project: str) -> Checkpoint | None: ...

    def save_checkpoint(self, project: str, checkpoint: Checkpoint) -> None: ...

    def clear_checkpoint(self, project: str) -> None: ...

    def record_uncovered(self, item: UncoveredTranscript) -> bool:
        """Store a transcript no customer is billed for; False if it was already stored."""
        ...


@dataclass(frozen=True)
class ReconcileReport:
    project: str
    complete: bool
    stopped_because: str | None
    counts: ReconcileCounts


def _utc(text: str | None) -> datetime | None:
    """List timestamps carry no timezone suffix; AssemblyAI's are UTC."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def is_ours(webhook_url: str | None, webhook_base_url: str) -> bool:
    if not webhook_url:
        return False
    ours, theirs = urlsplit(webhook_base_url), urlsplit(webhook_url)
    return (ours.scheme, ours.netloc.lower(), ours.path.rstrip("/")) == (
        theirs.scheme,
        theirs.netloc.lower(),
        theirs.path.rstrip("/"),
    )


@dataclass(frozen=True)
class _Run:
    project: str
    lister: TranscriptLister
    store: ReconcileStore
    deps: ProcessorDeps
    webhook_base_url: str


def _recover(run: _Run, item: dict[str, Any], counts: ReconcileCounts) -> None:
    project = run.project
    payload = run.lister.fetch(project, item["id"])
    webhook_url = payload.get("webhook_url")
    if not is_ours(webhook_url, run.webhook_base_url):
        # another integration's transcript (or none): not ours to bill, but AssemblyAI bills it
        reason = UncoveredReason.FOREIGN_WEBHOOK if webhook_url else UncoveredReason.NO_WEBHOOK
        _uncovered(run, item, payload, reason, counts)
        return
    query = urlsplit(str(webhook_url)).query
    try:
        attribution = parse_attribution(query, max_dimensions=8)
    except RequestRejected:
        _uncovered(run, item, payload, UncoveredReason.UNATTRIBUTABLE, counts)
        return
    if "project" in dict(parse_qsl(query)) and attribution.project != project:
        # submitted under another project's configuration
        _uncovered(run, item, payload, UncoveredReason.UNATTRIBUTABLE, counts)
        return
    completed = _utc(item.get("completed")) or _utc(item.get("created")) or datetime.now(UTC)
    message = UsageMessage(
        transcript_id=item["id"],
        webhook_status="completed" if item["status"] == "completed" else "error",
        attribution=Attribution(attribution.customer_id, project, attribution.dimensions),
        received_at=completed,
        origin="reconciliation",
    )
    result = process_usage_message(message, run.deps, prefetched=payload)
    if result.outcome is Outcome.RECORDED:
        counts.recovered += 1
    elif result.outcome is Outcome.DUPLICATE:
        counts.already_recorded += 1  # the webhook got there during this run
    else:
        counts.failed += 1  # quarantined, with its reason, by the processor path


def _uncovered(
    run: _Run,
    item: dict[str, Any],
    payload: dict[str, Any],
    reason: UncoveredReason,
    counts: ReconcileCounts,
) -> None:
    """Count a transcript that is not ours to bill; record it for the coverage report if
    AssemblyAI bills it (completed, with a readable duration)."""
    counts.ignored += 1
    if item.get("status") != "completed":
        return  # failed transcripts are not charged
    try:
        facts = TranscriptFacts.from_api(payload)
        seconds = facts.billable_seconds
    except ValueError:
        return  # no readable duration: nothing to estimate (still counted as ignored)
    completed = _utc(item.get("completed")) or _utc(item.get("created")) or datetime.now(UTC)
    uncovered = UncoveredTranscript(
        transcript_id=str(item["id"]),
        project=run.project,
        month=completed.strftime("%Y-%m"),
        completed_at=completed,
        billable_seconds=seconds,
        model=facts.speech_model_used or "unknown",
        features=tuple(facts.features),
        reason=reason,
    )
    if run.store.record_uncovered(uncovered):
        counts.uncovered += 1
        run.deps.metrics.count("ReconcileUncoveredSeconds", float(seconds), "Seconds")


def reconcile_project(
    project: str,
    *,
    lister: TranscriptLister,
    store: ReconcileStore,
    deps: ProcessorDeps,
    webhook_base_url: str,
    horizon: timedelta,
    max_items: int,
    time_left: Callable[[], float],
    now: datetime,
    page_size: int = PAGE_SIZE,
) -> ReconcileReport:
    run = _Run(project, lister, store, deps, webhook_base_url)
    checkpoint = store.load_checkpoint(project) or Checkpoint(horizon=now - horizon)
    # A resumed run still honours a longer horizon asked for now (an operator's --horizon-days).
    checkpoint.horizon = min(checkpoint.horizon, now - horizon)
    counts = ReconcileCounts()
    stopped: str | None = None
    refused = False
    complete = False
    while not complete and stopped is None:
        try:
            page = lister.list_page(project, checkpoint.before_id, page_size)
        except (TransientFailure, PermanentFailure) as exc:
            stopped, refused = _stopped_by(exc)
            break
        for item in page["transcripts"]:
            if (created := _utc(item.get("created"))) is not None and created < checkpoint.horizon:
                complete = True
                break
            if counts.checked >= max_items or time_left() < 0:
                stopped = "run budget reached; resuming next run"
                break
            try:
                _check(run, item, counts)
            except (TransientFailure, PermanentFailure) as exc:
                stopped, refused = _stopped_by(exc)  # this item is checked again next run
                break
            checkpoint.before_id = item["id"]
        else:
            complete = not page["transcripts"] or not (page.get("page_details") or {}).get(
                "prev_url"
            )
        if not complete:
            store.save_checkpoint(project, _with_counts(checkpoint, counts))
    if complete:
        store.clear_checkpoint(project)
    for name, value in (
        ("Checked", counts.checked),
        ("AlreadyRecorded", counts.already_recorded),
        ("Recovered", counts.recovered),
        ("Ignored", counts.ignored),
        ("Uncovered", counts.uncovered),
        ("Failed", counts.failed),
        ("ProjectFailed", int(refused)),
    ):
        deps.metrics.count(f"Reconcile{name}", value)
    return ReconcileReport(project, complete, stopped, counts)


def _stopped_by(exc: TransientFailure | PermanentFailure) -> tuple[str, bool]:
    """Why a project's run stopped early, and whether a person must act (a refused key)."""
    if isinstance(exc, PermanentFailure):
        return f"{exc.message}; fix the project's configuration", True
    return f"AssemblyAI unavailable ({exc}); resuming next run", False


def _check(run: _Run, item: dict[str, Any], counts: ReconcileCounts) -> None:
    if item.get("status") not in FINISHED:
        counts.checked += 1
        counts.pending += 1  # its webhook is still to come
    elif run.store.has_usage("async", item["id"]):
        counts.checked += 1
        counts.already_recorded += 1
    else:
        try:
            _recover(run, item, counts)
        except TranscriptNotFound:
            counts.failed += 1  # listed, then gone (deleted meanwhile): nothing to bill
        counts.checked += 1


def _with_counts(checkpoint: Checkpoint, counts: ReconcileCounts) -> Checkpoint:
    total = ReconcileCounts(**asdict(checkpoint.counts))
    total.add(counts)
    return Checkpoint(horizon=checkpoint.horizon, before_id=checkpoint.before_id, counts=total)
