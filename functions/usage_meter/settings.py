"""Environment settings: one model per function, read once through a cached getter.

This module and settings_base.py (the shared field parsers and the webhook intake's model, kept
apart so the intake's cold start builds only what it uses; re-exported here) are the only ones
that read ``os.environ``. Each field names its environment variable in its metadata; tests check
that template.yaml sets every one of them for the functions that use the model. A value's rule
(a range, a set of choices, a pattern) is defined once, by its parser (``IntRange``, ``OneOf``,
``Matching``); tests/unit/test_template_rules.py checks that the template parameter setting it
has the same MinValue/MaxValue, AllowedValues or AllowedPattern and that every default the
template gives equals the field's default. Plain dataclasses with explicit parsing (no pydantic)
keep the webhook intake's cold start small; a bad value fails at the first invocation with a
message naming the variable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache

from usage_meter.logic.standard_webhooks import DEFAULT_TOLERANCE_SECONDS
from usage_meter.models.rules import ORPHAN_LOOKBACK_DAYS, STRIPE_VALUE_UNITS, OrphanPolicy

# The shared machinery and the intake's model (settings_base.py), re-exported: callers import
# every settings name from this module.
from usage_meter.settings_base import (
    DEFAULT_WEBHOOK_AUTH_HEADER_NAME as DEFAULT_WEBHOOK_AUTH_HEADER_NAME,
)
from usage_meter.settings_base import EVENT_BUS_NAME_PATTERN as EVENT_BUS_NAME_PATTERN
from usage_meter.settings_base import HEADER_NAME_PATTERN as HEADER_NAME_PATTERN
from usage_meter.settings_base import TRACE_DISABLED_ENV as TRACE_DISABLED_ENV
from usage_meter.settings_base import BillingDimensionNames as BillingDimensionNames
from usage_meter.settings_base import IntakeSettings as IntakeSettings
from usage_meter.settings_base import IntRange as IntRange
from usage_meter.settings_base import Matching as Matching
from usage_meter.settings_base import OneOf as OneOf
from usage_meter.settings_base import SettingsError as SettingsError
from usage_meter.settings_base import _billing_dimensions as _billing_dimensions
from usage_meter.settings_base import _EnvSettings as _EnvSettings
from usage_meter.settings_base import _event_bus_name as _event_bus_name
from usage_meter.settings_base import _http_url as _http_url
from usage_meter.settings_base import _optional_url as _optional_url
from usage_meter.settings_base import _positive as _positive
from usage_meter.settings_base import _secrets_cache_seconds as _secrets_cache_seconds
from usage_meter.settings_base import _switch as _switch
from usage_meter.settings_base import env as env
from usage_meter.settings_base import intake_settings as intake_settings
from usage_meter.settings_base import tracing_enabled as tracing_enabled

DEFAULT_BASE_URL = "https://api.assemblyai.com"


# The meter's share of AssemblyAI's account-wide 20,000 requests / 5 minutes, for every worker
# and reconciliation together (adapters/request_budget.py; template AssemblyAIRequestShare).
ACCOUNT_REQUESTS_PER_5_MINUTES = 20_000
REQUEST_SHARE = IntRange(
    100, ACCOUNT_REQUESTS_PER_5_MINUTES, " (AssemblyAI's account-wide limit per 5 min)"
)
# Deliveries of a message before its queue dead-letters it (template MaxReceiveCount and
# ForwardMaxAttempts, which also set the queues' maxReceiveCount).
USAGE_RECEIVE_COUNT = IntRange(3, 20)
FORWARD_ATTEMPTS = IntRange(2, 20)
# A Stripe Billing meter's event_name (template StripeMeterEventName; empty there = no sink).
STRIPE_EVENT_NAME_PATTERN = r"^[A-Za-z0-9_:.-]{0,100}$"


@dataclass(frozen=True)
class ProjectConfig:
    """Where to find one AssemblyAI project: its API key secret and its API base URL."""

    api_key_secret_id: str
    base_url: str = DEFAULT_BASE_URL


def _projects(raw: str) -> dict[str, ProjectConfig]:
    document = json.loads(raw)
    if not isinstance(document, dict) or not document:
        raise ValueError('must be a JSON object {"<project>": {"api_key_secret_id": ...}}')
    projects = {}
    for name, spec in document.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("api_key_secret_id"), str):
            raise ValueError(f"project '{name}' needs an api_key_secret_id")
        unknown = set(spec) - {"api_key_secret_id", "base_url"}
        if unknown:
            raise ValueError(f"project '{name}' has unknown keys {sorted(unknown)}")
        projects[name] = ProjectConfig(
            api_key_secret_id=spec["api_key_secret_id"],
            base_url=_http_url(spec.get("base_url", DEFAULT_BASE_URL)),
        )
    return projects


@dataclass(frozen=True, kw_only=True)
class ThresholdAlertSettings(_EnvSettings):
    """Every function that records usage evaluates allowance thresholds and publishes events
    (the template always sets the bus; with neither a bus nor a topic, thresholds are not
    evaluated at all)."""

    event_bus_name: str = env("EVENT_BUS_NAME", _event_bus_name, default="")
    limit_alert_topic_arn: str = env("LIMIT_ALERT_TOPIC_ARN", default="")
    price_table_path: str = env("PRICE_TABLE_PATH", default="usage_meter/config/prices.json")
    # The template's Allowances parameter: off = no customer-month summary item in the usage
    # transaction and no threshold check after it (2 WRU + 2 RRU per usage saved; allowance and
    # entitlement routes answer 409 allowances_disabled).
    allowances: bool = env("ALLOWANCES", _switch, default=False)


@dataclass(frozen=True, kw_only=True)
class AssemblyAISettings(_EnvSettings):
    """How to reach AssemblyAI: projects (key secret + base URL), timeouts and pacing."""

    projects: dict[str, ProjectConfig] = env("ASSEMBLYAI_PROJECTS", _projects)
    base_url_override: str | None = env("ASSEMBLYAI_BASE_URL_OVERRIDE", _optional_url, default=None)
    http_timeout_seconds: float = env(
        "ASSEMBLYAI_HTTP_TIMEOUT_SECONDS", _positive(float), default=10.0
    )
    # The meter's share of AssemblyAI's account-wide 20,000 requests / 5 minutes, for every
    # worker and reconciliation together (adapters/request_budget.py).
    requests_per_5_minutes: int = env(
        "ASSEMBLYAI_REQUESTS_PER_5_MINUTES", REQUEST_SHARE, default=2000
    )
    secrets_cache_seconds: int = _secrets_cache_seconds()

    def project(self, name: str) -> ProjectConfig | None:
        """A project's config; the base URL override (local runs) replaces every base URL."""
        config = self.projects.get(name)
        if config is None or self.base_url_override is None:
            return config
        return ProjectConfig(config.api_key_secret_id, self.base_url_override)


@dataclass(frozen=True, kw_only=True)
class ProcessorSettings(AssemblyAISettings, ThresholdAlertSettings):
    """Usage processor: fetch each transcript from AssemblyAI and record its usage once."""

    table_name: str = env("USAGE_TABLE_NAME")
    usage_queue_url: str = env("USAGE_QUEUE_URL")
    dead_letter_queue_url: str = env("USAGE_DLQ_URL")
    event_bus_name: str = env("EVENT_BUS_NAME", _event_bus_name)
    notification_events: bool = env("NOTIFICATION_EVENTS", _switch, default=True)  # as intake
    billing_dimensions: frozenset[str] = env("BILLING_DIMENSIONS", _billing_dimensions)
    # records of a batch handled side by side (the function is billed for its wall time)
    batch_concurrency: int = env("PROCESSOR_BATCH_CONCURRENCY", _positive(int), default=10)
    # The queue's maxReceiveCount: the last attempt dead-letters with its reason itself, rather
    # than leaving SQS to move the message without one.
    max_receive_count: int = env("USAGE_MAX_RECEIVE_COUNT", USAGE_RECEIVE_COUNT, default=8)


# How far back reconciliation may look, in days: the template's ReconcileHorizonDays MinValue and
# MaxValue, the ops CLI's --horizon-days and the handler's event all use these (AssemblyAI lists
# the last 90 days of transcripts).
HORIZON_DAYS_MIN = 1
HORIZON_DAYS_MAX = 90
HORIZON_DAYS_DEFAULT = 3
HORIZON_DAYS = IntRange(
    HORIZON_DAYS_MIN, HORIZON_DAYS_MAX, f" days (AssemblyAI lists the last {HORIZON_DAYS_MAX} days)"
)
HORIZON_DAYS_RULE = HORIZON_DAYS.rule


def horizon_days(raw: str) -> int:
    """A reconciliation horizon in whole days; ValueError (HORIZON_DAYS_RULE) outside the range."""
    return HORIZON_DAYS(raw)


@dataclass(frozen=True, kw_only=True)
class ReconcileSettings(AssemblyAISettings, ThresholdAlertSettings):
    """Reconciliation: find finished transcripts whose webhook never reached us."""

    table_name: str = env("USAGE_TABLE_NAME")
    webhook_base_url: str = env("WEBHOOK_BASE_URL", _http_url)
    billing_dimensions: frozenset[str] = env("BILLING_DIMENSIONS", _billing_dimensions)
    horizon_days: int = env("RECONCILE_HORIZON_DAYS", HORIZON_DAYS, default=HORIZON_DAYS_DEFAULT)
    max_items_per_run: int = env("RECONCILE_MAX_ITEMS_PER_RUN", _positive(int), default=200_000)
    # missing transcripts fetched side by side (each GET still waits for the shared budget)
    concurrency: int = env("RECONCILE_CONCURRENCY", _positive(int), default=8)


@dataclass(frozen=True)
class ExportSettings(_EnvSettings):
    """Monthly export: aggregates -> priced, versioned files in S3."""

    table_name: str = env("USAGE_TABLE_NAME")
    bucket_name: str = env("EXPORT_BUCKET_NAME")
    prefix: str = env("EXPORT_PREFIX", default="exports")
    price_table_path: str = env("PRICE_TABLE_PATH", default="usage_meter/config/prices.json")
    ledger_workers: int = env("EXPORT_LEDGER_WORKERS", _positive(int), default=4)


@dataclass(frozen=True)
class UsageQuerySettings(_EnvSettings):
    """Usage API: one customer's month, priced like the export."""

    table_name: str = env("USAGE_TABLE_NAME")
    price_table_path: str = env("PRICE_TABLE_PATH", default="usage_meter/config/prices.json")


@dataclass(frozen=True)
class EntitlementSettings(_EnvSettings):
    """The entitlement check: one Query, priced like the usage API."""

    table_name: str = env("USAGE_TABLE_NAME")
    price_table_path: str = env("PRICE_TABLE_PATH", default="usage_meter/config/prices.json")
    allowances: bool = env("ALLOWANCES", _switch, default=False)  # off: 409 allowances_disabled


@dataclass(frozen=True)
class AllowanceApiSettings(ThresholdAlertSettings):
    """The allowance API: versioned, audited allowance changes (evaluates thresholds at once)."""

    table_name: str = env("USAGE_TABLE_NAME")


@dataclass(frozen=True)
class StreamingReportSettings(ThresholdAlertSettings):
    """Streaming session reports from the application's backend (HMAC-signed)."""

    table_name: str = env("USAGE_TABLE_NAME")
    signing_secret_id: str = env("REPORT_SIGNING_SECRET_ID")
    # the Standard Webhooks timestamp tolerance (logic/standard_webhooks.py), also the client's
    max_skew_seconds: int = env(
        "REPORT_MAX_SKEW_SECONDS", _positive(int), default=DEFAULT_TOLERANCE_SECONDS
    )
    secrets_cache_seconds: int = _secrets_cache_seconds()
    max_body_bytes: int = env("REPORT_MAX_BODY_BYTES", _positive(int), default=8192)


@dataclass(frozen=True)
class OrphanSettings(ThresholdAlertSettings):
    """The scheduled sweep for streaming sessions that never reported a termination."""

    table_name: str = env("USAGE_TABLE_NAME")
    policy: str = env("ORPHAN_POLICY", OneOf(tuple(OrphanPolicy)), default=OrphanPolicy.BILL.value)
    lookback_days: int = env("ORPHAN_LOOKBACK_DAYS", _positive(int), default=ORPHAN_LOOKBACK_DAYS)


@dataclass(frozen=True)
class StripeSinkSettings(_EnvSettings):
    """Stripe Billing meter events: one per billable ledger row, from the Stripe queue."""

    table_name: str = env("USAGE_TABLE_NAME")
    secret_id: str = env("STRIPE_SECRET_ID")
    event_name: str = env("STRIPE_METER_EVENT_NAME", Matching(STRIPE_EVENT_NAME_PATTERN))
    dead_letter_queue_url: str = env("STRIPE_DLQ_URL")
    value_unit: str = env("STRIPE_VALUE_UNIT", OneOf(tuple(STRIPE_VALUE_UNITS)), default="seconds")
    api_base_override: str | None = env("STRIPE_API_BASE_OVERRIDE", _optional_url, default=None)
    secrets_cache_seconds: int = _secrets_cache_seconds()


@dataclass(frozen=True)
class ForwarderSettings(_EnvSettings):
    """Forwarding: deliver each notification, signed, to the application's own endpoint."""

    forward_url: str = env("FORWARD_URL", _http_url)
    forward_queue_url: str = env("FORWARD_QUEUE_URL")
    dead_letter_queue_url: str = env("FORWARD_DLQ_URL")
    signing_secret_id: str = env("FORWARD_SIGNING_SECRET_ID")
    auth_secret_id: str = env("FORWARD_AUTH_SECRET_ID")
    max_attempts: int = env("FORWARD_MAX_ATTEMPTS", FORWARD_ATTEMPTS, default=8)
    timeout_seconds: float = env("FORWARD_TIMEOUT_SECONDS", _positive(float), default=5.0)
    secrets_cache_seconds: int = _secrets_cache_seconds()


@lru_cache(maxsize=1)
def stripe_sink_settings() -> StripeSinkSettings:
    return StripeSinkSettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def forwarder_settings() -> ForwarderSettings:
    return ForwarderSettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def processor_settings() -> ProcessorSettings:
    return ProcessorSettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def export_settings() -> ExportSettings:
    return ExportSettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def usage_query_settings() -> UsageQuerySettings:
    return UsageQuerySettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def streaming_report_settings() -> StreamingReportSettings:
    return StreamingReportSettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def orphan_settings() -> OrphanSettings:
    return OrphanSettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def reconcile_settings() -> ReconcileSettings:
    return ReconcileSettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def entitlement_settings() -> EntitlementSettings:
    return EntitlementSettings.from_environ(os.environ)


@lru_cache(maxsize=1)
def allowance_api_settings() -> AllowanceApiSettings:
    return AllowanceApiSettings.from_environ(os.environ)
