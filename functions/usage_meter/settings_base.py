"""Settings machinery every function shares, and the webhook intake's own settings model.

The field parsers (``IntRange``, ``OneOf``, ``Matching``: one definition of each value's rule),
the ``env`` field and ``from_environ`` live here with ``IntakeSettings``, so the webhook intake
builds only the dataclasses it uses at its cold start; usage_meter/settings.py holds every other
function's model and re-exports these names, so callers import from ``usage_meter.settings`` as
before. The two modules are the only ones that read ``os.environ``
(tests/unit/test_template.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Self
from urllib.parse import urlsplit

from usage_meter.models.identifiers import (
    BILLING_DIMENSIONS_PATTERN,
    DIMENSION_NAME_PATTERN,
    RESERVED_PARAMETERS,
)


class SettingsError(ValueError):
    """An environment variable is missing or invalid."""


def env(name: str, parse: Callable[[str], Any] = str, **kwargs: Any) -> Any:
    """A settings field read from environment variable ``name`` and converted with ``parse``."""
    return field(metadata={"env": name, "parse": parse}, **kwargs)


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        value = kind(raw)
        if value <= 0:
            raise ValueError("must be greater than zero")
        return value

    return parse


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


@dataclass(frozen=True)
class IntRange:
    """A whole number ``minimum``..``maximum`` (inclusive): the parser of a settings field, and the
    ``MinValue``/``MaxValue`` of the template parameter that sets it."""

    minimum: int
    maximum: int
    why: str = ""  # appended to the error, e.g. the external limit behind the range

    @property
    def rule(self) -> str:
        return f"must be between {self.minimum} and {self.maximum}{self.why}"

    def __call__(self, raw: str) -> int:
        value = int(raw)
        if not self.minimum <= value <= self.maximum:
            raise ValueError(self.rule)
        return value


@dataclass(frozen=True)
class OneOf:
    """One of ``values``: a settings parser, and the template parameter's ``AllowedValues``."""

    values: tuple[str, ...]

    def __call__(self, raw: str) -> str:
        if raw not in self.values:
            raise ValueError(f"must be one of {', '.join(map(repr, self.values))}")
        return raw


@dataclass(frozen=True)
class Matching:
    """Text matching ``pattern`` (then converted by ``then``): a settings parser, and the
    template parameter's ``AllowedPattern``."""

    pattern: str
    then: Callable[[str], Any] = str

    def __call__(self, raw: str) -> Any:
        if not re.fullmatch(self.pattern, raw):
            raise ValueError(f"must match {self.pattern}")
        return self.then(raw)


# HTTP header names (template WebhookAuthHeaderName), compared in lower case.
HEADER_NAME_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
DEFAULT_WEBHOOK_AUTH_HEADER_NAME = "X-Usage-Meter-Webhook-Secret"
# An existing EventBridge bus's name (template EventBusName; empty there = the stack's own bus).
EVENT_BUS_NAME_PATTERN = r"^[A-Za-z0-9._/-]{0,256}$"


_event_bus_name = Matching(EVENT_BUS_NAME_PATTERN)


def _switch(raw: str) -> bool:
    """``on`` / ``off`` (what the template passes for an optional feature)."""
    value = raw.strip().lower()
    if value not in ("on", "off"):
        raise ValueError("must be 'on' or 'off'")
    return value == "on"


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return raw.rstrip("/")


def _optional_url(raw: str) -> str | None:
    return _http_url(raw) if raw else None


@dataclass(frozen=True)
class BillingDimensionNames(Matching):
    """The comma-separated allow-list of query parameter names ("" = no billing dimensions), each
    a dimension name (models.identifiers) and not a reserved parameter. ``pattern`` is the
    template's strict spelling; spaces around names and empty entries are forgiven here."""

    pattern: str = BILLING_DIMENSIONS_PATTERN

    def __call__(self, raw: str) -> frozenset[str]:
        names = frozenset(part.strip() for part in raw.split(",") if part.strip())
        for name in sorted(names):
            if not re.fullmatch(DIMENSION_NAME_PATTERN, name):
                raise ValueError(f"'{name}' cannot be a dimension name: must match {self.pattern}")
            if name in RESERVED_PARAMETERS:
                raise ValueError(f"'{name}' cannot be a dimension name (reserved)")
        return names


_billing_dimensions = BillingDimensionNames()


def _secrets_cache_seconds() -> Any:
    """How long a function keeps a secret it read (every function that reads one): 300 s."""
    return env("SECRETS_CACHE_SECONDS", _non_negative_int, default=300)


class _EnvSettings:
    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            name = f.metadata["env"]
            raw = environ.get(name)
            if raw is None:
                if f.default is f.default_factory:  # no default: required  # type: ignore[comparison-overlap]
                    raise SettingsError(f"environment variable {name} is required")
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"environment variable {name}: {exc}") from exc
        return cls(**values)

    @classmethod
    def env_names(cls) -> set[str]:
        return {f.metadata["env"] for f in fields(cls)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class IntakeSettings(_EnvSettings):
    """Webhook intake: authenticate, validate, enqueue. Never calls AssemblyAI."""

    usage_queue_url: str = env("USAGE_QUEUE_URL")
    webhook_secret_id: str = env("WEBHOOK_SECRET_ID")
    billing_dimensions: frozenset[str] = env("BILLING_DIMENSIONS", _billing_dimensions)
    event_bus_name: str = env("EVENT_BUS_NAME", _event_bus_name)
    # The template's NotificationEvents parameter: off when nothing consumes the Received events
    # (no forwarding, no events endpoint, the stack's own bus): no PutEvents per webhook.
    notification_events: bool = env("NOTIFICATION_EVENTS", _switch, default=True)
    webhook_auth_header_name: str = env(
        "WEBHOOK_AUTH_HEADER_NAME",
        Matching(HEADER_NAME_PATTERN, str.lower),
        default=DEFAULT_WEBHOOK_AUTH_HEADER_NAME.lower(),
    )
    secrets_cache_seconds: int = _secrets_cache_seconds()
    max_body_bytes: int = env("WEBHOOK_MAX_BODY_BYTES", _positive(int), default=4096)


@lru_cache(maxsize=1)
def intake_settings() -> IntakeSettings:
    return IntakeSettings.from_environ(os.environ)


TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"


def tracing_enabled() -> bool:
    """True when the template turned Powertools Tracer on (``POWERTOOLS_TRACE_DISABLED=false``,
    ``TracingMode=Active``). Unset counts as off. Read at each call (handlers/tracing.py reads it
    once per handler, when the module is imported: the cold start)."""
    return os.environ.get(TRACE_DISABLED_ENV, "true").strip().lower() in ("false", "0")
