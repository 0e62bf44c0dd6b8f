"""Authenticating AssemblyAI's webhook by the custom header chosen at submission."""

from __future__ import annotations

import hmac

from usage_meter.logic.ports import SecretValues


def _matches(presented: bytes, accepted: list[str]) -> bool:
    # Compare against every accepted value without short-circuiting, in constant time each.
    matched = False
    for value in accepted:
        matched |= hmac.compare_digest(presented, value.encode())
    return matched


def verify_webhook_auth(presented: str | None, secrets: SecretValues) -> bool:
    """True when the header carries the current or the previous secret.

    On a miss the secret is re-read once (bypassing the cache) so a rotation is picked up at once
    instead of failing webhooks until the cache expires.
    """
    if not presented:
        return False
    raw = presented.encode()
    if _matches(raw, [v for v in secrets.accepted_values() if v]):
        return True
    return _matches(raw, [v for v in secrets.accepted_values(refresh=True) if v])
