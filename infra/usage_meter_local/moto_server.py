"""AWS on localhost: moto's server mode, a real HTTP endpoint speaking the AWS APIs.

Every boto3 client honours ``AWS_ENDPOINT_URL``, so the functions reach this server with no code
path that differs from AWS. The server is built like ``moto.server.ThreadedMotoServer`` but binds
its port on the caller's thread: ThreadedMotoServer binds on its own thread and waits forever
when the port is taken.

moto's DynamoDB gets AWS's isolation and idempotency first (``dynamodb_isolation``): without it,
concurrent transactions lose each other's writes and every transaction copies the whole table.
Its SQS answers without rescanning the whole queue per message and EventBridge
parses a rule's paths once (``moto_scaling``), so a queue
thousands deep costs what a short one does.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import boto3
from moto.core.base_backend import BackendDict
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from usage_meter_local import dynamodb_isolation, moto_scaling
from usage_meter_local.background_server import BackgroundServer
from usage_meter_local.ports import bind

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

DEFAULT_REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account
# Placeholder credentials: moto accepts any; real AWS would reject these.
FAKE_ACCESS_KEY_ID = "local"
FAKE_SECRET_ACCESS_KEY = "local"  # noqa: S105 - not a secret, moto accepts anything


def aws_environment(endpoint_url: str, region: str) -> dict[str, str]:
    """Environment variables that point every AWS SDK at the local endpoint and nowhere else."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
        # Never pick up a developer's profiles, SSO sessions or instance credentials.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class AwsClients:
    """boto3 clients for the local endpoint (explicit endpoint, region and credentials)."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id=FAKE_ACCESS_KEY_ID,
            aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
            region_name=region,
        )
        self.dynamodb: DynamoDBClient = session.client("dynamodb", endpoint_url=endpoint_url)
        self.sqs: SQSClient = session.client("sqs", endpoint_url=endpoint_url)
        self.s3: S3Client = session.client("s3", endpoint_url=endpoint_url)
        self.secretsmanager: SecretsManagerClient = session.client(
            "secretsmanager", endpoint_url=endpoint_url
        )
        self.events: Any = session.client("events", endpoint_url=endpoint_url)


class MotoServer(BackgroundServer):
    """``with MotoServer(port=0) as aws: aws.url`` - moto's server on a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, flag: str = "--aws-port") -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per AWS call
        # moto's backends are per process: a server started in a process where an earlier one
        # ran (a test module's stack set up again after another module ran in between, as
        # pytest-xdist's worksteal can order them) would see that stack's tables. A new server
        # is a new, empty AWS, as a new moto server process is.
        BackendDict.reset()
        dynamodb_isolation.install()
        moto_scaling.install()
        sock = bind(port, flag, lambda: socket.create_server((host, port)))
        try:
            server: BaseWSGIServer = make_server(
                host,
                port,
                DomainDispatcherApplication(create_backend_app),
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=sock.fileno(),  # werkzeug duplicates the descriptor
            )
        finally:
            sock.close()
        super().__init__(server, "moto-server")
