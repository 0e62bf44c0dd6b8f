"""Naive baseline for the cold-import benchmark: the single-function webhook handler that
AssemblyAI's webhook guide leads to, written the usual Lambda way.

Everything is imported at the top (the AssemblyAI SDK, boto3 and Powertools' Logger, Metrics and
event handler) and the webhook is handled inline: parse the body, fetch the transcript with
``aai.Transcript.get_by_id``, write the usage to DynamoDB, answer. It is only ever imported by
benchmarks/cold_import.py, never run against real services.

To keep the comparison about imports alone (and conservative for the real handlers), the boto3
resource is created on first use, like the real handlers create their clients, rather than at
module level as many examples do.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import assemblyai as aai
import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

aai.settings.api_key = os.environ.get("ASSEMBLYAI_API_KEY", "")
logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()


@cache
def _table() -> Any:
    return boto3.resource("dynamodb").Table(os.environ["USAGE_TABLE_NAME"])


@app.post("/webhooks/assemblyai")
def receive_webhook() -> Response[Any]:
    event = app.current_event
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret or event.get_header_value("x-usage-meter-webhook-secret") != secret:
        return Response(401, content_types.APPLICATION_JSON, {"error": "unauthorized"})
    body = event.json_body
    customer_id = event.get_query_string_value("customer_id", "unknown")
    transcript = aai.Transcript.get_by_id(body["transcript_id"])
    if transcript.status == aai.TranscriptStatus.error:
        logger.warning("transcript failed", extra={"transcript_id": transcript.id})
        return Response(200, content_types.APPLICATION_JSON, {"status": "ignored"})
    _table().put_item(
        Item={
            "PK": f"CUSTOMER#{customer_id}",
            "SK": f"TRANSCRIPT#{transcript.id}",
            "audio_duration": Decimal(str(transcript.audio_duration or 0)),
            "recorded_at": datetime.now(UTC).isoformat(),
        }
    )
    metrics.add_metric(name="TranscriptsMetered", unit=MetricUnit.Count, value=1)
    logger.info("usage recorded", extra={"transcript_id": transcript.id})
    return Response(200, content_types.APPLICATION_JSON, {"status": "recorded"})


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
