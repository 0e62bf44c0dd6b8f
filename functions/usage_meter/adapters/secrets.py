"""Secrets Manager reads with a small time-based cache (secret values are never logged)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.logic.errors import TransientFailure

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

MIN_REFRESH_INTERVAL_SECONDS = 30.0


class CachedSecret:
    """One secret's string value, re-read after ``ttl_seconds`` or on an explicit refresh.

    Explicit refreshes (after an authentication miss) happen at most every 30 s, so a flood of
    bad requests cannot turn into a flood of Secrets Manager calls.
    """

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._ttl = ttl_seconds
        self._clock = clock
        self._value: str | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def value(self, *, refresh: bool = False) -> str:
        with self._lock:
            age = self._clock() - self._fetched_at
            stale = self._value is None or age >= self._ttl
            if stale or (refresh and age >= MIN_REFRESH_INTERVAL_SECONDS):
                self._value = self._read()
                self._fetched_at = self._clock()
            assert self._value is not None
            return self._value

    def _read(self) -> str:
        try:
            response = self._client.get_secret_value(SecretId=self._secret_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise TransientFailure(f"cannot read secret {self._secret_id}: {code}") from exc
        except BotoCoreError as exc:
            raise TransientFailure(
                f"cannot read secret {self._secret_id}: {type(exc).__name__}"
            ) from exc
        value = response.get("SecretString")
        if not value:
            raise TransientFailure(f"secret {self._secret_id} has no string value")
        return value


class WebhookSecretValues:
    """The webhook header secret: ``{"current": "...", "previous": "..."}`` (previous optional,
    for rotation), or a plain string."""

    def __init__(self, secret: CachedSecret) -> None:
        self._secret = secret

    def accepted_values(self, *, refresh: bool = False) -> Sequence[str]:
        return rotating_values(self._secret.value(refresh=refresh))


def rotating_values(raw: str) -> list[str]:
    """Accepted values of a rotating secret: a JSON object's "current" and "previous", or the
    whole string when it is not a JSON object. An object without either is a configuration
    error, surfaced as TransientFailure (503: AssemblyAI retries) rather than 401 (it gives up)."""
    try:
        document = json.loads(raw)
    except ValueError:
        return [raw]
    if isinstance(document, str):
        return [document] if document else []
    if not isinstance(document, dict):
        return [raw]
    values = [v for k in ("current", "previous") if isinstance(v := document.get(k), str) and v]
    if not values:
        raise TransientFailure("rotating secret has neither a 'current' nor a 'previous' value")
    return values


def api_key_from_secret(raw: str) -> str:
    """An AssemblyAI API key secret: ``{"api_key": "..."}`` or the bare key."""
    try:
        document = json.loads(raw)
    except ValueError:
        return raw.strip()
    if isinstance(document, dict) and isinstance(document.get("api_key"), str):
        return str(document["api_key"]).strip()
    raise TransientFailure('API key secret must be {"api_key": "..."} or the bare key')


class ForwardAuthHeader:
    """The application's own webhook auth header, sent with every forwarded delivery:
    ``{"header_name": "...", "header_value": "..."}``, or ``{}`` for none."""

    def __init__(self, secret: CachedSecret) -> None:
        self._secret = secret

    def header(self) -> tuple[str, str] | None:
        try:
            document = json.loads(self._secret.value())
        except ValueError as exc:
            raise TransientFailure("forward auth secret is not JSON") from exc
        if not isinstance(document, dict) or not document:
            return None
        name, value = document.get("header_name"), document.get("header_value")
        if not (isinstance(name, str) and name and isinstance(value, str) and value):
            raise TransientFailure('forward auth secret must be {"header_name", "header_value"}')
        return name, value
