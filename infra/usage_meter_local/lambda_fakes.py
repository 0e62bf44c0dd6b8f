"""What a handler gets from Lambda, for tests and benchmarks that call handlers in-process: the
recorded events under tests/events, a context object with the attributes Powertools reads, and the
offline stack's region, webhook secrets and AssemblyAI projects (fake values, never real ones).
(The local stack's own worker builds a real-deadline context, worker.LambdaContext.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "tests" / "events"
REGION = "eu-west-1"
WEBHOOK_SECRET = "local-webhook-secret-current"  # noqa: S105 - a fake for the offline stack
PREVIOUS_WEBHOOK_SECRET = "local-webhook-secret-previous"  # noqa: S105 - a fake
API_KEYS = {"default": "local-key-default", "eu": "local-key-eu"}
PROJECTS = {
    "default": {
        "api_key_secret_id": "usage-meter/assemblyai/default",
        "base_url": "https://api.assemblyai.com",
    },
    "eu": {
        "api_key_secret_id": "usage-meter/assemblyai/eu",
        "base_url": "https://api.eu.assemblyai.com",
    },
}


def load_event(relative: str) -> dict[str, Any]:
    """A recorded event, ``relative`` to tests/events (e.g. ``apigw/webhook_completed.json``)."""
    document: dict[str, Any] = json.loads((EVENTS / relative).read_text())
    return document


@dataclass
class FakeLambdaContext:
    """A Lambda context with 30 s always left (deterministic, whatever the machine's load)."""

    function_name: str = "usage-meter-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:usage-meter-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
