"""The parent's side of the function workers: start, invoke (one call at a time), stop.

Each function of template.yaml runs in its own ``usage_meter_local.worker`` process with the
environment the template gives it. Calls to one worker are serialised, like one Lambda execution
environment. A call that outlives the function's Timeout kills the worker (Lambda's
"Task timed out"); a dead worker is started again on the next call (a new cold start).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from usage_meter_local.template import FunctionSpec

log = logging.getLogger("usage_meter_local")
INFRA_DIR = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 3.0
# Local slack on top of the function's Timeout (process start-up, the pipe round trip).
TIMEOUT_SLACK_SECONDS = 1.0


class FunctionStartError(RuntimeError):
    """A function's worker could not import its handler (details in the function's log)."""


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation: the handler's result, or an error in Lambda's shape."""

    request_id: str
    ok: bool
    result: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0

    def as_json(self) -> Any:
        """What ``sam local invoke`` prints: the result, or the error document."""
        return self.result if self.ok else self.error


class FunctionWorker:
    """One function's worker process."""

    def __init__(self, spec: FunctionSpec, env: Mapping[str, str], log_file: IO[str] | None):
        self.spec = spec
        self._env = dict(env)
        self._log_file = log_file
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # -- lifecycle ------------------------------------------------------------------------------
    def launch(self) -> None:
        """Start the process (call ``wait_ready`` next; launching several first overlaps their
        imports)."""
        self._answers = queue.Queue()
        pythonpath = os.pathsep.join([str(self.spec.code_dir), str(INFRA_DIR)])
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "usage_meter_local.worker",
                self.spec.logical_id,
                self.spec.handler,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env={**self._env, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"},
            cwd=self.spec.code_dir,
            text=True,
            encoding="utf-8",
        )
        threading.Thread(
            target=self._read_answers,
            args=(self._process.stdout, self._answers),
            name=f"{self.spec.logical_id}-answers",
            daemon=True,
        ).start()

    @staticmethod
    def _read_answers(stream: IO[str] | None, answers: queue.Queue[str | None]) -> None:
        assert stream is not None
        for line in stream:
            answers.put(line)
        answers.put(None)  # end of file: the process is gone

    def wait_ready(self) -> None:
        try:
            line = self._answers.get(timeout=READY_TIMEOUT_SECONDS)
        except queue.Empty:
            line = None
        document: dict[str, Any] = json.loads(line) if line else {"ready": False}
        if not document.get("ready"):
            self.stop()
            error = document.get("error") or {"errorMessage": "the worker exited while starting"}
            raise FunctionStartError(
                f"{self.spec.logical_id} ({self.spec.handler}) failed to start: "
                f"{error.get('errorType', 'Runtime.Unknown')}: {error.get('errorMessage')}"
            )
        log.debug("%s ready in %s ms", self.spec.logical_id, document.get("init_ms"))

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def begin_close(self) -> None:
        """No more invocations; the worker finishes the current one and exits (stdin closes)."""
        self._closed = True
        process = self._process
        if process and process.stdin and not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def close(self) -> None:
        self.begin_close()
        self.stop()

    def stop(self) -> None:
        """Stop the process (it may start again on the next call unless the worker is closed)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin and not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout:
            process.stdout.close()

    # -- invocation -----------------------------------------------------------------------------
    def invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        with self._lock:
            started = time.monotonic()
            outcome = self._invoke_locked(request_id, event)
            duration = (time.monotonic() - started) * 1000
        return Invocation(
            request_id=request_id,
            ok=outcome.ok,
            result=outcome.result,
            error=outcome.error,
            duration_ms=round(duration, 1),
        )

    def _invoke_locked(self, request_id: str, event: Any) -> Invocation:
        if self._closed:
            return _failed(request_id, "Runtime.Unavailable", "the local stack is shutting down")
        if self._process is None or self._process.poll() is not None:
            self.stop()
            try:
                self.start()
            except FunctionStartError as exc:
                return _failed(request_id, "Runtime.InitError", str(exc))
        process = self._process
        assert process is not None and process.stdin is not None
        timeout = self.spec.timeout_seconds
        request = {"request_id": request_id, "event": event, "timeout_seconds": timeout}
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except OSError:
            self.stop()
            return _failed(request_id, "Runtime.ExitError", "the function's process exited")
        try:
            line = self._answers.get(timeout=timeout + TIMEOUT_SLACK_SECONDS)
        except queue.Empty:
            process.kill()
            self.stop()
            return _failed(
                request_id, "Sandbox.Timedout", f"Task timed out after {timeout} seconds"
            )
        if line is None:
            code = process.wait()
            self.stop()
            return _failed(
                request_id, "Runtime.ExitError", f"the function's process exited (status {code})"
            )
        answer = json.loads(line)
        return Invocation(
            request_id=request_id,
            ok=bool(answer.get("ok")),
            result=answer.get("result"),
            error=answer.get("error"),
        )


def _failed(request_id: str, error_type: str, message: str) -> Invocation:
    return Invocation(
        request_id=request_id,
        ok=False,
        error={"errorMessage": message, "errorType": error_type, "stackTrace": []},
    )


class FunctionPool:
    """The workers of several functions, by logical id."""

    def __init__(self, workers: Iterable[FunctionWorker]) -> None:
        self.workers = {w.spec.logical_id: w for w in workers}

    def start(self, logical_ids: Iterable[str] | None = None) -> None:
        """Start these workers now (default all), overlapping their cold starts. The others start
        on their first invocation."""
        starting = (
            [self.workers[i] for i in logical_ids]
            if logical_ids is not None
            else list(self.workers.values())
        )
        for worker in starting:
            worker.launch()
        try:
            for worker in starting:
                worker.wait_ready()
        except BaseException:
            self.close()
            raise

    def invoke(self, logical_id: str, event: Any) -> Invocation:
        return self.workers[logical_id].invoke(event)

    def pids(self) -> list[int]:
        return [pid for w in self.workers.values() if (pid := w.pid) is not None]

    def close(self) -> None:
        for worker in self.workers.values():
            worker.begin_close()
        for worker in self.workers.values():
            worker.stop()
