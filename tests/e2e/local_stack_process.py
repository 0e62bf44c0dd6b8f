"""Running ``python -m usage_meter_local`` as a developer would: a subprocess on free ports."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "local stack running"
START_TIMEOUT_SECONDS = 60


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (bound together, so they are distinct)."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_stack_env() -> dict[str, str]:
    """This environment without AWS settings, with the service's code on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ASSEMBLYAI_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "functions"), str(ROOT / "infra"), str(ROOT / "clients" / "python" / "src")]
    )
    return env


def run_local_stack(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usage_meter_local", *args],
        cwd=ROOT,
        env=local_stack_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def children_of(pid: int) -> list[int]:
    """Direct child processes (Linux /proc; empty where that is not available)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def process_exists(pid: int) -> bool:
    status = Path(f"/proc/{pid}/stat")
    if status.exists():
        return status.read_text().split()[2] != "Z"  # a zombie has exited
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class ServedStack:
    """``python -m usage_meter_local serve`` running in a subprocess."""

    process: subprocess.Popen[str]
    api_port: int
    aws_port: int
    assemblyai_port: int
    output: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def aws_url(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"

    def client(self, service: str, endpoint_url: str | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint_url or self.aws_url,
            region_name="eu-west-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def stop(self, signum: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)


def start_served_stack(log_dir: Path, *extra: str) -> ServedStack:
    api, aws, assemblyai = free_ports(3)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "usage_meter_local",
            "serve",
            f"--api-port={api}",
            f"--aws-port={aws}",
            f"--assemblyai-port={assemblyai}",
            f"--log-dir={log_dir}",
            *extra,
        ],
        cwd=ROOT,
        env=local_stack_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = ServedStack(process, api, aws, assemblyai)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            served.output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        if READY_LINE in line:
            return served
    served.stop(signal.SIGKILL)
    pytest.fail("the local stack did not start:\n" + "".join(served.output))


@pytest.fixture
def served_stack(tmp_path: Path) -> Iterator[ServedStack]:
    served = start_served_stack(tmp_path / "logs")
    try:
        yield served
    finally:
        if served.process.poll() is None:
            served.stop(signal.SIGKILL)
