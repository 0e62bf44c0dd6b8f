"""Warm, in-process time per request of both Lambda handlers, against moto (in-process AWS) and
the AssemblyAI stand-in server (a local HTTP server the real ``assemblyai`` SDK talks to).

- Intake: the recorded API Gateway event (tests/events/apigw/webhook_completed.json), each request
  with a unique transcript id; each one authenticates, validates and sends one SQS message.
- Processor: SQS events of one record each; each one GETs the transcript from the stand-in through
  the SDK and writes one DynamoDB transaction.

The first request of each handler (settings parse, boto3 client creation, secret fetch) is timed
separately; p50/p99 are over the requests after it. Every request is split into time inside boto3
calls (botocore + moto), time inside HTTP calls to the stand-in (httpx + the server) and the rest:
the handler's own code (Powertools, pydantic, our logic, JSON logs written to /dev/null).
moto's emulation dominates the totals; on AWS those calls are network round trips instead.

The processor runs with the pacer as deployed: every AssemblyAI request first takes a slot of the
shared request budget (AssemblyAIRequestShare 2,000 per 5 minutes = one request per 150 ms for the
whole deployment; its schedule lives in the table), and the time spent waiting for a slot is
reported apart. Transcripts have realistic sizes: a 5-minute one is ~140 KiB of JSON (words with
timestamps), a 1-hour one ~1.7 MiB.

Usage: python benchmarks/warm_handler.py [--intake-requests 2000] [--processor-messages 500]
                                         [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from _setup import (
    API_KEYS,
    PROJECTS,
    REGION,
    FakeLambdaContext,
    add_source_paths,
    isolate_environment,
    load_event,
    percentile,
    provision_stack,
    reset_caches,
)

TIDY_EVERY = 50
KIB = 1024
SIZES = {"processor": 140 * KIB, "processor_1h": 1700 * KIB}


@dataclass
class Split:
    """Seconds spent inside boto3 calls and inside HTTP calls since the timer was installed."""

    aws: float = 0.0
    http: float = 0.0
    pacer: float = 0.0


def install_call_timers(split: Split) -> None:
    """Wrap botocore's API call entry point and httpx's send to add their time to ``split``."""
    import botocore.client
    import httpx

    make_api_call = botocore.client.BaseClient._make_api_call
    send = httpx.Client.send

    def timed_api_call(client: Any, operation: str, params: Any) -> Any:
        start = time.perf_counter()
        try:
            return make_api_call(client, operation, params)
        finally:
            split.aws += time.perf_counter() - start

    def timed_send(client: Any, request: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return send(client, request, **kwargs)
        finally:
            split.http += time.perf_counter() - start

    from usage_meter.adapters.request_budget import SharedRequestPacer

    wait = SharedRequestPacer.wait

    def timed_wait(pacer: Any) -> None:
        start = time.perf_counter()
        aws_before = split.aws
        try:
            wait(pacer)
        finally:  # the reservation's DynamoDB call stays in "aws"; the rest is waiting
            split.pacer += time.perf_counter() - start - (split.aws - aws_before)

    botocore.client.BaseClient._make_api_call = timed_api_call  # type: ignore[method-assign]
    httpx.Client.send = timed_send  # type: ignore[method-assign]
    SharedRequestPacer.wait = timed_wait  # type: ignore[method-assign]


@dataclass
class Stats:
    handler: str
    requests: int
    first_ms: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    aws_mean_ms: float
    http_mean_ms: float
    pacer_mean_ms: float
    own_p50_ms: float
    own_p99_ms: float
    own_mean_ms: float
    throughput_per_s: float
    check: str


def timed_requests(
    count: int, invoke: Callable[[int], None], split: Split, tidy: Callable[[], None]
) -> tuple[float, list[tuple[float, float, float, float]]]:
    """Invoke request 0 (timed alone) then 1..count; per request (total, aws, http) seconds.

    ``tidy`` runs every TIDY_EVERY requests and at the end, outside the timed region: it checks
    and removes what the requests left in moto, whose cost per call grows with the number of
    messages in a queue and (for DynamoDB transactions, which deep-copy the tables) of items.
    On AWS neither grows, so without this the figures would measure moto's growth instead.
    """
    start = time.perf_counter()
    invoke(0)
    first = time.perf_counter() - start
    samples: list[tuple[float, float, float, float]] = []
    for i in range(1, count + 1):
        aws0, http0, pacer0 = split.aws, split.http, split.pacer
        start = time.perf_counter()
        invoke(i)
        total = time.perf_counter() - start
        samples.append((total, split.aws - aws0, split.http - http0, split.pacer - pacer0))
        if i % TIDY_EVERY == 0:
            tidy()
    tidy()
    return first, samples


def summarise(
    name: str, first: float, samples: list[tuple[float, float, float, float]], check: str
) -> Stats:
    totals = [t for t, _, _, _ in samples]
    own = [t - a - h - p for t, a, h, p in samples]
    n = len(samples)
    return Stats(
        handler=name,
        requests=n,
        first_ms=first * 1000,
        p50_ms=percentile(totals, 50) * 1000,
        p99_ms=percentile(totals, 99) * 1000,
        mean_ms=sum(totals) / n * 1000,
        max_ms=max(totals) * 1000,
        aws_mean_ms=sum(a for _, a, _, _ in samples) / n * 1000,
        http_mean_ms=sum(h for _, _, h, _ in samples) / n * 1000,
        pacer_mean_ms=sum(p for _, _, _, p in samples) / n * 1000,
        own_p50_ms=percentile(own, 50) * 1000,
        own_p99_ms=percentile(own, 99) * 1000,
        own_mean_ms=sum(own) / n * 1000,
        throughput_per_s=n / sum(totals),
        check=check,
    )


@contextlib.contextmanager
def function_env(
    template: dict[str, Any],
    logical_id: str,
    resources: Any,
    overrides: dict[str, str] | None = None,
) -> Iterator[None]:
    """The function's environment as template.yaml sets it (like Stack.use_function)."""
    from usage_meter_local.template import function_environment

    env = function_environment(
        template,
        logical_id,
        resources,
        overrides=overrides,
        parameters={"AssemblyAIProjects": json.dumps(PROJECTS)},
    )
    saved = dict(os.environ)
    os.environ.update(env)
    reset_caches()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_caches()


def bench_intake(template: dict[str, Any], resources: Any, count: int, split: Split) -> Stats:
    from usage_meter.handlers import webhook_intake

    base = load_event("apigw/webhook_completed.json")
    context = FakeLambdaContext(function_name="usage-meter-webhook-intake")
    statuses: dict[str, int] = {}

    def invoke(i: int) -> None:
        body = json.dumps({"transcript_id": f"bench-intake-{i:06d}", "status": "completed"})
        response = webhook_intake.handler({**base, "body": body}, context)  # type: ignore[arg-type]
        outcome = f"{response['statusCode']} {json.loads(response['body']).get('status')}"
        statuses[outcome] = statuses.get(outcome, 0) + 1

    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = resources.queue_urls["UsageQueue"]
    queued: set[str] = set()

    def tidy() -> None:
        while messages := sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", []):
            for m in messages:
                queued.add(json.loads(m["Body"])["transcript_id"])
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(messages)
                ],
            )

    with function_env(template, "WebhookIntakeFunction", resources):
        first, samples = timed_requests(count, invoke, split, tidy)

    check = f"answers {statuses}; {len(queued)} distinct transcripts queued"
    if statuses != {"200 accepted": count + 1} or len(queued) != count + 1:
        raise RuntimeError(f"intake benchmark went wrong: {check}")
    return summarise("intake", first, samples, check)


def sized_transcript(recorded: dict[str, Any], size: int) -> dict[str, Any]:
    """The recorded transcript with words (text + timestamps + confidence) up to ``size`` bytes
    of JSON, like a real one of that length."""
    words: list[dict[str, Any]] = []
    payload = {**recorded, "words": words}
    base = len(json.dumps(payload))
    word = {"text": "meter", "start": 0, "end": 0, "confidence": 0.98123, "speaker": None}
    per_word = len(json.dumps(word)) + 2 + 12  # + its share of "text" and of the padding
    for n in range(max(0, (size - base) // per_word)):
        words.append({**word, "start": n * 320, "end": n * 320 + 280})
    payload["text"] = " ".join("meter" for _ in range(len(words) // 4))
    return payload


def bench_processor(
    template: dict[str, Any],
    resources: Any,
    count: int,
    split: Split,
    name: str = "processor",
) -> Stats:
    import boto3

    from usage_meter.handlers import usage_processor
    from usage_meter.models.webhook import Attribution, UsageMessage
    from usage_meter_local.assemblyai_standin import AssemblyAIStandIn

    recorded = sized_transcript(load_event("transcripts/completed.json"), SIZES[name])
    attribution = Attribution(
        customer_id="acme-corp", project="default", dimensions={"plan": "pro"}
    )
    context = FakeLambdaContext(function_name="usage-meter-usage-processor", memory_limit_in_mb=512)
    queue_arn = resources.queue_arns["UsageQueue"]
    table = resources.tables["UsageTable"]
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    failures = 0
    ledger_rows = 0

    def tidy() -> None:
        nonlocal ledger_rows
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=table,
            ProjectionExpression="PK, SK",
            FilterExpression="entity = :e",
            ExpressionAttributeValues={":e": {"S": "ledger"}},
        )
        keys = [item for page in pages for item in page["Items"]]
        ledger_rows += len(keys)
        for n in range(0, len(keys), 25):
            dynamodb.batch_write_item(
                RequestItems={table: [{"DeleteRequest": {"Key": k}} for k in keys[n : n + 25]]}
            )

    def event(i: int) -> dict[str, Any]:
        body = UsageMessage(
            transcript_id=f"bench-proc-{i:06d}",
            webhook_status="completed",
            attribution=attribution,
            received_at=datetime.now(UTC),
        ).to_json()
        return {
            "Records": [
                {
                    "messageId": f"bench-message-{i:06d}",
                    "receiptHandle": f"bench-receipt-{i:06d}",
                    "body": body,
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": "-",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": REGION,
                }
            ]
        }

    events = [event(i) for i in range(count + 1)]

    def invoke(i: int) -> None:
        nonlocal failures
        result = usage_processor.handler(events[i], context)  # type: ignore[arg-type]
        failures += len(result["batchItemFailures"])

    with AssemblyAIStandIn() as api:
        api.state.api_keys = set(API_KEYS.values())
        for i in range(count + 1):
            api.state.add({**recorded, "id": f"bench-proc-{i:06d}"})
        overrides = {
            "ASSEMBLYAI_BASE_URL_OVERRIDE": api.url,
            "PROCESSOR_BATCH_CONCURRENCY": "1",  # one-record events; moto is single-threaded
        }
        with function_env(template, "UsageProcessorFunction", resources, overrides):
            first, samples = timed_requests(count, invoke, split, tidy)
        fetched = len(api.state.requests)

    quarantined = dynamodb.scan(
        TableName=table,
        Select="COUNT",
        FilterExpression="entity = :e",
        ExpressionAttributeValues={":e": {"S": "quarantine"}},
    )["Count"]
    check = (
        f"{fetched} transcripts fetched; {ledger_rows} ledger rows written; "
        f"{quarantined} quarantined; {failures} batch item failures"
    )
    if failures or quarantined or ledger_rows != count + 1 or fetched != count + 1:
        raise RuntimeError(f"processor benchmark went wrong: {check}")
    check += f"; transcript JSON {len(json.dumps(recorded)) / KIB:.0f} KiB"
    return summarise(name, first, samples, check)


def run(intake_requests: int, processor_messages: int) -> dict[str, Stats]:
    from moto import mock_aws

    from usage_meter_local.template import load_template

    template = load_template()
    split = Split()
    with mock_aws():
        resources = provision_stack(template)
        # Import the handlers with a function's environment in place, as Lambda does (Powertools
        # reads its settings when Logger and Metrics are created).
        with function_env(template, "WebhookIntakeFunction", resources):
            from usage_meter.handlers import usage_processor, webhook_intake  # noqa: F401
        install_call_timers(split)
        return {
            "intake": bench_intake(template, resources, intake_requests, split),
            "processor": bench_processor(template, resources, processor_messages, split),
            "processor_1h": bench_processor(
                template, resources, max(20, processor_messages // 10), split, "processor_1h"
            ),
        }


def verdicts(results: dict[str, Stats]) -> list[tuple[str, bool, str]]:
    """Issue 12 asks for honest warm figures, not a latency: PASS when the processor was measured
    with both realistic transcript sizes (its check names the JSON size it fetched, within 10%
    of SIZES) and every message was recorded (the benchmark raises otherwise)."""
    out = []
    for name in ("processor", "processor_1h"):
        stats = results.get(name)
        found = re.search(r"transcript JSON (\d+) KiB", stats.check) if stats else None
        size_ok = found is not None and abs(int(found[1]) * KIB - SIZES[name]) <= SIZES[name] / 10
        detail = (
            f"p50 {stats.p50_ms:.1f} ms, p99 {stats.p99_ms:.1f} ms (own code p50 "
            f"{stats.own_p50_ms:.2f} ms, waiting for the budget {stats.pacer_mean_ms:.1f} ms "
            f"mean); {stats.check}"
            if stats
            else "not measured"
        )
        out.append((f"warm {LABELS[name]}, pacer as deployed", size_ok, detail))
    return out


LABELS = {
    "intake": "webhook intake (1 SQS send + 1 PutEvents)",
    "processor": "usage processor, 5-minute transcript (~140 KiB)",
    "processor_1h": "usage processor, 1-hour transcript (~1.7 MiB)",
}


def markdown(results: dict[str, Stats]) -> str:
    rows = [
        "| Handler | requests | first request (ms) | p50 (ms) | p99 (ms) | mean (ms) "
        "| in boto3+moto, mean (ms) | in HTTP to stand-in, mean (ms) "
        "| waiting for the shared AssemblyAI budget, mean (ms) "
        "| handler's own code p50 / p99 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        rows.append(
            f"| {LABELS[name]} | {r.requests} | {r.first_ms:.1f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.mean_ms:.2f} | {r.aws_mean_ms:.2f} | {r.http_mean_ms:.2f} "
            f"| {r.pacer_mean_ms:.2f} "
            f"| {r.own_p50_ms:.2f} / {r.own_p99_ms:.2f} |"
        )
    shares = ", ".join(
        f"{name} {100 * (r.aws_mean_ms + r.http_mean_ms + r.pacer_mean_ms) / r.mean_ms:.0f}%"
        for name, r in results.items()
    )
    rows.append("")
    rows.append(
        f"Share of the mean spent in moto/botocore, the local HTTP stand-in and waiting for "
        f"the shared budget: {shares}. "
        "moto's in-process emulation dominates these totals; on AWS those calls are network "
        "round trips instead, so read the handler's-own-code column for the code's cost "
        "(its p99 includes garbage-collector pauses, mostly for moto's garbage). "
        "The processor runs with the shared request budget as deployed (2,000 requests per 5 "
        "minutes for the whole deployment: one slot every 150 ms; a one-record invocation "
        "reserves 5 slots and uses one, so back-to-back invocations wait for the schedule)."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intake-requests", type=int, default=2000)
    parser.add_argument("--processor-messages", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)

    add_source_paths()
    isolate_environment()
    out: TextIO = sys.stdout
    print(
        f"warm handlers: {args.intake_requests} intake requests, "
        f"{args.processor_messages} processor messages (in-process, moto + AssemblyAI stand-in)",
        file=out,
        flush=True,
    )
    # The handlers' JSON logs and EMF metrics are produced as on Lambda, then discarded.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        results = run(args.intake_requests, args.processor_messages)
    for r in results.values():
        print(f"{r.handler}: {r.check}", file=out)
    print(markdown(results), file=out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "results": {k: asdict(v) for k, v in results.items()},
                    "request_share_per_5_minutes": 2000,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
