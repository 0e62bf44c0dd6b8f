"""Application-side helpers for the AssemblyAI usage meter (standard library only, typed).

- ``webhook_target`` / ``configure_webhook``: the webhook URL and auth header that attribute an
  async transcript to a customer (identifiers checked with the service's own rules).
- ``UsageReporter``: signed (Standard Webhooks) reports of streaming sessions, LLM Gateway
  responses, Sync API results and Voice Agent sessions, retried with backoff.
- ``EntitlementClient``: the SigV4-signed "may this customer start more work?" check.
- ``verify_forwarded_notification``: check a notification the meter forwarded to your endpoint.

The modules ``_identifiers``, ``_standard_webhooks`` and ``_limits`` are generated copies of the
service's own rules (the repository's infra/gen_client_rules.py): do not edit them here.
"""

from usage_meter_client._identifiers import InvalidIdentifier
from usage_meter_client._standard_webhooks import InvalidSignature
from usage_meter_client.client import (
    DEFAULT_AUTH_HEADER_NAME,
    ReportRejected,
    UsageReporter,
    WebhookTarget,
    configure_webhook,
    streaming_add_ons,
    verify_forwarded_notification,
    webhook_target,
)
from usage_meter_client.entitlement import (
    EntitlementAnswer,
    EntitlementClient,
    EntitlementUnavailable,
    sigv4_headers,
)

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_AUTH_HEADER_NAME",
    "EntitlementAnswer",
    "EntitlementClient",
    "EntitlementUnavailable",
    "InvalidIdentifier",
    "InvalidSignature",
    "ReportRejected",
    "UsageReporter",
    "WebhookTarget",
    "configure_webhook",
    "sigv4_headers",
    "streaming_add_ons",
    "verify_forwarded_notification",
    "webhook_target",
]
