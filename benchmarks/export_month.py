"""The monthly billing export at scale, on generated data, with in-memory ports.

Scenarios (default): 1,000,000 and 100,000 usage events (ledger rows) over the same 10,000
customers. Each scenario runs in a fresh ``sys.executable`` process, so one cannot inflate the
other's memory figures; the parent reads the child's peak RSS (``ru_maxrss``) from ``os.wait4``.

Generated data (seeded RNG; the customers' profiles depend only on the seed and ``--customers``,
so both scenarios have the same aggregates and only the events behind them differ):
- customer sizes are heavy-tailed (Pareto), every customer has at least one event per breakdown;
- async models universal-3-pro / universal-2 / best / universal and ``slam-1`` (not in the price
  table: its rows are unpriced), streaming models; a second project (``eu``) for some customers;
- 25% of the customers send 1-2 dimension values (``team``, ``env``, ``app``), so they have one
  aggregate per value; add-ons (speaker labels, PII redaction, medical domain, ... and rarely the
  unpriced ``summarization``) on part of a customer's events;
- exact Decimal seconds: whole seconds, 2 and 3 decimals, some two-channel audio; 2% of the async
  events failed (ledger rows with status ``failed``: read by the ledger Query, then filtered out).

What is measured is ``export_month(...)`` itself with in-memory implementations of its
``UsageReader`` and ``ExportStore`` protocols:
- ``month_aggregates`` returns the precomputed ``UsageAggregate`` list (what the GSI1 Query
  returns: one item per customer x product x project x model x dimensions; its size depends on
  customers x breakdowns, not on events), in GSI1 sort-key order;
- ``month_ledger_totals`` iterates every generated ledger row of the month (failed ones included, as
  the Query's FilterExpression only drops them after reading) and returns (count, sum of Decimal
  seconds), as the DynamoDB adapter does after paging through the rows. The rows are stored
  compactly: one ``array('q')`` of milliseconds per customer (-1 for a failed row);
- the store keeps the published bytes in a dict and never overwrites a version.

The export's time is split by wrapping the functions ``export_month`` calls (module globals of
``usage_meter.logic.monthly_export``): the ledger verification (linear in events: it reads every
ledger row, as the invariant requires) vs the rest (read aggregates, price + sort, render CSV and
JSON Lines, hash, totals + manifest + publish), which depends on the number of aggregates only.

Runs per scenario: ``--repeats`` first publications (version 1, a fresh store each), up to three
unchanged re-runs (same bytes: nothing written) and up to three re-publications after one late
event (version 2 over a copy of version 1, with the manifest's change summary); medians are
reported. The peak RSS of each export is the process's ``VmHWM`` reset just before it
(``/proc/self/clear_refs``). The peak of the export's own allocations (``tracemalloc``, first
publication and version 2) is measured in a second fresh process, so tracemalloc's bookkeeping does
not inflate the RSS figures.

Not measured: a run against DynamoDB (moto at 1M ledger rows is far too slow, and would measure
moto). On AWS the ledger check is 16 GSI1 Queries (one per ledger shard) paging through every
ledger row of the month; this benchmark measures only the Python side of that work.

Usage: python benchmarks/export_month.py [--events 1000000 100000] [--customers 10000]
                                         [--repeats 5] [--seed 20261101] [--json PATH]
                                         [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from _setup import BENCH_DIR, ROOT, add_source_paths, isolate_environment

if TYPE_CHECKING:
    from usage_meter.logic.monthly_export import ExportResult, PublishedExport
    from usage_meter.models.billing import LedgerTotals, UsageAggregate
    from usage_meter.models.coverage import UncoveredTranscript
    from usage_meter.models.usage import UsageRecord

MONTH = "2026-11"
DEFAULT_EVENTS = (1_000_000, 100_000)
DEFAULT_CUSTOMERS = 10_000
DEFAULT_SEED = 20261101
MIB = 1024 * 1024

# (value, weight)
ASYNC_MODELS = (
    ("universal-3-pro", 45),
    ("universal-2", 30),
    ("best", 10),
    ("universal", 8),
    ("slam-1", 4),  # not in config/prices.json: its rows are exported unpriced
)
STREAMING_MODELS = (
    ("universal-streaming-english", 60),
    ("universal-streaming-multilingual", 25),
    ("u3-rt-pro", 15),
)
# Share of customers that use an add-on habitually; each of their events uses it with
# probability FEATURE_USE. "summarization" has no price: rows with it are unpriced.
ASYNC_FEATURES = (
    ("speaker_labels", 0.35),
    ("keyterms_prompt", 0.10),
    ("entity_detection", 0.10),
    ("redact_pii", 0.08),
    ("sentiment_analysis", 0.06),
    ("domain:medical-v1", 0.03),
    ("summarization", 0.01),
)
STREAMING_FEATURES = (("speaker_labels", 0.20),)
FEATURE_USE = 0.7
DIMENSION_VALUES = {
    "team": ("support", "sales", "research", "ops"),
    "env": ("prod", "staging"),
    "app": ("web", "ios", "android", "callcenter"),
}
FAILED_SHARE = 0.02  # async events that failed: a ledger row with status failed, billed 0
# A ledger row in the compact arrays: (ms << 16) | (breakdown << 8) | add-on bit mask for a
# billable row, -(1 + breakdown) for a failed one.
ROW_SHIFT, BREAKDOWN_SHIFT = 16, 8
MAX_MS = 4 * 3600 * 1000

PHASES = (
    ("read", "read aggregates"),
    ("price", "price + sort"),
    ("csv", "render CSV"),
    ("jsonl", "render JSONL"),
    ("hash", "sha256"),
    ("line_items", "line items (ledger rows -> gzip JSONL)"),
    ("other", "totals + manifest + store"),
)


# -- generated data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Breakdown:
    product: str
    project: str
    model: str
    dimensions: tuple[tuple[str, str], ...]


@dataclass
class Customer:
    customer_id: str
    weight: float
    breakdowns: list[Breakdown]
    breakdown_weights: list[float]
    async_features: tuple[str, ...]
    streaming_features: tuple[str, ...]


@dataclass
class Dataset:
    aggregates: list[UsageAggregate]
    ledger: dict[str, array[int]]  # customer -> one code per ledger row (see ROW_SHIFT)
    profiles: dict[str, Customer]
    events: int
    billable_events: int
    failed_events: int
    billable_ms: int
    generate_s: float


def _pick(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in options], weights=[w for _, w in options])[0]


def customer_id(i: int) -> str:
    if i % 10 == 7:
        return f"org:partner-{i:05d}"
    if i % 10 == 3:
        return f"acct.{i:05d}@reseller"
    return f"cus_{i:05d}"


def customer_profiles(customers: int, seed: int) -> list[Customer]:
    """Who uses what: depends only on the seed and the number of customers, not on events."""
    rng = random.Random(seed)
    profiles = []
    for i in range(customers):
        lines: list[tuple[str, str, str]] = []
        if rng.random() < 0.9:
            lines.append(("async", "default", _pick(rng, ASYNC_MODELS)))
            if rng.random() < 0.3:
                lines.append(("async", "default", _pick(rng, ASYNC_MODELS)))
        if not lines or rng.random() < 0.25:
            lines.append(("streaming", "default", _pick(rng, STREAMING_MODELS)))
        if rng.random() < 0.15:
            product, _, model = lines[0]
            lines.append((product, "eu", model))
        draw = rng.random()
        combos: list[dict[str, str]] = [{}]
        if draw >= 0.75:  # 25% send dimensions: 1-2 names, 1-2 distinct values
            names = rng.sample(sorted(DIMENSION_VALUES), 1 if draw < 0.9 else 2)
            values = rng.choice((1, 2))
            combos = [
                {name: rng.choice(DIMENSION_VALUES[name]) for name in names} for _ in range(values)
            ]
        breakdowns = list(
            dict.fromkeys(
                Breakdown(p, proj, m, tuple(sorted(c.items())))
                for p, proj, m in dict.fromkeys(lines)
                for c in combos
            )
        )
        profiles.append(
            Customer(
                customer_id=customer_id(i),
                weight=min(rng.paretovariate(1.1), 400.0),
                breakdowns=breakdowns,
                breakdown_weights=[rng.expovariate(1.0) + 0.05 for _ in breakdowns],
                async_features=tuple(f for f, share in ASYNC_FEATURES if rng.random() < share),
                streaming_features=tuple(
                    f for f, share in STREAMING_FEATURES if rng.random() < share
                ),
            )
        )
    return profiles


def draw_ms(rng: random.Random, product: str) -> int:
    """Billable milliseconds of one event: whole seconds, 2 or 3 decimals, some two-channel."""
    if product == "streaming":
        return max(1, min(MAX_MS, int(rng.lognormvariate(5.2, 1.2) * 1000)))
    ms = max(1000, min(MAX_MS, int(rng.lognormvariate(5.7, 1.0) * 1000)))
    style = rng.random()
    if style < 0.3:
        ms -= ms % 1000
    elif style < 0.7:
        ms -= ms % 10
    return ms * 2 if rng.random() < 0.03 else ms


def seconds(ms: int) -> Decimal:
    """Milliseconds as the Decimal DynamoDB would hand back (normalised: '5400', '12.5')."""
    return Decimal(f"{Decimal(ms).scaleb(-3).normalize():f}")


def _event_counts(rng: random.Random, profiles: list[Customer], events: int) -> list[int]:
    minimum = [len(p.breakdowns) for p in profiles]
    remainder = events - sum(minimum)
    if remainder < 0:
        raise SystemExit(
            f"{events} events are too few: the {len(profiles)} customers have "
            f"{sum(minimum)} breakdowns and each needs at least one event"
        )
    cumulative: list[float] = []
    total = 0.0
    for p in profiles:
        total += p.weight
        cumulative.append(total)
    counts = Counter[int]()
    population = range(len(profiles))
    for start in range(0, remainder, 100_000):  # in chunks: no million-element list
        counts.update(
            rng.choices(population, cum_weights=cumulative, k=min(100_000, remainder - start))
        )
    return [m + counts[i] for i, m in enumerate(minimum)]


def generate(events: int, customers: int, seed: int) -> Dataset:
    from usage_meter.models.billing import UsageAggregate

    started = time.perf_counter()
    profiles = customer_profiles(customers, seed)
    rng = random.Random(seed * 1_000_003 + events)
    counts = _event_counts(rng, profiles, events)
    aggregates: list[UsageAggregate] = []
    ledger: dict[str, array[int]] = {}
    billable = failed = billable_ms = 0
    for profile, count in zip(profiles, counts, strict=True):
        n_breakdowns = len(profile.breakdowns)
        # One event per breakdown first (billable, so every breakdown has an aggregate), then
        # the rest spread by the customer's breakdown weights.
        picks = list(range(n_breakdowns))
        picks += rng.choices(
            range(n_breakdowns), weights=profile.breakdown_weights, k=count - n_breakdowns
        )
        usage = [[0, 0, {}] for _ in profile.breakdowns]  # count, ms, feature -> ms
        rows = array("q")
        for index, b in enumerate(picks):
            breakdown = profile.breakdowns[b]
            product = breakdown.product
            if product == "async" and index >= n_breakdowns and rng.random() < FAILED_SHARE:
                rows.append(-(1 + b))
                failed += 1
                continue
            ms = draw_ms(rng, product)
            entry = usage[b]
            entry[0] += 1
            entry[1] += ms
            addons = entry[2]
            habits = profile.async_features if product == "async" else profile.streaming_features
            mask = 0
            for bit, feature in enumerate(habits):
                if rng.random() < FEATURE_USE:
                    addons[feature] = addons.get(feature, 0) + ms
                    mask |= 1 << bit
            rows.append((ms << ROW_SHIFT) | (b << BREAKDOWN_SHIFT) | mask)
        ledger[profile.customer_id] = rows
        for breakdown, (n, ms, addons) in zip(profile.breakdowns, usage, strict=True):
            billable += n
            billable_ms += ms
            aggregates.append(
                UsageAggregate(
                    customer_id=profile.customer_id,
                    month=MONTH,
                    product=breakdown.product,  # type: ignore[arg-type]
                    project=breakdown.project,
                    model=breakdown.model,
                    dimensions=dict(breakdown.dimensions),
                    usage_count=n,
                    billable_seconds=seconds(ms),
                    addon_seconds={f: seconds(v) for f, v in sorted(addons.items())},
                )
            )
    aggregates.sort(key=gsi1_sort_key)  # the order the GSI1 Query returns them in
    return Dataset(
        aggregates=aggregates,
        ledger=ledger,
        profiles={p.customer_id: p for p in profiles},
        events=events,
        billable_events=billable,
        failed_events=failed,
        billable_ms=billable_ms,
        generate_s=time.perf_counter() - started,
    )


def _component(value: str) -> str:
    return quote(value, safe="._:@-")


def gsi1_sort_key(a: UsageAggregate) -> str:
    """GSI1SK of an aggregate (as adapters/usage_table.py writes it)."""
    dims = _component(urlencode(sorted(a.dimensions.items()))) if a.dimensions else "-"
    return "#".join(
        ["CUSTOMER", a.customer_id, a.product, _component(a.project), _component(a.model), dims]
    )


# -- in-memory ports ---------------------------------------------------------------------------


@dataclass
class Clock:
    """Seconds spent in named parts of one export."""

    spent: dict[str, float] = field(default_factory=Counter)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] += time.perf_counter() - start


class MemoryUsageReader:
    """``UsageReader`` over the generated data."""

    def __init__(self, data: Dataset, clock: Clock) -> None:
        self._data = data
        self._clock = clock
        self.ledger_queries = 0
        self.ledger_rows_read = 0

    def month_aggregates(self, month: str) -> list[UsageAggregate]:
        with self._clock.part("read"):
            return list(self._data.aggregates) if month == MONTH else []

    def customer_aggregates(self, customer_id: str, month: str) -> list[UsageAggregate]:
        return [a for a in self.month_aggregates(month) if a.customer_id == customer_id]

    def month_ledger_totals(self, month: str) -> dict[str, LedgerTotals]:
        # Like DynamoUsageLedger.month_ledger_totals after paging its 16 shard Queries: every row
        # of the month is read (failed ones too: the FilterExpression drops them after the read),
        # then counted and summed per customer as Decimals (no tokens: seconds products only).
        from usage_meter.models.billing import LedgerTotals

        totals: dict[str, LedgerTotals] = {}
        with self._clock.part("ledger_rows"):
            if month != MONTH:
                return totals
            self.ledger_queries += 16
            for customer_id, stored in self._data.ledger.items():
                rows = [Decimal(code >> ROW_SHIFT).scaleb(-3) for code in stored if code >= 0]
                self.ledger_rows_read += len(stored)
                if rows:
                    totals[customer_id] = LedgerTotals(len(rows), sum(rows, Decimal(0)))
            return totals

    def month_ledger_rows(self, month: str) -> Iterator[UsageRecord]:
        # Generated lazily, one customer at a time, like the adapter's paged shard Queries; the
        # time is counted in the "line_items" phase (write_line_items consumes this iterator).
        return ledger_records(self._data, month)

    def month_uncovered(self, month: str) -> Iterator[UncoveredTranscript]:
        return iter(())


def ledger_records(data: Dataset, month: str) -> Iterator[UsageRecord]:
    """The month's ledger rows as the DynamoDB adapter yields them (customer, product, source)."""
    from usage_meter.models.usage import UsageRecord, UsageStatus

    if month != MONTH:
        return
    occurred = datetime(2026, 11, 15, tzinfo=UTC)
    rows: list[tuple[str, str, str, int]] = []
    for customer_id in sorted(data.ledger):
        profile = data.profiles[customer_id]
        for n, code in enumerate(data.ledger[customer_id]):
            b = (-code - 1) if code < 0 else (code >> BREAKDOWN_SHIFT) & 0xFF
            rows.append(
                (customer_id, profile.breakdowns[b].product, f"{customer_id}-{n:08d}", code)
            )
        rows.sort()
        for customer, _, source_id, code in rows:
            failed = code < 0
            b = (-code - 1) if failed else (code >> BREAKDOWN_SHIFT) & 0xFF
            breakdown = profile.breakdowns[b]
            habits = (
                profile.async_features
                if breakdown.product == "async"
                else profile.streaming_features
            )
            mask = 0 if failed else code & 0xFF
            yield UsageRecord(
                source_id=source_id,
                product=breakdown.product,  # type: ignore[arg-type]
                status=UsageStatus.FAILED if failed else UsageStatus.BILLABLE,
                customer_id=customer,
                project=breakdown.project,
                month=MONTH,
                billable_seconds=Decimal(0) if failed else seconds(code >> ROW_SHIFT),
                model=breakdown.model,
                features=tuple(f for bit, f in enumerate(habits) if mask & (1 << bit)),
                dimensions=dict(breakdown.dimensions),
                occurred_at=occurred,
            )
        rows.clear()


class MemoryExportStore:
    """``ExportStore`` keeping the bytes in a dict; a version's manifest is written last."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, int, str], bytes] = {}

    def _versions(self, month: str) -> list[int]:
        return sorted({v for m, v, _ in self.objects if m == month})

    def latest(self, month: str) -> PublishedExport | None:
        from usage_meter.logic.monthly_export import MANIFEST_NAME, PublishedExport

        for version in reversed(self._versions(month)):
            manifest = self.objects.get((month, version, MANIFEST_NAME))
            if manifest is not None:
                return PublishedExport(version=version, manifest=json.loads(manifest))
        return None

    def next_version(self, month: str) -> int:
        versions = self._versions(month)
        return versions[-1] + 1 if versions else 1

    def read(self, month: str, version: int, name: str) -> bytes:
        try:
            return self.objects[(month, version, name)]
        except KeyError:
            raise FileNotFoundError(f"{month}/{version}/{name}") from None

    def publish(self, month: str, version: int, files: Mapping[str, bytes | IO[bytes]]) -> None:
        from usage_meter.logic.monthly_export import MANIFEST_NAME

        for name in sorted(files, key=lambda n: n == MANIFEST_NAME):
            key = (month, version, name)
            if key in self.objects:
                raise RuntimeError(f"would overwrite {key}")
            body = files[name]
            if not isinstance(body, bytes):
                body.seek(0)
                body = body.read()
            self.objects[key] = body


class NullMetrics:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.counts[name] += value


@contextlib.contextmanager
def timed_export_parts(clock: Clock) -> Iterator[None]:
    """Time the functions ``export_month`` calls by wrapping them where it looks them up."""
    from usage_meter.logic import monthly_export

    names = {
        "verify_against_ledger": "verify",
        "priced_rows": "price",
        "render_csv": "csv",
        "render_jsonl": "jsonl",
        "_sha256": "hash",
        "write_line_items": "line_items",
    }
    originals = {name: getattr(monthly_export, name) for name in names}

    def wrap(function: Callable[..., Any], part: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with clock.part(part):
                return function(*args, **kwargs)

        return timed

    for name, part in names.items():
        setattr(monthly_export, name, wrap(originals[name], part))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(monthly_export, name, function)


# -- one scenario (child process) --------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    ledger_s: float  # verify_against_ledger, all of it
    ledger_rows_s: float  # of which inside the reader's month_ledger_totals (reading the rows)
    rest_s: float
    parts: dict[str, float]
    status: str
    version: int
    peak_rss_mib: float | None = None  # VmHWM reset just before this run (Linux), else None
    gc_runs: int = 0  # garbage-collector runs during the export, all generations
    gc_full_runs: int = 0  # of which full (generation 2) collections


@dataclass
class Scenario:
    events: int
    customers: int
    billable_events: int
    failed_events: int
    aggregates: int
    rows: int
    unpriced_rows: int
    csv_bytes: int
    jsonl_bytes: int
    manifest_bytes: int
    ledger_queries: int
    ledger_rows_read: int
    generate_s: float
    repeats: int
    first: Run
    median_wall_s: float
    median_ledger_s: float
    median_ledger_rows_s: float
    median_rest_s: float
    median_parts: dict[str, float]
    unchanged: Run
    republish: Run
    data_mib: float  # RSS growth while generating the data set (aggregates + ledger arrays)
    rss_before_export_mib: float
    max_rss_mib: float = 0.0  # the measuring child's ru_maxrss (parent, os.wait4)
    tracemalloc_first_mib: float = 0.0  # from the traced child
    tracemalloc_republish_mib: float = 0.0


def _status_kib(field_name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def export_once(
    data: Dataset, store: MemoryExportStore | None = None
) -> tuple[Run, ExportResult, MemoryUsageReader, MemoryExportStore]:
    """One ``export_month`` call with fresh ports (or ``store``), timed by part."""
    from usage_meter.adapters.price_table import load_price_table
    from usage_meter.logic.monthly_export import export_month

    clock = Clock()
    reader = MemoryUsageReader(data, clock)
    store = store or MemoryExportStore()
    prices = load_price_table("usage_meter/config/prices.json")
    gc.collect()
    reset = _reset_peak_rss()
    gc_before = [g["collections"] for g in gc.get_stats()]
    with timed_export_parts(clock):
        start = time.perf_counter()
        result = export_month(MONTH, reader, store, prices, NullMetrics())
        wall = time.perf_counter() - start
    peak_kib = _status_kib("VmHWM") if reset else None
    gc_runs = [g["collections"] - n for g, n in zip(gc.get_stats(), gc_before, strict=True)]
    spent = dict(clock.spent)
    ledger = spent.pop("verify", 0.0)
    ledger_rows = spent.pop("ledger_rows", 0.0)
    rest = wall - ledger
    parts = {name: spent.get(name, 0.0) for name, _ in PHASES if name != "other"}
    parts["other"] = rest - sum(parts.values())
    run = Run(
        wall_s=wall,
        ledger_s=ledger,
        ledger_rows_s=ledger_rows,
        rest_s=rest,
        parts=parts,
        status=result.status,
        version=result.version,
        peak_rss_mib=peak_kib / 1024 if peak_kib else None,
        gc_runs=sum(gc_runs),
        gc_full_runs=gc_runs[-1],
    )
    return run, result, reader, store


def late_event(data: Dataset) -> None:
    """One more billable event of 61.5 s for the first customer's first breakdown."""
    first = data.aggregates[0]
    data.aggregates[0] = first.model_copy(
        update={
            "usage_count": first.usage_count + 1,
            "billable_seconds": first.billable_seconds + Decimal("61.5"),
        }
    )
    profile = data.profiles[first.customer_id]
    b = next(
        i
        for i, br in enumerate(profile.breakdowns)
        if (br.product, br.project, br.model, dict(br.dimensions))
        == (first.product, first.project, first.model, first.dimensions)
    )
    data.ledger[first.customer_id].append((61_500 << ROW_SHIFT) | (b << BREAKDOWN_SHIFT))


def _generate(events: int, customers: int, seed: int) -> tuple[Dataset, int, int]:
    # Import the export's modules first, so the RSS growth measured is the data set's alone.
    import usage_meter.adapters.price_table
    import usage_meter.logic.monthly_export  # noqa: F401

    gc.collect()
    rss_start = _status_kib("VmRSS") or 0
    data = generate(events, customers, seed)
    gc.collect()
    rss_after = _status_kib("VmRSS") or 0
    return data, rss_start, rss_after


def measure(events: int, customers: int, seed: int, repeats: int, profile: bool) -> Scenario:
    """Timings and RSS peaks of one scenario (run in its own process, without tracemalloc)."""
    data, rss_start, rss_before = _generate(events, customers, seed)
    print(
        f"  generated {events:,} ledger rows ({data.billable_events:,} billable, "
        f"{data.failed_events:,} failed), {len(data.aggregates):,} aggregates "
        f"for {customers:,} customers in {data.generate_s:.1f} s",
        flush=True,
    )
    first, result, reader, store = export_once(data)
    manifest = result.manifest
    if (
        result.status != "published"
        or manifest["totals"]["usage_count"] != data.billable_events
        or manifest["totals"]["billable_seconds"] != f"{seconds(data.billable_ms):f}"
        or result.row_count != len(data.aggregates)
        or reader.ledger_rows_read != data.events
    ):
        raise RuntimeError(f"export went wrong: {result.status} {manifest['totals']}")
    files = {name: len(body) for (_, _, name), body in store.objects.items()}
    runs = [first] + [export_once(data)[0] for _ in range(repeats - 1)]

    published = dict(store.objects)  # version 1 only
    reruns = max(1, min(3, repeats))
    unchanged_runs = []
    for _ in range(reruns):
        run, again, _, _ = export_once(data, store)
        if again.status != "unchanged":
            raise RuntimeError(f"re-run of the same data was {again.status}")
        unchanged_runs.append(run)
    late_event(data)
    republish_runs = []
    for _ in range(reruns):
        store = MemoryExportStore()
        store.objects = dict(published)
        run, again, _, _ = export_once(data, store)
        changes = again.manifest["changes"]
        if again.version != 2 or changes["rows_changed"] != 1 or changes["usage_count_delta"] != 1:
            raise RuntimeError(f"re-publication went wrong: {again.version} {changes}")
        republish_runs.append(run)
    del store, published, again

    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        export_once(data)
        profiler.disable()
        print(f"\n  cProfile of one first publication, {events:,} events (top 25, own time):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)

    median = statistics.median
    return Scenario(
        events=events,
        customers=customers,
        billable_events=data.billable_events,
        failed_events=data.failed_events,
        aggregates=len(data.aggregates),
        rows=manifest["row_count"],
        unpriced_rows=manifest["totals"]["unpriced_rows"],
        csv_bytes=files["usage.csv"],
        jsonl_bytes=files["usage.jsonl"],
        manifest_bytes=files["manifest.json"],
        ledger_queries=reader.ledger_queries,
        ledger_rows_read=reader.ledger_rows_read,
        generate_s=data.generate_s,
        repeats=repeats,
        first=first,
        median_wall_s=median([r.wall_s for r in runs]),
        median_ledger_s=median([r.ledger_s for r in runs]),
        median_ledger_rows_s=median([r.ledger_rows_s for r in runs]),
        median_rest_s=median([r.rest_s for r in runs]),
        median_parts={n: median([r.parts[n] for r in runs]) for n, _ in PHASES},
        unchanged=_median_run(unchanged_runs),
        republish=_median_run(republish_runs),
        data_mib=(rss_before - rss_start) / 1024,
        rss_before_export_mib=rss_before / 1024,
    )


def _median_run(runs: list[Run]) -> Run:
    """The run with the median wall time (its own peak RSS and GC figures)."""
    return sorted(runs, key=lambda r: r.wall_s)[(len(runs) - 1) // 2]


def trace(events: int, customers: int, seed: int) -> dict[str, float]:
    """Peak of the export's own allocations (tracemalloc), first publication and version 2.

    A separate process: tracemalloc's bookkeeping would inflate the other one's RSS figures."""
    data, _, _ = _generate(events, customers, seed)
    tracemalloc.start()
    _, _, _, store = export_once(data)
    _, first_peak = tracemalloc.get_traced_memory()
    late_event(data)
    gc.collect()
    retained, _ = tracemalloc.get_traced_memory()  # version 1's files, kept by the store
    tracemalloc.reset_peak()
    export_once(data, store)
    _, republish_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "tracemalloc_first_mib": first_peak / MIB,
        "tracemalloc_republish_mib": (republish_peak - retained) / MIB,
    }


# -- parent: fresh processes per scenario --------------------------------------------------------


def _rss_mib(ru_maxrss: int) -> float:
    # Linux reports KiB, macOS bytes.
    return ru_maxrss / MIB if sys.platform == "darwin" else ru_maxrss / 1024


def _child(mode: str, args: list[str], out: Path) -> tuple[dict[str, Any], float]:
    """Run this script in a fresh interpreter; its JSON output and its own ru_maxrss."""
    command = [
        sys.executable,
        str(BENCH_DIR / "export_month.py"),
        "--child",
        mode,
        *args,
        "--json",
        str(out),
    ]
    proc = subprocess.Popen(command, cwd=ROOT)
    # os.wait4 rather than proc.wait(): it returns this child's own resource usage.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {proc.returncode})")
    return json.loads(out.read_text()), _rss_mib(usage.ru_maxrss)


def run_scenario(
    events: int, customers: int, seed: int, repeats: int, profile: bool, tmp: Path
) -> Scenario:
    common = ["--events", str(events), "--customers", str(customers), "--seed", str(seed)]
    measured, max_rss = _child(
        "measure",
        [*common, "--repeats", str(repeats), *(["--profile"] if profile else [])],
        tmp / f"measure-{events}.json",
    )
    traced, _ = _child("trace", common, tmp / f"trace-{events}.json")
    result = scenario_from_dict(measured)
    result.max_rss_mib = max_rss
    result.tracemalloc_first_mib = traced["tracemalloc_first_mib"]
    result.tracemalloc_republish_mib = traced["tracemalloc_republish_mib"]
    return result


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    runs = {k: Run(**data[k]) for k in ("first", "unchanged", "republish")}
    return Scenario(**{**data, **runs})


def _label(events: int) -> str:
    if events % 1_000_000 == 0:
        return f"{events // 1_000_000}M"
    if events % 1000 == 0:
        return f"{events // 1000}k"
    return f"{events:,}"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def markdown(results: list[Scenario]) -> str:
    rows = [
        "| Scenario | ledger rows read (queries) | aggregates = CSV rows (unpriced) "
        "| usage.csv / .jsonl (MiB) | export, median (s) | ledger verification (s) "
        "| rest (s) | re-run unchanged (s) | re-publish v2 (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {_label(r.events)} events, {r.customers:,} customers "
            f"| {r.ledger_rows_read:,} ({r.ledger_queries:,}) "
            f"| {r.rows:,} ({r.unpriced_rows:,}) "
            f"| {r.csv_bytes / MIB:.2f} / {r.jsonl_bytes / MIB:.2f} "
            f"| {r.median_wall_s:.2f} | {r.median_ledger_s:.2f} | {r.median_rest_s:.2f} "
            f"| {r.unchanged.wall_s:.2f} | {r.republish.wall_s:.2f} |"
        )
    rows += [
        "",
        "| Scenario | data set in RSS (MiB) | RSS before export (MiB) "
        "| peak RSS: v1 / unchanged / v2 (MiB) | tracemalloc peak: v1 / v2 (MiB) "
        "| child ru_maxrss (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        peaks = " / ".join(_mib(run.peak_rss_mib) for run in (r.first, r.unchanged, r.republish))
        rows.append(
            f"| {_label(r.events)} events | {r.data_mib:.1f} | {r.rss_before_export_mib:.1f} "
            f"| {peaks} | {r.tracemalloc_first_mib:.1f} / {r.tracemalloc_republish_mib:.1f} "
            f"| {r.max_rss_mib:.1f} |"
        )
    rows += [
        "",
        "| Scenario | ledger: reading rows (fake `month_ledger_totals`) | ledger: verify's own "
        "| ledger, µs per row | "
        + " | ".join(label for _, label in PHASES)
        + " | GC runs (full) |",
        "|---|---:|---:|---:|" + "---:|" * len(PHASES) + "---:|",
    ]
    for r in results:
        rows.append(
            f"| {_label(r.events)} events | {r.median_ledger_rows_s:.3f} "
            f"| {r.median_ledger_s - r.median_ledger_rows_s:.3f} "
            f"| {r.median_ledger_s / r.ledger_rows_read * 1e6:.2f} | "
            + " | ".join(f"{r.median_parts[name]:.3f}" for name, _ in PHASES)
            + f" | {r.first.gc_runs} ({r.first.gc_full_runs}) |"
        )
    if len(results) >= 2:
        big, small = max(results, key=lambda r: r.events), min(results, key=lambda r: r.events)
        rows += [
            "",
            f"{_label(big.events)} vs {_label(small.events)} events "
            f"({big.events / small.events:.3g} x the events, "
            f"{big.aggregates / small.aggregates:.2f} x the aggregates): ledger verification "
            f"{big.median_ledger_s / small.median_ledger_s:.1f} x, rest "
            f"{big.median_rest_s / small.median_rest_s:.2f} x, whole export "
            f"{big.median_wall_s / small.median_wall_s:.1f} x.",
        ]
    queries = f"{results[0].ledger_queries:,}" if results else "?"
    rows += ["", NO_DYNAMODB.format(queries=queries)]
    return "\n".join(rows)


NO_DYNAMODB = (
    "No run against DynamoDB: moto at 1M ledger rows is far too slow (and would measure moto, "
    "not the code). On AWS the ledger check is 16 GSI1 Queries, one per ledger shard "
    "(`LEDGER#<month>#<crc32(customer) % 16>`; the in-memory reader counts the same "
    "{queries}), each paging through its shard's ledger rows, not one Query per customer; "
    "those round trips are not in these figures, only the Python work on the rows they return."
)

NOTES = (
    "Generated data (seeded RNG): heavy-tailed customer sizes, async + streaming, five async "
    "models including one without a price (`slam-1`), a second project for some customers, "
    "1-2 dimension values for a quarter of them, add-ons on part of their events (rarely the "
    "unpriced `summarization`), exact Decimal seconds (whole, 2 and 3 decimals, some two-"
    "channel audio), 2% failed async events. Both scenarios have the same customers and "
    "aggregates; only the events behind them differ. `export_month(...)` runs with in-memory "
    "ports: the reader returns the precomputed aggregate list (what the month's GSI1 Query "
    "returns) and, for the ledger check, reads every stored ledger row of the month (what the "
    "16 shard Queries return; failed ones included, as the Queries' filter drops them after "
    "reading) and counts and sums them per customer (rows kept as one `array('q')` of "
    "milliseconds per customer); the store keeps bytes in a dict. *export* is the median of "
    "the first publications (version 1, fresh store each); *ledger verification* is "
    "`verify_against_ledger` (linear in events), *rest* is everything else (read aggregates, "
    "price + sort, render, hash, manifest, publish: depends on aggregates only); *re-run "
    "unchanged* finds the same bytes and writes nothing; *re-publish v2* follows one late "
    "event (manifest with the change summary); both are medians of 3. Memory: *data set in "
    "RSS* is the generated aggregates and ledger; *peak RSS* is the process's `VmHWM`, reset "
    "just before each export; *tracemalloc peak* is the export's own allocations at their "
    "peak (in a separate process, so tracemalloc's bookkeeping does not inflate the RSS "
    "figures); *child ru_maxrss* is the whole measuring process (interpreter, pydantic, data,"
    " generation and all its exports), a fresh process per scenario. *GC runs* are the "
    "garbage collector's runs during the first export (Decimals are GC-tracked objects in "
    "Python 3.13, so the ledger pass's million Decimals trigger collections too)."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        nargs="+",
        default=list(DEFAULT_EVENTS),
        help="usage events (ledger rows) per scenario, one scenario each",
    )
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="first publications timed (re-runs: up to 3 of each kind)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile summary of one export"
    )
    parser.add_argument("--child", choices=("measure", "trace"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.customers < 1 or min(args.events) < 1:
        parser.error("--repeats, --customers and --events must be positive")

    if args.child:
        add_source_paths()
        isolate_environment()
        events = args.events[0]
        if args.child == "measure":
            data: Any = asdict(
                measure(events, args.customers, args.seed, args.repeats, args.profile)
            )
        else:
            data = trace(events, args.customers, args.seed)
        args.json.write_text(json.dumps(data, indent=2))
        return 0

    print(
        f"monthly export: {', '.join(f'{e:,}' for e in args.events)} events over "
        f"{args.customers:,} customers; per scenario one fresh process for timings and RSS "
        "and one for tracemalloc (in-memory reader and store; no DynamoDB run: moto at 1M "
        "ledger rows is too slow)",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        for events in args.events:
            print(f"scenario: {events:,} events", flush=True)
            results.append(
                run_scenario(
                    events, args.customers, args.seed, args.repeats, args.profile, Path(tmp)
                )
            )
    print(markdown(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "seed": args.seed,
                    "customers": args.customers,
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
