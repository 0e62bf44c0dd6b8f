"""A stubbed HTTP layer for DynamoDB: canned Query pages of a month's ledger index and aggregates.

botocore does everything it does in production (serialising the request, signing it, retries,
parsing the JSON response into Python, the paginators' key handling) except open a socket:
``URLLib3Session.send`` (botocore's HTTP sender) is replaced by ``CannedMonth.send``, which answers
the two Queries the monthly export makes, with bytes shaped like DynamoDB's, after sleeping the
modelled latency of the page. Forked worker processes inherit the stub.

Data: ``rows`` billable ledger rows of ``month`` over ``customers`` customers (heavy-tailed), spread
evenly over the 16 ``LedgerByMonth`` shards, served in pages of ``ROWS_PER_PAGE``. Pages are
built from ``TEMPLATES`` pre-rendered bodies (so serving 30 M rows costs the stub nothing but a
lookup); the expected per-customer totals are exact (integer milliseconds). The aggregates
(``GSI1``, ``MONTH#<month>``) agree with them, split over 1-3 breakdowns per customer.

Latency model of a Query page (documented in README "Benchmarks"): ``BASE_LATENCY_S`` +
``PER_MIB_LATENCY_S`` x (index item bytes read / 1 MiB): 60 ms for a full 1 MB page, the top of the
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
        self.templates = [self._template(rng, weights) for _ in range(TEMPLATES)]
        self.served = Served()
        self._lock = threading.Lock()
        self._aggregate_pages = self._aggregates()

    # -- data ---------------------------------------------------------------------------------
    def _template(self, rng: random.Random, weights: list[float]) -> Template:
        picks = rng.choices(range(self.customers), weights=weights, k=self.rows_per_page)
        rows = [(c, rng.randint(1_000, 3_600_000)) for c in picks]
        keys = [f"{self.names[c]}#{seconds_text(ms)}" for c, ms in rows]
        items = json.dumps([{"LMSK": {"S": k}} for k in keys], separators=(",", ":"))
        size = sum(index_item_bytes(self.month, k) for k in keys)
        return Template(rows, keys, items.encode(), size)

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

    def _aggregates(self) -> list[bytes]:
        rng = random.Random(7)
        items = []
        for customer, (count, ms) in sorted(self.expected_totals().items()):
            parts = min(count, rng.choice((1, 1, 2, 3)))
            for n in range(parts):
                share_count = count // parts + (1 if n < count % parts else 0)
                share_ms = ms // parts + (1 if n < ms % parts else 0)
                model = MODELS[(n + len(customer)) % len(MODELS)]
                sort_key = f"CUSTOMER#{customer}#async#default#{model}#-"
                items.append(
                    {
                        "PK": {"S": f"CUSTOMER#{customer}"},
                        "SK": {"S": f"MONTH#{self.month}#async#default#{model}#-"},
                        "GSI1PK": {"S": f"MONTH#{self.month}"},
                        "GSI1SK": {"S": sort_key},
                        "entity": {"S": "aggregate"},
                        "customer_id": {"S": customer},
                        "month": {"S": self.month},
                        "product": {"S": "async"},
                        "project": {"S": "default"},
                        "model": {"S": model},
                        "dimensions": {"M": {}},
                        "usage_count": {"N": str(share_count)},
                        "billable_seconds": {"N": seconds_text(share_ms)},
                        "addon:speaker_labels": {"N": seconds_text(share_ms // 2)},
                        "updated_at": {"S": f"{self.month}-28T12:00:00+00:00"},
                    }
                )
        pages = []
        for start in range(0, len(items), AGGREGATES_PER_PAGE):
            page: dict[str, Any] = {"Items": items[start : start + AGGREGATES_PER_PAGE]}
            page["Count"] = page["ScannedCount"] = len(page["Items"])
            if start + AGGREGATES_PER_PAGE < len(items):
                page["LastEvaluatedKey"] = {"PK": {"S": f"AGG#{start // AGGREGATES_PER_PAGE}"}}
            pages.append(json.dumps(page).encode())
        return pages

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
        start = request.get("ExclusiveStartKey")
        index = int(start["PK"]["S"].split("#")[1]) + 1 if start else 0
        if self.latency:
            time.sleep(BASE_LATENCY_S + PER_MIB_LATENCY_S * 0.5)
        return self._aggregate_pages[index] if self._aggregate_pages else b'{"Items":[]}'

    def answer(self, target: str, body: bytes) -> tuple[int, bytes]:
        request = json.loads(body)
        if target.endswith(".Query") and request.get("IndexName") == "LedgerByMonth":
            return 200, self._ledger_page(request)
        if target.endswith(".Query") and request.get("IndexName") == "GSI1":
            return 200, self._aggregate_page(request)
        error = {"__type": "com.amazon.coral.validate#ValidationException", "message": target}
        return 400, json.dumps(error).encode()

    def sender(self) -> Any:
        """A replacement for ``URLLib3Session.send`` that answers from this month."""
        from botocore.awsrequest import AWSResponse

        month = self

        class _Raw:
            def __init__(self, data: bytes) -> None:
                self._data = data

            def stream(self, **_: Any) -> Any:
                yield self._data

            def read(self, *_: Any, **__: Any) -> bytes:
                return self._data

        def send(session: Any, request: Any) -> AWSResponse:
            target = request.headers.get("X-Amz-Target", b"")
            target = target.decode() if isinstance(target, bytes) else str(target)
            status, data = month.answer(target, request.body or b"{}")
            headers = {
                "content-type": "application/x-amz-json-1.0",
                "content-length": str(len(data)),
                "x-amzn-requestid": "bench",
            }
            return AWSResponse(request.url, status, headers, _Raw(data))

        return send

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
