"""Which API route an HTTP API (payload 2.0) event is for: one rule for every HTTP handler."""

from __future__ import annotations

from typing import Any


def route_key(event: dict[str, Any]) -> str:
    """The route API Gateway matched, e.g. ``"POST /webhooks/assemblyai"`` (its ``routeKey``).

    Never the ``rawPath``: behind a custom domain's API mapping the raw path carries the
    mapping's path too (``/usage/webhooks/assemblyai``), while ``routeKey`` is the template's
    route. Events without a ``routeKey`` (hand-made ones) fall back to method and path.
    """
    key = event.get("routeKey")
    if isinstance(key, str) and key and key != "$default":
        return key
    http = (event.get("requestContext") or {}).get("http") or {}
    return f"{http.get('method')} {event.get('rawPath')}"
