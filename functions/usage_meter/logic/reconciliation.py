"""Reconciliation: recover usage whose webhook never reached us.

AssemblyAI gives up on a webhook after about ten failed attempts in two minutes, so an outage, a
bad deploy or a rotated secret loses usage silently unless we look. For each configured project we
page through AssemblyAI's transcript list (newest first, ``before_id`` paging) back to a horizon.
Every ``completed``/``error`` transcript with no ledger row is fetched once and:

- points at this deployment: recorded through the very same path as a webhook
  (``process_usage_message``, one conditional transaction), so it cannot matter whether the
  webhook or the reconciler comes first; a broken attribution is quarantined with its reason by
  that path, never skipped. The month is the list item's ``completed`` time (UTC).
- was deleted at AssemblyAI (``webhook_url`` ``http://deleted_by_user``): we cannot know whose it
  was, so it is held in quarantine (``transcript_deleted``), visibly.
- points elsewhere (or nowhere): counted as ``not_ours`` and remembered, so later runs do not
  fetch it again.

Keeping up (10 M transcripts a month is ~13,900 an hour): a complete pass leaves a watermark,
the creation time before which everything was checked and finished, so the next pass pages only
what is newer (``Checkpoint``; AssemblyAI lists newest first and pages older with ``before_id``:
GET /v2/transcript, AssemblyAI/assemblyai-api-spec openapi ``ListTranscriptParams``,
``PageDetails.prev_url``). A transcript still queued or processing, or not checkable after
retries, holds the watermark back until a later pass sees it finished. The ledger lookups of a
page are batched (``source_states``: 4 BatchGetItem requests per 200 transcripts) and the few
missing transcripts are fetched side by side (``concurrency`` threads, each GET still paced by
the shared AssemblyAI request budget).

One bad transcript never stops the run either: one AssemblyAI refuses with a client error (a
4xx other than 401/403/404/408/429) or whose list entry cannot be read (a ``created`` or
``completed`` that is not a date-time) is quarantined as ``unreadable_transcript`` with the
reason, remembered (not fetched again) and the run goes on; an entry without a transcript id
(nothing to fetch or quarantine) is counted ``unchecked`` with the problem.

One 429/5xx/timeout on one item does not end the project's run: the item is retried with backoff
inside the run (honouring Retry-After up to a cap); if it still fails it is counted ``unchecked``
and the run moves on, and the run reports itself incomplete. A run is bounded (items per run, the
Lambda's remaining time) and resumable: its cursor is saved after every page. A project whose API
key AssemblyAI refuses stops with the reason in its report and the ``ReconcileProjectFailed``
metric (alarmed); the other projects are still reconciled. Every run that does not finish counts
``ReconcileIncomplete`` (alarmed when it persists).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from usage_meter.logic.errors import (
    ASSEMBLYAI_CLIENT_ERROR,
    STORAGE_REFUSED,
    PermanentFailure,
    TranscriptNotFound,
    TransientFailure,
)
from usage_meter.logic.quarantine import quarantine_item
from usage_meter.logic.usage_processing import (
    ATTRIBUTION_METRIC,
    Outcome,
    ProcessorDeps,
    process_usage_message,
)
from usage_meter.models.coverage import UncoveredReason, UncoveredTranscript
from usage_meter.models.identifiers import MAX_DIMENSIONS, InvalidIdentifier
from usage_meter.models.months import usage_month
from usage_meter.models.reconciliation import Checkpoint, ReconcileCounts
from usage_meter.models.rules import TRANSCRIPT_LIST_PAGE_LIMIT
from usage_meter.models.transcript import DELETED_BY_USER, TranscriptFacts
from usage_meter.models.usage import QuarantineItem, QuarantineReason
from usage_meter.models.webhook import (
    UsageMessage,
    attribution_from_query,
    billing_query,
    webhook_url_is_ours,
)

FINISHED = frozenset({"completed", "error"})
PAGE_SIZE = TRANSCRIPT_LIST_PAGE_LIMIT
ATTEMPTS = 3  # per item and per page, within one run
BACKOFF_SECONDS = 1.0  # doubled per attempt
MAX_WAIT_SECONDS = 10.0  # the longest one wait inside a run (a longer Retry-After: next run)
NOT_OURS, HELD = "not_ours", "held"


class TranscriptLister(Protocol):
    def list_page(
        self, project: str, before_id: str | None, limit: int = PAGE_SIZE
    ) -> dict[str, Any]: ...

    def fetch(self, project: str, transcript_id: str) -> dict[str, Any]: ...


class ReconcileStore(Protocol):
    def source_states(self, product: str, source_ids: list[str]) -> dict[str, str]:
        """{source id: "recorded" or a remembered verdict ("not_ours", "held")}; a source with
        none is absent. Strongly consistent."""
        ...

    def remember_verdict(self, product: str, source_id: str, verdict: str, detail: str) -> None: ...

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


@dataclass(frozen=True)
class _Run:
    project: str
    lister: TranscriptLister
    store: ReconcileStore
    deps: ProcessorDeps
    webhook_base_url: str
    time_left: Callable[[], float]
    sleep: Callable[[float], None]
    problems: list[str] = field(default_factory=list)


def _message(
    project: str, item: dict[str, Any], query: str, billing_dimensions: frozenset[str]
) -> UsageMessage:
    """The message a webhook with this query would have produced (attribution or its problem).
    Without a ``project`` parameter the transcript belongs to the project that lists it."""
    completed = _utc(item.get("completed")) or _utc(item.get("created")) or datetime.now(UTC)
    common: dict[str, Any] = {
        "transcript_id": item["id"],
        "webhook_status": "completed" if item["status"] == "completed" else "error",
        "received_at": completed,
        "origin": "reconciliation",
    }
    try:
        attribution = attribution_from_query(
            query, MAX_DIMENSIONS, billing_dimensions, default_project=project
        )
    except InvalidIdentifier as exc:
        return UsageMessage(
            attribution=None,
            attribution_problem=f"{exc.code}: {exc.message}",
            query=billing_query(query, billing_dimensions),  # never the application's own
            **common,
        )
    return UsageMessage(attribution=attribution, **common)


MAX_HELD_TEXT = 100  # characters of an AssemblyAI list field kept in a quarantine item


def _listed_times(item: dict[str, Any]) -> tuple[datetime | None, str | None]:
    """(the item's ``created``, None) or (None, why its times cannot be read)."""
    for name in ("completed", "created"):
        try:
            _utc(item.get(name))
        except (ValueError, TypeError):
            text = str(item.get(name))[:MAX_HELD_TEXT]
            return None, f"the list entry's {name} is not a date-time: {text!r}"
    return _utc(item.get("created")), None


def _hold(
    run: _Run, item: dict[str, Any], reason: QuarantineReason, detail: str, held: dict[str, Any]
) -> bool:
    """Quarantine one listed transcript with its reason and remember the verdict, so later runs
    do not fetch it again; an operator bills or dismisses it. Returns True when newly held."""
    new = quarantine_item(
        run.deps.ledger,
        run.deps.metrics,
        QuarantineItem(
            source_id=item["id"],
            reason=reason,
            detail=detail,
            message={"transcript_id": item["id"], "project": run.project, **held},
            quarantined_at=datetime.now(UTC),
        ),
    )
    run.store.remember_verdict("async", item["id"], HELD, detail)
    return new


def _hold_unreadable(run: _Run, item: dict[str, Any], detail: str) -> None:
    """Hold a transcript the run cannot read (``unreadable_transcript``)."""
    held = {k: str(item.get(k))[:MAX_HELD_TEXT] for k in ("status", "created", "completed")}
    _hold(run, item, QuarantineReason.UNREADABLE_TRANSCRIPT, detail, held)


def _hold_deleted(run: _Run, item: dict[str, Any], payload: dict[str, Any]) -> None:
    """Hold a transcript deleted at AssemblyAI before its usage was recorded
    (``transcript_deleted``); its attribution is gone with its webhook_url."""
    detail = (
        "deleted at AssemblyAI before its usage was recorded: its webhook_url (and so its "
        "customer) is gone; bill it with the operator CLI if it is ours"
    )
    held = {
        "status": item.get("status"),
        "completed": item.get("completed"),
        "audio_duration": str(payload.get("audio_duration")),
    }
    if _hold(run, item, QuarantineReason.TRANSCRIPT_DELETED, detail, held):
        run.deps.metrics.count(ATTRIBUTION_METRIC)


def _recover(run: _Run, item: dict[str, Any], counts: ReconcileCounts) -> None:
    payload = run.lister.fetch(run.project, item["id"])
    webhook_url = payload.get("webhook_url")
    if webhook_url == DELETED_BY_USER:
        _hold_deleted(run, item, payload)
        counts.quarantined += 1
        return
    if not webhook_url_is_ours(webhook_url, run.webhook_base_url):
        # Another integration's transcript (or none): not ours to bill, and never fetched again;
        # AssemblyAI bills it all the same, so it goes into the coverage report.
        reason = UncoveredReason.FOREIGN_WEBHOOK if webhook_url else UncoveredReason.NO_WEBHOOK
        _uncovered(run, item, payload, reason, counts)
        run.store.remember_verdict("async", item["id"], NOT_OURS, "webhook_url points elsewhere")
        counts.not_ours += 1
        return
    message = _message(
        run.project, item, urlsplit(str(webhook_url)).query, run.deps.billing_dimensions
    )
    prefetched = payload if message.project == run.project else None
    result = process_usage_message(message, run.deps, prefetched=prefetched)
    if result.outcome is Outcome.RECORDED:
        counts.recovered += 1
    elif result.outcome is Outcome.DUPLICATE:
        counts.already_recorded += 1  # the webhook got there during this run
    else:
        counts.quarantined += 1  # with its reason, by the processor path


def _with_retries(
    run: _Run, what: str, attempt_once: Callable[[], Any], counts: ReconcileCounts
) -> Any:
    """Run ``attempt_once``, retrying a TransientFailure with backoff while the run has time.
    Re-raises the last TransientFailure (and any PermanentFailure at once)."""
    for attempt in range(ATTEMPTS):
        try:
            return attempt_once()
        except TransientFailure as exc:
            wait = max(BACKOFF_SECONDS * 2**attempt, float(exc.retry_after_seconds or 0))
            if attempt + 1 >= ATTEMPTS or wait > MAX_WAIT_SECONDS or run.time_left() < wait:
                run.problems.append(f"{what}: {exc}")
                raise
            counts.retried += 1
            run.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _uncovered(
    run: _Run,
    item: dict[str, Any],
    payload: dict[str, Any],
    reason: UncoveredReason,
    counts: ReconcileCounts,
) -> None:
    """Record a transcript that is not ours to bill for the coverage report, if AssemblyAI bills
    it (completed, with a readable duration)."""
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
        month=usage_month(completed),
        completed_at=completed,
        billable_seconds=seconds,
        model=facts.speech_model_used or "unknown",
        features=tuple(facts.features),
        reason=reason,
    )
    if run.store.record_uncovered(uncovered):
        counts.uncovered += 1
        run.deps.metrics.count("ReconcileUncoveredSeconds", float(seconds), "Seconds")


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _start(
    stored: Checkpoint | None, now: datetime, horizon: timedelta, use_watermark: bool
) -> Checkpoint:
    """The checkpoint this run works from: a resumed pass, or a new one from the newest."""
    start = now - horizon
    if stored is not None and stored.before_id is not None:
        # A resumed run still honours a longer horizon asked for now (an operator's
        # --horizon-days).
        stored.horizon = min(stored.horizon, start)
        if not use_watermark:
            stored.watermark = None
        return stored
    watermark = stored.watermark if stored is not None and use_watermark else None
    return Checkpoint(horizon=start, watermark=watermark)


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
    sleep: Callable[[float], None] = time.sleep,
    concurrency: int = 1,
    use_watermark: bool = True,
) -> ReconcileReport:
    """One run over ``project``: resume or start a pass, page until the pass completes (the
    horizon or the watermark is reached) or the run's budget (``max_items``, ``time_left()``
    seconds) is spent. ``use_watermark=False`` pages back to the horizon whatever earlier passes
    checked (an operator's explicit horizon). ``concurrency``: missing transcripts fetched side
    by side. Never raises for AssemblyAI or DynamoDB trouble: the report says why it stopped."""
    run = _Run(project, lister, store, deps, webhook_base_url, time_left, sleep)
    checkpoint = _start(store.load_checkpoint(project), now, horizon, use_watermark)
    stop_at = _later(checkpoint.horizon, checkpoint.watermark) or checkpoint.horizon
    counts = ReconcileCounts()
    stopped: str | None = None
    refused = False
    complete = False
    while not complete and stopped is None:
        try:
            page = _with_retries(
                run,
                "list",
                lambda: lister.list_page(project, checkpoint.before_id, page_size),
                counts,
            )
        except (TransientFailure, PermanentFailure) as exc:
            stopped, refused = _stopped_by(exc)
            break
        todo: list[dict[str, Any]] = []
        for item in _named(run, page["transcripts"], counts, checkpoint):
            created, _ = _listed_times(item)
            if created is not None and created < stop_at:
                complete = True
                break
            if counts.checked + len(todo) >= max_items or time_left() < 0:
                stopped = "run budget reached; resuming next run"
                break
            todo.append(item)
        else:
            complete = not page["transcripts"] or not (page.get("page_details") or {}).get(
                "prev_url"
            )
        try:
            _check_page(run, todo, counts, checkpoint, concurrency)
        except PermanentFailure as exc:
            stopped, refused = _stopped_by(exc)  # this page is checked again next run
            complete = False
        else:
            if todo:
                checkpoint.before_id = todo[-1]["id"]
        if not complete:
            store.save_checkpoint(project, _with_counts(checkpoint, counts))
    if complete:
        # The next pass starts from the newest transcript and stops at the new watermark.
        watermark = _earlier(checkpoint.pass_newest, checkpoint.pass_floor)
        store.save_checkpoint(
            project,
            Checkpoint(horizon=checkpoint.horizon, watermark=watermark or checkpoint.watermark),
        )
    if complete and counts.unchecked:
        complete = False
        stopped = (
            f"{counts.unchecked} transcript(s) could not be checked after {ATTEMPTS} attempts "
            f"({'; '.join(run.problems[:3])}); checked again next run"
        )
    _count_run(deps, counts, refused=refused, complete=complete)
    return ReconcileReport(project, complete, stopped, counts)


def _count_run(
    deps: ProcessorDeps, counts: ReconcileCounts, *, refused: bool, complete: bool
) -> None:
    """The run's metrics (ReconcileIncomplete and ReconcileProjectFailed are alarmed)."""
    for name, value in (
        ("Checked", counts.checked),
        ("AlreadyRecorded", counts.already_recorded),
        ("Recovered", counts.recovered),
        ("Quarantined", counts.quarantined),
        ("NotOurs", counts.not_ours),
        ("Uncovered", counts.uncovered),
        ("Failed", counts.failed),
        ("Unchecked", counts.unchecked),
        ("ProjectFailed", int(refused)),
        ("Incomplete", int(not complete)),
    ):
        deps.metrics.count(f"Reconcile{name}", value)


def _stopped_by(exc: TransientFailure | PermanentFailure) -> tuple[str, bool]:
    """Why a project's run stopped early, and whether a person must act (a refused key)."""
    if isinstance(exc, PermanentFailure):
        return f"{exc.message}; fix the project's configuration", True
    return f"AssemblyAI unavailable ({exc}); resuming next run", False


def _check_page(
    run: _Run,
    items: list[dict[str, Any]],
    counts: ReconcileCounts,
    checkpoint: Checkpoint,
    concurrency: int,
) -> None:
    """Check one page's transcripts: one batched ledger lookup, then the missing ones fetched
    and recovered, ``concurrency`` at a time. Raises the PermanentFailure that stops the
    project's run (e.g. AssemblyAI refuses its key), after the page's other items are done."""
    states = _states(run, [str(i["id"]) for i in items if i.get("status") in FINISHED], counts)
    missing: list[dict[str, Any]] = []
    for item in items:
        counts.checked += 1
        created, _ = _listed_times(item)
        checkpoint.pass_newest = _later(checkpoint.pass_newest, created)
        hold = created or checkpoint.horizon  # no time: hold the watermark where the pass began
        if item.get("status") not in FINISHED:
            counts.pending += 1  # its webhook is still to come
            checkpoint.pass_floor = _earlier(checkpoint.pass_floor, hold)
        elif states is None:
            counts.unchecked += 1
            checkpoint.pass_floor = _earlier(checkpoint.pass_floor, hold)
        elif (state := states.get(str(item["id"]))) == "recorded":
            counts.already_recorded += 1
        elif state == NOT_OURS:
            counts.not_ours += 1
        elif state == HELD:
            counts.quarantined += 1
        else:
            missing.append(item)
    if concurrency > 1 and len(missing) > 1:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(missing))) as pool:
            outcomes = list(pool.map(lambda i: _recover_one(run, i), missing))
    else:
        outcomes = [_recover_one(run, item) for item in missing]
    stop: PermanentFailure | None = None
    for item, (item_counts, problem) in zip(missing, outcomes, strict=True):
        counts.add(item_counts)
        if item_counts.unchecked or problem is not None:
            hold = _listed_times(item)[0] or checkpoint.horizon
            checkpoint.pass_floor = _earlier(checkpoint.pass_floor, hold)
        stop = stop or problem
    if stop is not None:
        raise stop


def _states(run: _Run, ids: list[str], counts: ReconcileCounts) -> dict[str, str] | None:
    """The ledger states of a page's finished transcripts, one batched lookup; None when it
    failed after retries (those transcripts are unchecked this run, checked next pass)."""
    if not ids:
        return {}
    try:
        states: dict[str, str] = _with_retries(
            run, "ledger lookup", lambda: run.store.source_states("async", ids), counts
        )
    except TransientFailure:
        return None
    except PermanentFailure as exc:
        if exc.reason != STORAGE_REFUSED:
            raise
        run.problems.append(f"ledger lookup: {exc.message}")
        return None
    return states


def _recover_one(
    run: _Run, item: dict[str, Any]
) -> tuple[ReconcileCounts, PermanentFailure | None]:
    """Fetch and recover one transcript with no ledger row; its counts, and the
    PermanentFailure that must stop the project's run (None otherwise). One whose list entry
    cannot be read is held, never fetched."""
    if (unreadable := _listed_times(item)[1]) is not None:
        return _hold_one(run, item, unreadable), None
    counts = ReconcileCounts()
    try:
        _with_retries(run, item["id"], lambda: _recover(run, item, counts), counts)
    except TranscriptNotFound:
        counts.failed += 1  # listed, then gone (deleted meanwhile): nothing to read
    except TransientFailure:
        counts.unchecked += 1  # after retries; the run goes on, and says it did not finish
    except PermanentFailure as exc:
        if exc.reason == ASSEMBLYAI_CLIENT_ERROR:  # about this transcript only: hold it, go on
            counts.add(_hold_one(run, item, f"AssemblyAI refused this transcript: {exc.message}"))
            return counts, None
        if exc.reason != STORAGE_REFUSED:
            return counts, exc  # e.g. AssemblyAI refuses the project's key
        run.problems.append(f"{item['id']}: {exc.message}")
        counts.unchecked += 1  # DynamoDB refused this item; the others are still checked
    return counts, None


def _named(
    run: _Run, items: list[Any], counts: ReconcileCounts, checkpoint: Checkpoint
) -> list[dict[str, Any]]:
    """The page's entries that name a transcript. One that does not can be neither fetched nor
    quarantined: counted ``unchecked`` with the problem (a person looks), holding the watermark
    where the pass began."""
    named = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            named.append(item)
            continue
        counts.checked += 1
        counts.unchecked += 1
        run.problems.append(f"a list entry without a transcript id: {str(item)[:100]!r}")
        checkpoint.pass_floor = _earlier(checkpoint.pass_floor, checkpoint.horizon)
    return named


def _hold_one(run: _Run, item: dict[str, Any], detail: str) -> ReconcileCounts:
    """Quarantine one unreadable transcript (with retries): counted quarantined, or unchecked
    when DynamoDB stays unavailable (checked again next pass)."""
    counts = ReconcileCounts()
    try:
        _with_retries(run, item["id"], lambda: _hold_unreadable(run, item, detail), counts)
    except TransientFailure:
        counts.unchecked += 1
    else:
        counts.quarantined += 1
    return counts


def _with_counts(checkpoint: Checkpoint, counts: ReconcileCounts) -> Checkpoint:
    total = ReconcileCounts(**asdict(checkpoint.counts))
    total.add(counts)
    return replace(checkpoint, counts=total)
