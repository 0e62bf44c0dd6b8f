"""Plain HTTP POSTs to the application's endpoint (urllib; redirects are never followed)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from usage_meter.logic.forwarding import DeliveryError


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx), never a new destination: only the configured endpoint
    receives notifications."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class UrllibSender:
    def __init__(self) -> None:
        self._opener = urllib.request.build_opener(_NoRedirects())

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        if not url.startswith(("https://", "http://")):
            raise DeliveryError("only http(s) endpoints")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked above
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(1024)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(type(reason).__name__) from exc
