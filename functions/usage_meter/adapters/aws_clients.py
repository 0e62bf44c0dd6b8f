"""AWS clients, created once per process. Endpoints follow the SDK's own configuration
(``AWS_ENDPOINT_URL`` points them at the local stack), so no code path differs locally.

Built on botocore directly rather than boto3: boto3's import drags in s3transfer and costs the
webhook intake about 0.1 s of cold start for nothing it uses (see benchmarks/).

One botocore session per process: a session loads each service's model from disk once (about
0.2 s per service); clients made from it afterwards take milliseconds. Region, endpoint and
credentials are read from the environment when a client is created.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from botocore.config import Config
from botocore.session import get_session

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Libraries that log request and response bodies at DEBUG (botocore prints a GetSecretValue
# answer, SecretString included). They are held at WARNING whatever the root level is (Lambda's
# AWS_LAMBDA_LOG_LEVEL=DEBUG sets the root logger), so no log level can make them print secrets.
LIBRARY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "httpx", "httpcore")


def hold_library_loggers(level: int = logging.WARNING) -> None:
    """Pin the libraries' loggers (and any child that set its own lower level) at ``level``."""
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name, child in list(logging.root.manager.loggerDict.items()):
        library = name.split(".")[0] in LIBRARY_LOGGERS
        if library and isinstance(child, logging.Logger) and 0 < child.level < level:
            child.setLevel(level)


hold_library_loggers()

# Short timeouts and standard retries: the webhook must answer AssemblyAI within 10 s.
_CONFIG = Config(connect_timeout=2, read_timeout=4, retries={"max_attempts": 3, "mode": "standard"})
# EventBridge: publishing an event must never hold the intake's answer for long (see events.py).
_EVENTS_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"}
)


@cache
def _session() -> Any:
    return get_session()


@cache
def _client(service: str) -> Any:
    hold_library_loggers()
    config = _EVENTS_CONFIG if service == "events" else _CONFIG
    client = _session().create_client(service, config=config)
    hold_library_loggers()  # again: creating a client may create loggers
    return client


def sqs() -> SQSClient:
    return cast("SQSClient", _client("sqs"))


def dynamodb() -> DynamoDBClient:
    return cast("DynamoDBClient", _client("dynamodb"))


def secrets_manager() -> SecretsManagerClient:
    return cast("SecretsManagerClient", _client("secretsmanager"))


def s3() -> S3Client:
    return cast("S3Client", _client("s3"))


def events() -> Any:
    """EventBridge (typed as Any: the project does not pin the events stubs)."""
    return _client("events")


def reset() -> None:
    """Forget the clients (tests switch endpoints and environments between runs); the next call
    creates them again from the process's one session, which keeps its loaded service models."""
    _client.cache_clear()


def sns() -> Any:
    return _client("sns")
