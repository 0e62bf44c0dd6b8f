"""Cold start of each Lambda handler module (import + the clients its first request creates),
each run in a fresh interpreter.

For every target a new ``sys.executable`` process imports the module once and reports how long the
import took (``time.perf_counter`` around ``importlib.import_module``) and how many modules it
loaded; the parent measures the process's wall-clock time and reads its peak RSS from
``os.wait4`` (the child's own rusage). Runs are interleaved across targets, one warm-up round is
discarded (it compiles ``.pyc`` files and warms the page cache), and medians are reported.

Targets: the webhook intake handler, the usage processor handler, a naive single-function
baseline (benchmarks/naive_handler.py) and a bare interpreter (``pass``) for reference.
The check: intake cold start (import + clients) <= 0.45 x naive, on CPU seconds (user + sys, inside
the child), as the median of each round's intake / naive ratio: on a shared, loaded machine wall
time swings with the load (0.37-0.52 x in three runs), CPU time and pairing far less.

Usage: python benchmarks/cold_import.py [--runs 15] [--json PATH] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _setup import BENCH_DIR, FUNCTIONS_DIR, OFFLINE_ENV

TARGETS = {
    "intake": "usage_meter.handlers.webhook_intake",
    "processor": "usage_meter.handlers.usage_processor",
    "naive": "naive_handler",
    "interpreter": "",
}
LABELS = {
    "intake": "webhook intake (`usage_meter.handlers.webhook_intake`)",
    "processor": "usage processor (`usage_meter.handlers.usage_processor`)",
    "naive": "naive single function (`benchmarks/naive_handler.py`)",
    "interpreter": "bare interpreter (`python -c pass`)",
}
TARGET_RATIO = 0.45
# What each function does on its first request before any I/O: create its AWS clients (the
# real handlers through adapters/aws_clients.py, one shared botocore session; the naive handler
# its boto3 resource). Part of the cold figure: Lambda bills and the caller waits for it too.
FIRST_REQUEST = {
    "usage_meter.handlers.webhook_intake": (
        "from usage_meter.adapters import aws_clients; aws_clients.sqs(); "
        "aws_clients.secrets_manager()"
    ),
    "usage_meter.handlers.usage_processor": (
        "from usage_meter.adapters import aws_clients; aws_clients.sqs(); "
        "aws_clients.dynamodb(); aws_clients.secrets_manager()"
    ),
    "naive_handler": "import naive_handler; naive_handler._table()",
}

CHILD = """\
import importlib, json, sys, time
name, first_request = sys.argv[1], sys.argv[2]
before = len(sys.modules)
c0 = time.process_time()
t0 = time.perf_counter()
if name:
    importlib.import_module(name)
    exec(first_request)
elapsed = time.perf_counter() - t0
cpu = time.process_time() - c0
print(json.dumps({
    "import_s": elapsed,
    "import_cpu_s": cpu,
    "modules": len(sys.modules) - before,
    "assemblyai": "assemblyai" in sys.modules,
    "boto3": "boto3" in sys.modules,
}))
"""


@dataclass
class Sample:
    import_s: float
    import_cpu_s: float
    wall_s: float
    max_rss_mib: float
    modules: int
    assemblyai: bool
    boto3: bool


@dataclass
class Summary:
    target: str
    module: str
    runs: int
    import_s: float
    wall_s: float
    max_rss_mib: float
    modules: int
    loads_assemblyai: bool
    loads_boto3: bool
    import_min_s: float
    import_max_s: float
    import_cpu_s: float = 0.0  # median CPU seconds (user + sys) of import + clients
    # median over rounds of (this target's CPU seconds / the naive handler's in the same round)
    cpu_ratio: float = 0.0


def child_env(home: str) -> dict[str, str]:
    """A minimal environment: no inherited AWS/AssemblyAI/proxy settings, fake credentials, an
    unreachable AWS endpoint and an empty HOME (no ~/.aws), so an import cannot touch the
    network."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": home,
        "PYTHONPATH": os.pathsep.join([str(FUNCTIONS_DIR), str(BENCH_DIR)]),
        "PYTHONNOUSERSITE": "1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "USAGE_TABLE_NAME": "bench-table",
        "ASSEMBLYAI_API_KEY": "unused-offline",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        "NO_PROXY": "*",
    }
    env.update(OFFLINE_ENV)
    return env


def _rss_mib(ru_maxrss: int) -> float:
    # Linux reports KiB, macOS bytes.
    return ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else ru_maxrss / 1024


def run_once(module: str, env: dict[str, str]) -> Sample:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, module, FIRST_REQUEST.get(module, "")],
        env=env,
        cwd=env["HOME"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    # os.wait4 rather than proc.wait(): it returns this child's own resource usage.
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"importing {module!r} failed:\n{out}")
    data = json.loads(out.strip().splitlines()[-1])
    return Sample(
        import_s=data["import_s"],
        import_cpu_s=data["import_cpu_s"],
        wall_s=wall,
        max_rss_mib=_rss_mib(usage.ru_maxrss),
        modules=data["modules"],
        assemblyai=data["assemblyai"],
        boto3=data["boto3"],
    )


def measure(runs: int) -> dict[str, Summary]:
    samples: dict[str, list[Sample]] = {name: [] for name in TARGETS}
    with tempfile.TemporaryDirectory(prefix="bench-home-") as home:
        env = child_env(home)
        for module in TARGETS.values():  # warm-up round, discarded
            run_once(module, env)
        for _ in range(runs):
            for name, module in TARGETS.items():
                samples[name].append(run_once(module, env))
    out: dict[str, Summary] = {}
    for name, module in TARGETS.items():
        s = samples[name]
        imports = [x.import_s for x in s]
        out[name] = Summary(
            target=name,
            module=module or "(none)",
            runs=len(s),
            import_s=statistics.median(imports),
            wall_s=statistics.median(x.wall_s for x in s),
            max_rss_mib=statistics.median(x.max_rss_mib for x in s),
            modules=int(statistics.median(x.modules for x in s)),
            loads_assemblyai=s[-1].assemblyai,
            loads_boto3=s[-1].boto3,
            import_min_s=min(imports),
            import_max_s=max(imports),
            import_cpu_s=statistics.median(x.import_cpu_s for x in s),
            cpu_ratio=statistics.median(
                x.import_cpu_s / n.import_cpu_s
                for x, n in zip(s, samples["naive"], strict=True)
                if n.import_cpu_s > 0
            ),
        )
    return out


def verdict(results: dict[str, Summary]) -> tuple[bool, float]:
    """The intake's cold start over the naive handler's: the median over rounds of the ratio of
    their CPU seconds (user + sys) in the same round. CPU time is what a loaded machine inflates
    least, and pairing each intake run with the naive run next to it cancels the load's drift;
    wall-clock ratios are reported beside it."""
    ratio = results["intake"].cpu_ratio
    return ratio <= TARGET_RATIO, ratio


def markdown(results: dict[str, Summary]) -> str:
    naive = results["naive"]
    rows = [
        "| Module | import + clients, median (s) | x naive | CPU, median (s) | x naive "
        "(paired median) | process wall, median (s) | x naive "
        "| peak RSS (MiB) | x naive | modules loaded | loads assemblyai |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for name in TARGETS:
        r = results[name]
        rows.append(
            f"| {LABELS[name]} | {r.import_s:.3f} | {r.import_s / naive.import_s:.2f} "
            f"| {r.import_cpu_s:.3f} | {r.cpu_ratio:.2f} "
            f"| {r.wall_s:.3f} | {r.wall_s / naive.wall_s:.2f} "
            f"| {r.max_rss_mib:.1f} | {r.max_rss_mib / naive.max_rss_mib:.2f} "
            f"| {r.modules} | {'yes' if r.loads_assemblyai else 'no'} |"
        )
    ok, ratio = verdict(results)
    rows.append("")
    rows.append(
        "Target: intake cold start (import + first request's clients) <= "
        f"{TARGET_RATIO} x naive, CPU seconds, median of per-round ratios: "
        f"{ratio:.2f} x -> **{'PASS' if ok else 'FAIL'}** (wall-clock medians: "
        f"{results['intake'].import_s / naive.import_s:.2f} x)"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="measured runs per target (>= 7)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target fails")
    args = parser.parse_args(argv)
    if args.runs < 7:
        parser.error("--runs must be at least 7")

    print(f"cold import: {args.runs} fresh `{sys.executable}` processes per target (+1 warm-up)")
    results = measure(args.runs)
    print(markdown(results))
    ok, ratio = verdict(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "runs": args.runs,
                    "results": {k: asdict(v) for k, v in results.items()},
                    "target_ratio": TARGET_RATIO,
                    "ratio": ratio,
                    "pass": ok,
                },
                indent=2,
            )
        )
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
