"""A stubbed HTTP layer for DynamoDB: canned pages of a month's ledger, line items and aggregates.

botocore does everything it does in production (serialising the request, signing it, retries,
parsing the JSON response into Python, the paginators' key handling) except open a socket:
``URLLib3Session.send`` (botocore's HTTP sender) is replaced by ``CannedMonth.send``, which answers
the requests the monthly export makes, with bytes shaped like DynamoDB's, after sleeping the
modelled latency of the page. Forked worker processes inherit the stub.

Data: ``rows`` billable ledger rows of ``month`` over ``customers`` customers (heavy-tailed), spread
evenly over 16 shards. One sequence of rows per shard, read three ways, so every view adds up:

- the ledger check's ``LedgerByMonth`` Query pages (``LEDGER#<month>#<shard>``): keys only,
  ``ROWS_PER_PAGE`` (~10,000) a 1 MB page;
- the line items' ``GSI1`` Query pages (``LEDGER#<month>#<shard>``): the full ledger rows, as
  ``usage_keys.ledger_item`` writes them, ~1,500 a 1 MB page (the same rows in the same order:
  on DynamoDB that index is sharded by customer, not by source; nothing the export computes
  depends on which rows share a shard, only the line items file's order does);
- the month's aggregates (one per customer, every row carries the speaker_labels add-on): their
  keys from ``LedgerByMonth`` (``MONTH#<month>``), the items by ``BatchGetItem``.

Pages are built from ``TEMPLATES`` pre-rendered bodies (serving 30 M rows costs the stub a lookup,
or a slice for a line items page); the expected per-customer totals are exact (integer ms).

Latency model of a Query page (documented in README "Benchmarks"): ``BASE_LATENCY_S`` +
``PER_MIB_LATENCY_S`` x (item bytes read / 1 MiB): 60 ms for a full 1 MB page, the top of the
20-60 ms range observed for 1 MB Query pages in the same region, and 10 ms + for small ones.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MIB = 1024 * 1024
SHARDS = 16
BASE_LATENCY_S = 0.010
PER_MIB_LATENCY_S = 0.050
TEMPLATES = 24
AGGREGATES_PER_PAGE = 2000
# DynamoDB item size = attribute name bytes + value bytes. An index item holds the table keys
# (PK "SOURCE#async#<36-char id>", SK "LEDGER") and the index keys (LMPK, LMSK).
SOURCE_KEY = "SOURCE#async#00000000-0000-0000-0000-000000000000"
MODELS = ("universal-3-pro", "universal-2", "best", "slam-1")


def index_item_bytes(month: str, sort_key: str) -> int:
    return (
        len("PK") + len(SOURCE_KEY) + len("SK") + len("LEDGER")
        + len("LMPK") + len(f"LEDGER#{month}#00") + len("LMSK") + len(sort_key)
    )  # fmt: skip


def _sample_ledger_item(month: str) -> dict[str, Any]:
    """A billable async ledger row as ``usage_keys.ledger_item`` writes it (typed JSON)."""
    from datetime import UTC, datetime

    from boto3.dynamodb.types import TypeSerializer

    from usage_meter.adapters.usage_keys import ledger_item
    from usage_meter.models.usage import UsageRecord, UsageStatus

    moment = datetime.fromisoformat(f"{month}-14T10:30:00+00:00").astimezone(UTC)
    record = UsageRecord(
        source_id="6a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1b00",
        product="async",
        customer_id="cus_00000",
        project="default",
        month=month,
        dimensions={},
        occurred_at=moment,
        origin="webhook",
        model="universal-3-pro",
        language_code="en_us",
        features=("speaker_labels",),
        status=UsageStatus.BILLABLE,
        billable_seconds=Decimal("123.456"),
        audio_duration_seconds=Decimal("123.456"),
        audio_channels=1,
    )
    serializer = TypeSerializer()
    values = {k: v for k, v in ledger_item(record, moment).items() if v is not None}
    return {k: serializer.serialize(v) for k, v in values.items()}


def _item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size of a typed item, near enough: names + values (+1 per number)."""

    def size(value: Any) -> int:
        if isinstance(value, dict):
            [(kind, inner)] = value.items()
            if kind in ("M",):
                return 3 + sum(len(k) + size(v) + 1 for k, v in inner.items())
            if kind in ("L",):
                return 3 + sum(size(v) + 1 for v in inner)
            if kind in ("SS", "NS"):
                return sum(len(str(v)) for v in inner)
            return len(str(inner)) + (1 if kind == "N" else 0)
        return len(str(value))

    return sum(len(name) + size(value) for name, value in item.items())


def customer_name(i: int) -> str:
    return f"cus_{i:05d}" if i % 10 else f"org:partner-{i:05d}"


def seconds_text(ms: int) -> str:
    return f"{Decimal(ms).scaleb(-3).normalize():f}"


@dataclass
class Template:
    rows: list[tuple[int, int]]  # (customer index, milliseconds)
    keys: list[str]
    body_items: bytes  # the rendered "Items" array
    item_bytes: int
    full_items: list[bytes]  # each row as the full ledger item (GSI1, projection ALL), rendered


@dataclass
class Served:
    pages: int = 0
    rows: int = 0
    item_bytes: int = 0
    read_units: float = 0.0
    modelled_wait_s: float = 0.0
    by_shard: Counter[int] = field(default_factory=Counter)


class CannedMonth:
    """The month's ledger index and aggregates, served at botocore's HTTP layer."""

    def __init__(
        self,
        month: str,
        rows: int,
        customers: int,
        *,
        seed: int = 20261101,
        rows_per_page: int | None = None,
        latency: bool = True,
    ) -> None:
        self.month = month
        self.rows = rows
        self.customers = customers
        self.latency = latency
        rng = random.Random(seed)
        weights = [min(rng.paretovariate(1.1), 400.0) for _ in range(customers)]
        self.names = [customer_name(i) for i in range(customers)]
        sample_key = f"{self.names[0]}#123.456"
        self.rows_per_page = rows_per_page or MIB // index_item_bytes(month, sample_key)
        self._sample = _sample_ledger_item(month)
        self.full_item_bytes = _item_size(self._sample)
        self.line_rows_per_page = MIB // self.full_item_bytes
        self.templates = [self._template(rng, weights) for _ in range(TEMPLATES)]
        self.served = Served()
        self.line_served = Served()
        self._line_pages: dict[int, list[tuple[int, int, int]]] = {}
        self._lock = threading.Lock()
        self._aggregate_keys, self._aggregate_items = self._aggregates()

    # -- data ---------------------------------------------------------------------------------
    def _template(self, rng: random.Random, weights: list[float]) -> Template:
        picks = rng.choices(range(self.customers), weights=weights, k=self.rows_per_page)
        rows = [(c, rng.randint(1_000, 3_600_000)) for c in picks]
        keys = [f"{self.names[c]}#{seconds_text(ms)}" for c, ms in rows]
        items = json.dumps([{"LMSK": {"S": k}} for k in keys], separators=(",", ":"))
        size = sum(index_item_bytes(self.month, k) for k in keys)
        full = [self._full_item(n, c, ms) for n, (c, ms) in enumerate(rows)]
        return Template(rows, keys, items.encode(), size, full)

    def _full_item(self, n: int, customer: int, ms: int) -> bytes:
        """One row as the full ledger item DynamoDB returns from GSI1 (typed JSON)."""
        item = dict(self._sample)
        name = self.names[customer]
        source = f"bench-{n:06d}-{ms}"
        seconds = seconds_text(ms)
        item.update(
            PK={"S": f"SOURCE#async#{source}"},
            source_id={"S": source},
            customer_id={"S": name},
            model={"S": MODELS[customer % len(MODELS)]},
            billable_seconds={"N": seconds},
            audio_duration_seconds={"N": seconds},
            GSI1SK={"S": f"{name}#async#{source}"},
            LMSK={"S": f"{name}#{seconds}"},
        )
        return json.dumps(item, separators=(",", ":")).encode()

    def shard_rows(self, shard: int) -> int:
        return self.rows // SHARDS + (1 if shard < self.rows % SHARDS else 0)

    def pages_of(self, shard: int) -> list[tuple[int, int]]:
        """(template, rows) of each page of a shard."""
        left, page, out = self.shard_rows(shard), 0, []
        while left > 0:
            n = min(left, self.rows_per_page)
            out.append(((shard * 7 + page) % TEMPLATES, n))
            left -= n
            page += 1
        return out

    def page_bytes(self, template: int, n: int) -> int:
        t = self.templates[template]
        if n == self.rows_per_page:
            return t.item_bytes
        return sum(index_item_bytes(self.month, k) for k in t.keys[:n])

    def plan(self) -> Served:
        """What reading the whole month costs: pages, rows, bytes, read units, modelled waits
        (the same figures ``send`` counts; workers count in their own process)."""
        out = Served()
        for shard in range(SHARDS):
            for template, n in self.pages_of(shard):
                size = self.page_bytes(template, n)
                out.pages += 1
                out.rows += n
                out.item_bytes += size
                out.read_units += 0.5 * -(-size // 4096)  # eventually consistent: 0.5 per 4 KB
                out.modelled_wait_s += BASE_LATENCY_S + PER_MIB_LATENCY_S * size / MIB
                out.by_shard[shard] += 1
        return out

    def expected_totals(self, shards: range = range(SHARDS)) -> dict[str, tuple[int, int]]:
        """customer -> (rows, milliseconds), exactly what the shards hold (default: all 16)."""
        uses: Counter[int] = Counter()
        partial: list[tuple[int, int]] = []
        for shard in shards:
            for template, n in self.pages_of(shard):
                if n == self.rows_per_page:
                    uses[template] += 1
                else:
                    partial.append((template, n))
        counts = [0] * self.customers
        ms = [0] * self.customers
        for template, times in uses.items():
            for c, v in self.templates[template].rows:
                counts[c] += times
                ms[c] += v * times
        for template, n in partial:
            for c, v in self.templates[template].rows[:n]:
                counts[c] += 1
                ms[c] += v
        return {self.names[c]: (counts[c], ms[c]) for c in range(self.customers) if counts[c]}

    def _aggregates(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The month's aggregates: one per customer (its model, every row with the
        speaker_labels add-on), as LedgerByMonth key items and full items by PK."""
        keys, items = [], {}
        for customer, (count, ms) in sorted(self.expected_totals().items()):
            model = MODELS[self.names.index(customer) % len(MODELS)]
            key = {
                "PK": {"S": f"CUSTOMER#{customer}"},
                "SK": {"S": f"MONTH#{self.month}#async#default#{model}#-"},
            }
            keys.append(
                {
                    **key,
                    "LMPK": {"S": f"MONTH#{self.month}"},
                    "LMSK": {"S": f"CUSTOMER#{customer}#async#default#{model}#-"},
                }
            )
            items[customer] = {
                **key,
                "entity": {"S": "aggregate"},
                "customer_id": {"S": customer},
                "month": {"S": self.month},
                "product": {"S": "async"},
                "project": {"S": "default"},
                "model": {"S": model},
                "dimensions": {"M": {}},
                "estimated": {"BOOL": False},
                "region": {"S": ""},
                "usage_count": {"N": str(count)},
                "billable_seconds": {"N": seconds_text(ms)},
                "addon:speaker_labels": {"N": seconds_text(ms)},
                "input_tokens": {"N": "0"},
                "output_tokens": {"N": "0"},
                "updated_at": {"S": f"{self.month}-28T12:00:00+00:00"},
            }
        return keys, items

    # -- serving ------------------------------------------------------------------------------
    def _ledger_page(self, request: dict[str, Any]) -> bytes:
        partition = request["ExpressionAttributeValues"][":pk"]["S"]
        shard = int(partition.rsplit("#", 1)[1])
        start = request.get("ExclusiveStartKey")
        page = int(start["PK"]["S"].rsplit("-", 1)[1]) + 1 if start else 0
        pages = self.pages_of(shard)
        if page >= len(pages):
            return b'{"Items":[],"Count":0,"ScannedCount":0}'
        template_id, n = pages[page]
        template = self.templates[template_id]
        if n == self.rows_per_page:
            items, size = template.body_items, template.item_bytes
        else:
            keys = template.keys[:n]
            items = json.dumps([{"LMSK": {"S": k}} for k in keys], separators=(",", ":")).encode()
            size = self.page_bytes(template_id, n)
        tail = b""
        if page + 1 < len(pages):
            last = {
                "PK": {"S": f"SOURCE#async#bench-{shard}-{page}"},
                "SK": {"S": "LEDGER"},
                "LMPK": {"S": partition},
                "LMSK": {"S": template.keys[n - 1]},
            }
            tail = b',"LastEvaluatedKey":' + json.dumps(last).encode()
        wait = BASE_LATENCY_S + PER_MIB_LATENCY_S * size / MIB
        with self._lock:
            s = self.served
            s.pages += 1
            s.rows += n
            s.item_bytes += size
            s.read_units += 0.5 * -(-size // 4096)
            s.modelled_wait_s += wait
            s.by_shard[shard] += 1
        if self.latency:
            time.sleep(wait)
        count = str(n).encode()
        return (
            b'{"Items":' + items + b',"Count":' + count + b',"ScannedCount":' + count + tail + b"}"
        )

    def _aggregate_page(self, request: dict[str, Any]) -> bytes:
        """The month's aggregate keys on LedgerByMonth (``MONTH#<month>``), AGGREGATES_PER_PAGE a
        page, honouring ``LMSK > :start``."""
        start = request["ExpressionAttributeValues"].get(":start", {}).get("S", "")
        keys = [k for k in self._aggregate_keys if k["LMSK"]["S"] > start]
        after = request.get("ExclusiveStartKey")
        index = int(after["PK"]["S"].split("#", 1)[1]) + 1 if after and "AGG#" in str(after) else 0
        chunk = keys[index * AGGREGATES_PER_PAGE : (index + 1) * AGGREGATES_PER_PAGE]
        page: dict[str, Any] = {"Items": chunk, "Count": len(chunk), "ScannedCount": len(chunk)}
        if (index + 1) * AGGREGATES_PER_PAGE < len(keys):
            page["LastEvaluatedKey"] = {"PK": {"S": f"AGG#{index}"}}
        if self.latency:
            time.sleep(BASE_LATENCY_S)
        return json.dumps(page).encode()

    def _batch_get(self, request: dict[str, Any]) -> bytes:
        [(table, asked)] = request["RequestItems"].items()
        found = [
            self._aggregate_items[k["PK"]["S"].removeprefix("CUSTOMER#")]
            for k in asked["Keys"]
            if k["PK"]["S"].removeprefix("CUSTOMER#") in self._aggregate_items
        ]
        if self.latency:
            time.sleep(BASE_LATENCY_S)
        return json.dumps({"Responses": {table: found}, "UnprocessedKeys": {}}).encode()

    def line_pages_of(self, shard: int) -> list[tuple[int, int, int]]:
        """(template, first row, rows) of each GSI1 page of a shard: the shard's LedgerByMonth
        pages' rows, ``line_rows_per_page`` at a time."""
        out = []
        for template, n in self.pages_of(shard):
            for first in range(0, n, self.line_rows_per_page):
                out.append((template, first, min(self.line_rows_per_page, n - first)))
        return out

    def _line_items_page(self, request: dict[str, Any]) -> bytes:
        partition = request["ExpressionAttributeValues"][":pk"]["S"]
        shard = int(partition.rsplit("#", 1)[1])
        start = request.get("ExclusiveStartKey")
        page = int(start["PK"]["S"].rsplit("-", 1)[1]) + 1 if start else 0
        pages = self._line_pages.get(shard)
        if pages is None:
            pages = self._line_pages[shard] = self.line_pages_of(shard)
        if page >= len(pages):
            return b'{"Items":[],"Count":0,"ScannedCount":0}'
        template_id, first, n = pages[page]
        items = b"[" + b",".join(self.templates[template_id].full_items[first : first + n]) + b"]"
        size = n * self.full_item_bytes
        tail = b""
        if page + 1 < len(pages):
            last = {
                "PK": {"S": f"SOURCE#async#bench-{shard}-{page}"},
                "SK": {"S": "LEDGER"},
                "GSI1PK": {"S": partition},
                "GSI1SK": {"S": f"bench-{shard}-{page}"},
            }
            tail = b',"LastEvaluatedKey":' + json.dumps(last).encode()
        wait = BASE_LATENCY_S + PER_MIB_LATENCY_S * size / MIB
        with self._lock:
            s = self.line_served
            s.pages += 1
            s.rows += n
            s.item_bytes += size
            s.read_units += 0.5 * -(-size // 4096)
            s.modelled_wait_s += wait
            s.by_shard[shard] += 1
        if self.latency:
            time.sleep(wait)
        count = str(n).encode()
        return (
            b'{"Items":' + items + b',"Count":' + count + b',"ScannedCount":' + count + tail + b"}"
        )

    def answer(self, target: str, body: bytes) -> tuple[int, bytes]:
        request = json.loads(body)
        index = request.get("IndexName")
        partition = str(request.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S", ""))
        if target.endswith(".Query") and index == "LedgerByMonth":
            if partition.startswith("MONTH#"):
                return 200, self._aggregate_page(request)
            return 200, self._ledger_page(request)
        if target.endswith(".Query") and index == "GSI1" and partition.startswith("LEDGER#"):
            return 200, self._line_items_page(request)
        if target.endswith(".BatchGetItem"):
            return 200, self._batch_get(request)
        if target.endswith(".Query") and index is None and partition.startswith("COVERAGE#"):
            return 200, b'{"Items":[],"Count":0,"ScannedCount":0}'  # no uncovered transcripts
        error = {
            "__type": "com.amazon.coral.validate#ValidationException",
            "message": f"not canned: {target} {body[:300]!r}",
        }
        return 400, json.dumps(error).encode()

    def sender(self) -> Any:
        """A replacement for ``URLLib3Session.send`` that answers from this month."""
        return canned_sender(self.answer)

    def attach(self, client: Any) -> None:
        """Answer this client's requests from this month ahead of any other ``before-send``
        handler (moto's, in tests)."""
        send = self.sender()
        client.meta.events.register_first(
            "before-send.dynamodb", lambda request, **_: send(None, request)
        )

    def install(self) -> None:
        """Replace botocore's HTTP sender with this month (this process and forked children)."""
        from botocore.httpsession import URLLib3Session

        URLLib3Session.send = self.sender()  # type: ignore[method-assign]


def canned_sender(answer: Any, on_send: Any = None) -> Any:
    """A replacement for botocore's ``URLLib3Session.send``: ``answer(target, body)`` gives
    ``(HTTP status, JSON bytes)`` for a DynamoDB request (``target`` is its ``X-Amz-Target``);
    botocore still serialises, signs and parses, only the socket is replaced. ``on_send()`` is
    called once per request (to count them)."""
    from botocore.awsrequest import AWSResponse

    class _Raw:
        def __init__(self, data: bytes) -> None:
            self._data = data

        def stream(self, **_: Any) -> Any:
            yield self._data

        def read(self, *_: Any, **__: Any) -> bytes:
            return self._data

    def send(session: Any, request: Any) -> AWSResponse:
        if on_send is not None:
            on_send()
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        status, data = answer(target, request.body or b"{}")
        headers = {
            "content-type": "application/x-amz-json-1.0",
            "content-length": str(len(data)),
            "x-amzn-requestid": "bench",
        }
        return AWSResponse(request.url, status, headers, _Raw(data))

    return send
