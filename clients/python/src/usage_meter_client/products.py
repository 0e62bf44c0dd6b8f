"""Usage reports for LLM Gateway, Voice Agent API and Sync API, built from what the application
already holds (standard library only; sent by ``UsageReporter``).

- LLM Gateway: a chat-completions response, as a dict (``response.json()``) or an SDK object
  (the OpenAI SDK's ``ChatCompletion``, the assemblyai SDK's ``LLMGatewayChatCompletion``): its
  id (``id``, else AssemblyAI's ``request_id``), ``model`` and ``usage.prompt_tokens`` /
  ``usage.completion_tokens`` (else ``input_tokens`` / ``output_tokens``). The region follows the
  endpoint: ``llm-gateway.eu.assemblyai.com`` is ``eu``, ``llm-gateway.assemblyai.com`` ``us``;
  pass ``region="global"`` when the request opted into global routing.
- A streaming session's ``LLMGatewayResponse`` event (assemblyai SDK 1.8.2:
  ``turn_order``, ``data``): ``data`` is the response; with no id in it, the source id is the
  session id and the turn order, so a re-sent event stays one usage.
- Sync API: the ``SyncTranscriptResponse`` (``session_id``, ``audio_duration_ms``).
- Voice Agent API: the session id and its connected duration (the SDK has no Voice Agent client
  in 1.8.2; the application measures it or reads the ``session.completed`` webhook's duration).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

LLM_GATEWAY_PATH = "/usage/llm-gateway"
VOICE_AGENT_PATH = "/usage/voice-agent"
SYNC_PATH = "/usage/sync"
EU_LLM_GATEWAY_HOST = "llm-gateway.eu.assemblyai.com"


def field_of(source: Any, name: str) -> Any:
    """``source[name]`` for a dict, ``source.name`` for an object (pydantic, OpenAI SDK), or
    None; also looks in pydantic's extra fields (the assemblyai SDK keeps unknown ones there)."""
    if source is None:
        return None
    if isinstance(source, dict):
        return source.get(name)
    value = getattr(source, name, None)
    if value is None:
        extra = getattr(source, "model_extra", None) or getattr(source, "__pydantic_extra__", None)
        if isinstance(extra, dict):
            value = extra.get(name)
    return value


def llm_gateway_region(base_url: str | None) -> str:
    """``eu`` for the EU endpoint, ``us`` for the default one (docs "Cloud Endpoints and Data
    Residency" for LLM Gateway)."""
    host = urlparse(base_url or "").hostname or ""
    return "eu" if host == EU_LLM_GATEWAY_HOST else "us"


def _when(moment: Any) -> str:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat()
    if isinstance(moment, int | float) and not isinstance(moment, bool):
        return datetime.fromtimestamp(moment, UTC).isoformat()
    return datetime.now(UTC).isoformat()


def llm_gateway_document(
    response: Any,
    *,
    customer_id: str,
    project: str = "default",
    dimensions: dict[str, str] | None = None,
    base_url: str | None = None,
    region: str | None = None,
    model: str | None = None,
    session_id: str | None = None,
    fallback_id: str | None = None,
) -> dict[str, Any]:
    """The ``/usage/llm-gateway`` report of one chat-completions response. Raises ValueError
    when the response carries no usage or no id (nothing to bill once)."""
    usage = field_of(response, "usage")
    prompt = field_of(usage, "prompt_tokens")
    completion = field_of(usage, "completion_tokens")
    prompt = field_of(usage, "input_tokens") if prompt is None else prompt
    completion = field_of(usage, "output_tokens") if completion is None else completion
    if prompt is None or completion is None:
        raise ValueError("the response has no usage.prompt_tokens / usage.completion_tokens")
    response_id = field_of(response, "id") or field_of(response, "request_id") or fallback_id
    if not response_id:
        raise ValueError("the response has no id to bill it once")
    document: dict[str, Any] = {
        "response_id": str(response_id),
        "customer_id": customer_id,
        "project": project,
        "dimensions": dimensions or {},
        "model": field_of(response, "model") or model,
        "region": region or llm_gateway_region(base_url),
        "prompt_tokens": int(prompt),
        "completion_tokens": int(completion),
        "completed_at": _when(field_of(response, "created")),
    }
    if session_id:
        document["session_id"] = session_id
    return document


def sync_document(
    result: Any,
    *,
    customer_id: str,
    model: str,
    project: str = "default",
    dimensions: dict[str, str] | None = None,
    region: str = "global",
) -> dict[str, Any]:
    """The ``/usage/sync`` report of one ``SyncTranscriptResponse`` (dict or SDK object);
    ``model`` is the ``X-AAI-Model`` it was routed to (``SyncTranscriptionConfig.model``)."""
    return {
        "session_id": str(field_of(result, "session_id")),
        "customer_id": customer_id,
        "project": project,
        "dimensions": dimensions or {},
        "model": model,
        "region": region,
        "audio_duration_ms": int(field_of(result, "audio_duration_ms")),
        "transcribed_at": datetime.now(UTC).isoformat(),
    }


def voice_agent_document(
    *,
    session_id: str,
    customer_id: str,
    duration_seconds: int | Decimal,
    ended_at: datetime | None = None,
    project: str = "default",
    dimensions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``/usage/voice-agent`` report of one session's connected conversation time."""
    return {
        "session_id": session_id,
        "customer_id": customer_id,
        "project": project,
        "dimensions": dimensions or {},
        "duration_seconds": str(duration_seconds),
        "ended_at": _when(ended_at),
    }
