"""boto3 clients, created once per process. Endpoints follow boto3's own configuration
(``AWS_ENDPOINT_URL`` points them at the local stack), so no code path differs locally."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Short timeouts and standard retries: the webhook must answer AssemblyAI within 10 s.
_CONFIG = Config(connect_timeout=2, read_timeout=4, retries={"max_attempts": 3, "mode": "standard"})


@lru_cache(maxsize=1)
def sqs() -> SQSClient:
    return boto3.client("sqs", config=_CONFIG)


@lru_cache(maxsize=1)
def dynamodb() -> DynamoDBClient:
    return boto3.client("dynamodb", config=_CONFIG)


@lru_cache(maxsize=1)
def secrets_manager() -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=_CONFIG)


def reset() -> None:
    """Forget the clients (tests switch endpoints between runs)."""
    for factory in (sqs, dynamodb, secrets_manager):
        factory.cache_clear()
