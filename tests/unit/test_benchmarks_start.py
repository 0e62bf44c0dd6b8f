"""`make bench` starts: every benchmark script imports with the repository's own paths.

A benchmark that cannot import is a target silently not measured (``forward_latency`` once
failed to find the client package after it moved to ``clients/python``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_bench_imports_every_benchmark() -> None:
    """``run_all.py --help`` imports each benchmark it runs; it must exit 0 and print usage."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: run_all.py")
