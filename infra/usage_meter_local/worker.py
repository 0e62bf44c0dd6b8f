"""One Lambda function's process: ``python -m usage_meter_local.worker <logical id> <handler>``.

Like a Lambda execution environment, each function runs in its own process with its own
environment (the parent passes what template.yaml declares) and keeps its module state between
invocations (warm starts). The protocol is one JSON object per line:

- stdin, from the parent: ``{"request_id": "...", "event": {...}, "timeout_seconds": 10}``
- stdout, to the parent: first ``{"ready": true}`` (or ``{"ready": false, "error": {...}}`` when the
  handler cannot be imported), then one ``{"request_id", "ok", "result" | "error"}`` per request.

The handler's own output (logs, metrics) goes to stderr, which the parent sends to a log file. An
exception in the handler is reported in Lambda's error shape and the process carries on. The process
ends when stdin closes, so it never outlives the parent.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

Handler = Callable[[Any, Any], Any]


@dataclass
class LambdaContext:
    """The context object Lambda passes to a handler (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    aws_request_id: str
    invoked_function_arn: str
    deadline: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self._clock()) * 1000))


def error_document(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """An exception in the shape Lambda reports it (errorMessage, errorType, stackTrace)."""
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def load_handler(path: str) -> Handler:
    module_name, _, function_name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {path!r} is not module.function")
    handler: Handler = getattr(importlib.import_module(module_name), function_name)
    return handler


def _context(logical_id: str, request: dict[str, Any]) -> LambdaContext:
    region = os.environ.get("AWS_REGION", "us-east-1")
    account = "123456789012"  # moto's default account
    return LambdaContext(
        function_name=logical_id,
        memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
        aws_request_id=str(request["request_id"]),
        invoked_function_arn=f"arn:aws:lambda:{region}:{account}:function:{logical_id}",
        deadline=time.monotonic() + float(request.get("timeout_seconds", 3)),
        log_group_name=os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{logical_id}"),
    )


def invoke(handler: Handler, logical_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run one invocation; never raises (errors are part of the answer, as in Lambda)."""
    request_id = request.get("request_id")
    try:
        result = handler(request.get("event"), _context(logical_id, request))
    except Exception as exc:
        # Lambda writes the error to the function's log, then answers the invoker with it.
        traceback.print_exc(file=sys.stderr)
        return {"request_id": request_id, "ok": False, "error": error_document(exc)}
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return {
            "request_id": request_id,
            "ok": False,
            "error": error_document(exc, "Runtime.MarshalError"),
        }
    return {"request_id": request_id, "ok": True, "result": result}


def serve(logical_id: str, handler_path: str, requests: IO[str], answers: IO[str]) -> int:
    def answer(document: dict[str, Any]) -> None:
        answers.write(json.dumps(document) + "\n")
        answers.flush()

    started = time.monotonic()
    try:
        handler = load_handler(handler_path)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        answer({"ready": False, "error": error_document(exc, "Runtime.ImportModuleError")})
        return 1
    answer({"ready": True, "init_ms": round((time.monotonic() - started) * 1000)})
    for line in requests:
        if line.strip():
            answer(invoke(handler, logical_id, json.loads(line)))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m usage_meter_local.worker <logical id> <module.function>")
        return 2
    # The parent stops workers itself: Ctrl-C in a terminal must not kill one mid-invocation.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol on private copies of stdin/stdout; anything the handler prints goes to
    # stderr and the handler cannot read the parent's requests.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return serve(argv[0], argv[1], requests, answers)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
