"""Webhook header authentication and the cached, rotating webhook secret (no AWS, no moto)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from usage_meter.adapters.secrets import (
    MIN_REFRESH_INTERVAL_SECONDS,
    CachedSecret,
    WebhookSecretValues,
    rotating_values,
)
from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.webhook_auth import verify_webhook_auth

CURRENT = "s3cret-current"
PREVIOUS = "s3cret-previous"


class FakeSecretValues:
    """In-memory ``SecretValues``: ``cached`` until a refresh, which switches to ``fresh``."""

    def __init__(self, cached: Sequence[str], fresh: Sequence[str] | None = None) -> None:
        self.cached = list(cached)
        self.fresh = list(cached if fresh is None else fresh)
        self.calls: list[bool] = []

    def accepted_values(self, *, refresh: bool = False) -> Sequence[str]:
        self.calls.append(refresh)
        if refresh:
            self.cached = self.fresh
        return self.cached


# -- verify_webhook_auth ----------------------------------------------------------------------


@pytest.mark.parametrize("presented", [CURRENT, PREVIOUS], ids=["current", "previous"])
def test_current_and_previous_are_accepted_without_refresh(presented: str) -> None:
    secrets = FakeSecretValues([CURRENT, PREVIOUS])

    assert verify_webhook_auth(presented, secrets) is True
    assert secrets.calls == [False]


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("wrong", id="wrong"),
        pytest.param(CURRENT + " ", id="trailing-space"),
        pytest.param(CURRENT[:-1], id="prefix"),
        pytest.param(CURRENT + "x", id="extension"),
        pytest.param(CURRENT.upper(), id="upper-case"),
        pytest.param(f"{CURRENT},{PREVIOUS}", id="both-joined"),
        pytest.param("s3crét-current", id="non-ascii"),
    ],
)
def test_wrong_value_is_rejected(presented: str) -> None:
    assert verify_webhook_auth(presented, FakeSecretValues([CURRENT, PREVIOUS])) is False


@pytest.mark.parametrize("presented", [None, ""], ids=["none", "empty"])
def test_missing_value_is_rejected_without_reading_the_secret(presented: str | None) -> None:
    secrets = FakeSecretValues([CURRENT])

    assert verify_webhook_auth(presented, secrets) is False
    assert secrets.calls == []


def test_empty_accepted_values_never_match() -> None:
    # A secret whose "previous" is blank must not make an empty-ish header acceptable.
    secrets = FakeSecretValues([CURRENT, ""])

    assert verify_webhook_auth(" ", secrets) is False


def test_miss_triggers_exactly_one_refresh() -> None:
    secrets = FakeSecretValues([CURRENT])

    assert verify_webhook_auth("wrong", secrets) is False
    assert secrets.calls == [False, True]


def test_rotation_is_picked_up_by_the_refresh_on_a_miss() -> None:
    # Given a cache that still holds the old secret, and a rotation already done upstream
    secrets = FakeSecretValues([CURRENT, PREVIOUS], fresh=["s3cret-next", CURRENT])

    # When AssemblyAI presents the new secret, Then the refresh finds it
    assert verify_webhook_auth("s3cret-next", secrets) is True
    assert secrets.calls == [False, True]
    # And the value rotated out of "previous" is no longer accepted
    assert verify_webhook_auth(PREVIOUS, secrets) is False


# -- CachedSecret -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSecretsManager:
    """Just ``get_secret_value``; ``failure`` (when set) is raised instead of answering."""

    def __init__(self, value: str | None = CURRENT) -> None:
        self.value = value
        self.failure: Exception | None = None
        self.reads: list[str] = []

    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]:
        self.reads.append(SecretId)
        if self.failure is not None:
            raise self.failure
        return {"Name": SecretId} if self.value is None else {"SecretString": self.value}


SECRET_ID = "usage-meter/webhook-auth"
TTL = 300.0


def cached(client: FakeSecretsManager, clock: FakeClock, ttl: float = TTL) -> CachedSecret:
    return CachedSecret(client, SECRET_ID, ttl, clock=clock)  # type: ignore[arg-type]


def test_value_is_cached_for_the_ttl() -> None:
    client, clock = FakeSecretsManager(), FakeClock()
    secret = cached(client, clock)

    assert secret.value() == CURRENT
    client.value = "changed"
    clock.advance(TTL - 0.001)

    assert secret.value() == CURRENT
    assert client.reads == [SECRET_ID]


def test_value_is_read_again_after_the_ttl() -> None:
    client, clock = FakeSecretsManager(), FakeClock()
    secret = cached(client, clock)
    secret.value()
    client.value = "changed"
    clock.advance(TTL)

    assert secret.value() == "changed"
    assert len(client.reads) == 2


def test_zero_ttl_reads_every_time() -> None:
    client, clock = FakeSecretsManager(), FakeClock()
    secret = cached(client, clock, ttl=0)

    secret.value()
    secret.value()

    assert len(client.reads) == 2


def test_explicit_refresh_is_rate_limited_to_once_per_30_seconds() -> None:
    assert MIN_REFRESH_INTERVAL_SECONDS == 30.0
    client, clock = FakeSecretsManager(), FakeClock()
    secret = cached(client, clock)
    secret.value()
    client.value = "rotated"

    # Within 30 s of the last read a refresh is served from the cache...
    clock.advance(29.9)
    assert secret.value(refresh=True) == CURRENT
    assert len(client.reads) == 1

    # ...after 30 s it reads again...
    clock.advance(0.1)
    assert secret.value(refresh=True) == "rotated"
    assert len(client.reads) == 2

    # ...and a flood of refreshes right after costs nothing.
    for _ in range(100):
        clock.advance(0.1)
        secret.value(refresh=True)
    assert len(client.reads) == 2


def test_first_refresh_reads_once() -> None:
    client, clock = FakeSecretsManager(), FakeClock(now=0.0)
    secret = cached(client, clock)

    assert secret.value(refresh=True) == CURRENT
    assert len(client.reads) == 1


def test_client_error_becomes_transient_failure_and_is_retried_next_call() -> None:
    client, clock = FakeSecretsManager(), FakeClock()
    client.failure = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetSecretValue"
    )
    secret = cached(client, clock)

    with pytest.raises(TransientFailure, match="ThrottlingException"):
        secret.value()

    client.failure = None
    assert secret.value() == CURRENT
    assert len(client.reads) == 2


def test_botocore_error_becomes_transient_failure() -> None:
    client = FakeSecretsManager()
    client.failure = EndpointConnectionError(endpoint_url="https://secretsmanager.invalid")

    with pytest.raises(TransientFailure):
        cached(client, FakeClock()).value()


def test_secret_without_string_value_is_transient_failure() -> None:
    client = FakeSecretsManager(value=None)  # binary secret: no SecretString

    with pytest.raises(TransientFailure, match="no string value"):
        cached(client, FakeClock()).value()


def test_transient_failure_message_carries_only_the_error_code() -> None:
    client = FakeSecretsManager()
    client.failure = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": f"denied near {CURRENT}"}},
        "GetSecretValue",
    )

    with pytest.raises(TransientFailure) as raised:
        cached(client, FakeClock()).value()

    assert "AccessDeniedException" in str(raised.value)
    assert CURRENT not in str(raised.value)


def test_failed_refresh_keeps_raising_rather_than_serving_nothing() -> None:
    client, clock = FakeSecretsManager(), FakeClock()
    secret = cached(client, clock)
    secret.value()
    clock.advance(TTL)
    client.failure = ClientError({"Error": {"Code": "InternalServiceError"}}, "GetSecretValue")

    with pytest.raises(TransientFailure):
        secret.value()


# -- rotating_values / WebhookSecretValues ----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            f'{{"current": "{CURRENT}", "previous": "{PREVIOUS}"}}',
            [CURRENT, PREVIOUS],
            id="current-and-previous",
        ),
        pytest.param(f'{{"current": "{CURRENT}"}}', [CURRENT], id="current-only"),
        pytest.param(f'{{"current": "{CURRENT}", "previous": ""}}', [CURRENT], id="previous-blank"),
        pytest.param(
            f'{{"current": "{CURRENT}", "previous": null}}', [CURRENT], id="previous-null"
        ),
        pytest.param(
            f'{{"previous": "{PREVIOUS}", "current": "{CURRENT}", "x": "y"}}',
            [CURRENT, PREVIOUS],
            id="order-and-extra-keys",
        ),
        pytest.param(CURRENT, [CURRENT], id="plain-string"),
        pytest.param(f'"{CURRENT}"', [CURRENT], id="json-string"),
        pytest.param("0123abc", ["0123abc"], id="plain-string-leading-digits"),
    ],
)
def test_rotating_values(raw: str, expected: list[str]) -> None:
    assert rotating_values(raw) == expected


@pytest.mark.parametrize("raw", ["{}", '{"secret": "x"}', '{"current": 123}'])
def test_json_object_without_usable_values_is_a_transient_configuration_error(raw: str) -> None:
    # 503 (AssemblyAI retries while the secret is fixed), never a permanent 401
    with pytest.raises(TransientFailure):
        rotating_values(raw)


@pytest.mark.parametrize("raw", ["1234567890123456", "true", "null"])
def test_plain_string_secret_that_looks_like_json_is_still_accepted(raw: str) -> None:
    assert rotating_values(raw) == [raw]


def test_webhook_secret_values_reads_through_the_cache() -> None:
    client, clock = (
        FakeSecretsManager(f'{{"current": "{CURRENT}", "previous": "{PREVIOUS}"}}'),
        FakeClock(),
    )
    values = WebhookSecretValues(cached(client, clock))

    assert list(values.accepted_values()) == [CURRENT, PREVIOUS]
    client.value = '{"current": "next", "previous": "s3cret-current"}'
    clock.advance(MIN_REFRESH_INTERVAL_SECONDS)

    assert list(values.accepted_values()) == [CURRENT, PREVIOUS]
    assert list(values.accepted_values(refresh=True)) == ["next", CURRENT]


def test_rotation_end_to_end_through_the_cache() -> None:
    # Given an instance that read the secret more than 30 s ago
    client, clock = FakeSecretsManager(f'{{"current": "{CURRENT}"}}'), FakeClock()
    values = WebhookSecretValues(cached(client, clock))
    assert verify_webhook_auth(CURRENT, values)
    clock.advance(MIN_REFRESH_INTERVAL_SECONDS)
    # When the secret is rotated and AssemblyAI presents the new value
    client.value = f'{{"current": "next", "previous": "{CURRENT}"}}'

    # Then one refresh picks it up, and the old value stays valid as "previous"
    assert verify_webhook_auth("next", values)
    assert verify_webhook_auth(CURRENT, values)
    assert len(client.reads) == 2
