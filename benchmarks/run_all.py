"""Run every benchmark, print one markdown report and write it to benchmarks/results.md.

Each benchmark runs in its own ``sys.executable`` process (cold starts first, then the warm
handlers, the entitlement check, then the monthly export at scale through botocore, then the cost
model) and hands its figures back as JSON. Every target is printed with PASS or FAIL at the end.

Usage: python benchmarks/run_all.py [--runs 15] [--intake-requests 2000]
                                    [--processor-messages 500]
                                    [--export-rows 1000000 30000000] [--export-customers 10000]
                                    [--strict]
(``make bench`` runs it with the defaults; ``--strict`` exits 1 when a target fails.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import cold_import
import cost_model
import entitlement_check
import export_month
import forward_latency
import reconcile_throughput
import warm_handler
from _setup import BENCH_DIR, ROOT

RESULTS = BENCH_DIR / "results.md"


def _run(script: str, args: list[str]) -> None:
    command = [sys.executable, str(BENCH_DIR / script), *args]
    print(f"$ {' '.join(command)}", flush=True)
    # 1 = ran, a target failed (reported at the end); anything else is a broken benchmark
    if subprocess.run(command, cwd=ROOT, check=False).returncode not in (0, 1):
        raise SystemExit(f"{script} failed")
    print(flush=True)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def targets(
    cold: dict, warm: dict, entitlement: dict, export: dict, reconcile: dict
) -> list[tuple[str, bool, str]]:
    export_results = [export_month.Scenario(**r) for r in export["results"]]
    warm_results = {k: warm_handler.Stats(**v) for k, v in warm["results"].items()}
    return [
        (
            f"intake cold start (import + clients, CPU s, paired median) <= "
            f"{cold['target_ratio']} x naive",
            cold["pass"],
            f"{cold['ratio']:.2f} x",
        ),
        *warm_handler.verdicts(warm_results),
        *entitlement_check.verdicts(entitlement_check.Result(**entitlement)),
        *export_month.verdicts(export_results),
        *reconcile_throughput.verdicts(reconcile_throughput.Result(**reconcile)),
        *cost_model.verdicts(),
    ]


def report(
    cold: dict,
    warm: dict,
    entitlement: dict,
    export: dict,
    forward: dict,
    reconcile: dict,
    seconds: float,
) -> str:
    cold_results = {k: cold_import.Summary(**v) for k, v in cold["results"].items()}
    warm_results = {k: warm_handler.Stats(**v) for k, v in warm["results"].items()}
    export_results = [export_month.Scenario(**r) for r in export["results"]]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "## Benchmarks",
            "",
            f"Measured {when} with Python {cold['python']} on {platform.system()} "
            f"{platform.machine()}, {os.cpu_count()} CPUs ({_cpu()}); `make bench` "
            f"({seconds:.0f} s); load average at the end {os.getloadavg()[0]:.1f} "
            "(the machine is shared: absolute times are inflated, ratios and CPU seconds hold).",
            "",
            "### Targets",
            "",
            *[
                f"- **{'PASS' if ok else 'FAIL'}** {name}: {detail}"
                for name, ok, detail in targets(cold, warm, entitlement, export, reconcile)
            ],
            "",
            "### Cold start (fresh interpreter per run)",
            "",
            f"Median of {cold['runs']} fresh `python -c 'import <module>'` processes per "
            "module (plus the AWS clients its first request creates, one shared botocore "
            "session), interleaved, after one discarded warm-up round (`.pyc` files compiled). "
            "*import* is `time.perf_counter()` around the import inside the child; *process "
            "wall* adds interpreter start-up and exit; peak RSS is the child's `ru_maxrss` "
            "from `os.wait4`. Children get `PYTHONPATH=functions:benchmarks`, fake AWS "
            "credentials, an unreachable AWS endpoint and no proxy or `~/.aws`, so nothing "
            "touches the network.",
            "",
            cold_import.markdown(cold_results),
            "",
            "### Warm handlers (in-process, moto + AssemblyAI stand-in, pacer as deployed)",
            "",
            "Per request, after the first one; handlers invoked directly with the recorded "
            "API Gateway event (unique transcript id each) and one-record SQS events. The "
            "first request's figure excludes loading botocore's service models, which "
            "provisioning the moto stack had already done.",
            "",
            warm_handler.markdown(warm_results),
            "",
            "### Entitlement check (in-process, production path, canned DynamoDB answer)",
            "",
            entitlement_check.NOTES,
            "",
            entitlement_check.markdown(entitlement_check.Result(**entitlement)),
            "",
            "### Monthly export at scale (the real adapter through botocore, canned pages)",
            "",
            export_month.NOTES,
            "",
            export_month.markdown(export_results),
            "",
            "### Reconciliation throughput (the production handler, moto + AssemblyAI stand-in)",
            "",
            reconcile_throughput.NOTES,
            "",
            reconcile_throughput.markdown(reconcile_throughput.Result(**reconcile)),
            "",
            "### Forwarding to the application (whole local stack over HTTP)",
            "",
            forward_latency.NOTES,
            "",
            forward_latency.markdown(forward),
            "",
            "Reproduce: `make bench` (or `.venv/bin/python benchmarks/run_all.py`); one part "
            "alone: `.venv/bin/python benchmarks/cold_import.py`, "
            "`.venv/bin/python benchmarks/warm_handler.py`, "
            "`.venv/bin/python benchmarks/entitlement_check.py [--requests N]`, "
            "`.venv/bin/python benchmarks/forward_latency.py [--notifications N]`, "
            "`.venv/bin/python benchmarks/reconcile_throughput.py [--transcripts N]`, "
            "`.venv/bin/python benchmarks/export_month.py [--rows N ...] [--customers N] "
            "[--workers N]`, `.venv/bin/python benchmarks/cost_model.py`.",
            "",
            "### AWS cost per million (benchmarks/cost_model.py)",
            "",
            cost_model.markdown(cost_model.flows()),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="cold-import runs per module (>= 7)")
    parser.add_argument("--intake-requests", type=int, default=2000)
    parser.add_argument("--processor-messages", type=int, default=500)
    parser.add_argument(
        "--export-rows",
        type=int,
        nargs="+",
        default=list(export_month.DEFAULT_ROWS),
        help="billable ledger rows per monthly-export scenario",
    )
    parser.add_argument("--export-customers", type=int, default=export_month.DEFAULT_CUSTOMERS)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="usage-meter-bench-") as tmp:
        cold_json = Path(tmp) / "cold_import.json"
        warm_json = Path(tmp) / "warm_handler.json"
        entitlement_json = Path(tmp) / "entitlement_check.json"
        export_json = Path(tmp) / "export_month.json"
        forward_json = Path(tmp) / "forward_latency.json"
        reconcile_json = Path(tmp) / "reconcile_throughput.json"
        _run("cold_import.py", ["--runs", str(args.runs), "--json", str(cold_json)])
        _run(
            "warm_handler.py",
            [
                "--intake-requests",
                str(args.intake_requests),
                "--processor-messages",
                str(args.processor_messages),
                "--json",
                str(warm_json),
            ],
        )
        _run("entitlement_check.py", ["--json", str(entitlement_json)])
        _run(
            "export_month.py",
            [
                "--rows",
                *map(str, args.export_rows),
                "--customers",
                str(args.export_customers),
                "--json",
                str(export_json),
            ],
        )
        _run("forward_latency.py", ["--json", str(forward_json)])
        _run("reconcile_throughput.py", ["--json", str(reconcile_json)])
        cold = json.loads(cold_json.read_text())
        warm = json.loads(warm_json.read_text())
        entitlement = json.loads(entitlement_json.read_text())
        export = json.loads(export_json.read_text())
        forward = json.loads(forward_json.read_text())
        reconcile = json.loads(reconcile_json.read_text())

    text = report(
        cold, warm, entitlement, export, forward, reconcile, time.perf_counter() - started
    )
    RESULTS.write_text(text)
    print("=" * 100)
    print(text)
    print(f"written to {RESULTS.relative_to(ROOT)}")
    results = targets(cold, warm, entitlement, export, reconcile)
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}: {name}: {detail}")
    return 1 if args.strict and not all(ok for _, ok, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
