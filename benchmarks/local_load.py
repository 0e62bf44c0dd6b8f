"""Load on the embedded local stack: N webhooks at concurrency C through the HTTP front, until
the queue drains; then the books are checked exactly and the memory figures printed.

The stack is the one ``make local`` serves (``LocalStack`` with ``serve``'s defaults, free ports):
real HTTP to the intake, SQS (moto) to the processor, the real SDK against the AssemblyAI
stand-in, one DynamoDB transaction per transcript. Memory is the resident set (VmRSS, from
/proc) of the stack's process (moto server, stand-in, HTTP front, SQS poller) and of each
function's worker process, sampled every 0.5 s.

Usage: PYTHONPATH=functions:infra python benchmarks/local_load.py [--webhooks 10000]
       [--concurrency 24] [--customers 50] [--json out.json]
Exits 1 when the books are not exact or the queue does not drain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

try:
    from _setup import add_source_paths  # run as a script: benchmarks/ is on sys.path
except ModuleNotFoundError:  # imported as benchmarks.local_load (the tests)
    from benchmarks._setup import add_source_paths

add_source_paths()

from usage_meter_local.assemblyai_standin import transcript  # noqa: E402
from usage_meter_local.stack import LocalStack, StackConfig  # noqa: E402

AUDIO_SECONDS = (Decimal("61.5"), Decimal(120), Decimal("7.25"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident set of one process in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


class MemorySampler(threading.Thread):
    """Peak and latest RSS of the stack's process and of every function worker."""

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.peak_stack = 0.0
        self.peak_total = 0.0
        self.peak_by_function: dict[str, float] = {}
        self.samples: list[tuple[float, float, float]] = []  # (t, stack MiB, total MiB)
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.wait(0.5):
            own = rss_mib(os.getpid())
            by_function = {
                name: rss_mib(pid)
                for name, worker in self.stack.pool.workers.items()
                if (pid := worker.pid) is not None
            }
            total = own + sum(by_function.values())
            for name, mib in by_function.items():
                self.peak_by_function[name] = max(self.peak_by_function.get(name, 0.0), mib)
            self.peak_stack = max(self.peak_stack, own)
            self.peak_total = max(self.peak_total, total)
            self.samples.append((time.monotonic() - self._t0, own, total))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def post(url: str, header: str, secret: str, transcript_id: str) -> int:
    body = json.dumps({"transcript_id": transcript_id, "status": "completed"}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json", header: secret}
    )
    for attempt in range(5):  # AssemblyAI retries a 5xx or a timeout too
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return int(exc.code)
        except OSError:
            pass
        time.sleep(0.5 * (attempt + 1))
    return 599


def usage_totals(stack: LocalStack, customers: int, month: str) -> tuple[int, Decimal]:
    """Count and billable seconds over every customer, read through the usage API."""
    assert stack.http is not None
    count, seconds = 0, Decimal(0)
    for index in range(customers):
        url = f"{stack.http.url}/customers/load-{index}/usage?month={month}"
        with urllib.request.urlopen(url, timeout=60) as answer:
            document = json.loads(answer.read())
        count += int(document["totals"]["usage_count"])
        seconds += Decimal(str(document["totals"]["billable_seconds"]))
    return count, seconds


def run(
    webhooks: int, concurrency: int, customers: int, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """Send, drain, check the books; the figures as a JSON-ready dict (see ``main``)."""
    log_dir = Path(tempfile.mkdtemp(prefix="usage-meter-load-"))
    config = StackConfig(log_dir=log_dir, parameters=dict(parameters or {}))
    with LocalStack(config) as stack:
        header = stack.auth_header_name
        secret = stack.webhook_secrets[0]
        ids = [str(uuid.uuid4()) for _ in range(webhooks)]
        expected_seconds = Decimal(0)
        urls = []
        for index, transcript_id in enumerate(ids):
            url = f"{stack.webhook_url}?customer_id=load-{index % customers}"
            seconds = AUDIO_SECONDS[index % len(AUDIO_SECONDS)]
            expected_seconds += seconds
            stack.assemblyai.state.add(
                transcript(transcript_id, webhook_url=url, audio_duration=float(seconds))
            )
            urls.append(url)
        stack.assemblyai.state.requests.clear()
        month = datetime.now(UTC).strftime("%Y-%m")
        load_before = os.getloadavg()
        cpu_before = cpu_seconds(os.getpid())
        sampler = MemorySampler(stack)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            statuses = list(
                pool.map(lambda a: post(a[0], header, secret, a[1]), zip(urls, ids, strict=True))
            )
        sent = time.monotonic() - started
        drained = stack.wait_until_drained(timeout_seconds=max(600.0, webhooks * 0.2))
        elapsed = time.monotonic() - started
        load_after = os.getloadavg()
        sampler.stop()
        cpu_stack = cpu_seconds(os.getpid()) - cpu_before
        cpu_workers = {
            name: round(cpu_seconds(pid), 1)
            for name, worker in stack.pool.workers.items()
            if (pid := worker.pid) is not None
        }
        count, seconds = usage_totals(stack, customers, month)
        dlq = stack.resources.queue_urls.get("UsageDeadLetterQueue")
        dead = stack.queue_depth(dlq) if dlq else 0
        first_quarter = [s for s in sampler.samples if s[0] <= elapsed / 4]
        return {
            "webhooks": webhooks,
            "concurrency": concurrency,
            "customers": customers,
            "accepted_200": statuses.count(200),
            "other_statuses": sorted({s for s in statuses if s != 200}),
            "accept_rate_per_second": round(webhooks / sent, 1) if sent else None,
            "send_seconds": round(sent, 1),
            "drained": drained,
            "drain_seconds": round(elapsed, 1),
            "billed_count": count,
            "billed_seconds": str(seconds),
            "expected_seconds": str(expected_seconds),
            "dead_letters": dead,
            "books_exact": drained and count == webhooks and seconds == expected_seconds,
            "peak_rss_stack_mib": round(sampler.peak_stack, 1),
            "peak_rss_total_mib": round(sampler.peak_total, 1),
            "rss_total_first_quarter_max_mib": round(
                max((s[2] for s in first_quarter), default=0), 1
            ),
            "rss_total_end_mib": round(sampler.samples[-1][2], 1) if sampler.samples else 0.0,
            "peak_rss_by_function_mib": {
                name: round(mib, 1) for name, mib in sorted(sampler.peak_by_function.items())
            },
            "cpu_seconds_stack": round(cpu_stack, 1),
            "cpu_seconds_by_function": dict(sorted(cpu_workers.items())),
            "load_average_1min_start_end": [round(load_before[0], 2), round(load_after[0], 2)],
            "parameters": dict(config.parameters),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter, as `make local` takes it (e.g. AssemblyAIRequestShare=20000)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parameters = dict(p.split("=", 1) for p in args.parameter)
    result = run(args.webhooks, args.concurrency, args.customers, parameters)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["books_exact"] and result["dead_letters"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
