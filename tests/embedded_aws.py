"""One embedded AWS (moto, in process) for the whole test session, provisioned once from
template.yaml, and put back to its just-provisioned state before each test that uses it.

Starting moto, parsing the template and creating the tables, queues, buckets and secrets cost
about 0.5 s; doing that for each of several hundred tests was most of the suite's time. Here it
happens once. Before each test, :meth:`EmbeddedAws.fresh` restores the provisioned state:

- the data is cleared: every item of the template's tables, every message of its queues
  (visible, in flight or delayed), every object of its buckets;
- anything else a test changed - a table, queue, bucket or secret created, deleted or altered
  (a rotated secret, a queue's attributes, a bucket's versioning), or any other AWS service
  used at all - is detected, and then the whole account is reset and provisioned again.

So a test can do anything to its AWS, as before, and the next test still starts from a fresh
stack; only tests that change more than data pay for a full reset (about 0.1 s).

Detection reads moto's in-memory backends (moto is pinned in pyproject.toml); the tests in
tests/unit/test_embedded_aws.py prove every kind of change is caught.

A process that starts moto's *server* in this process (the local stack in tests/e2e) shares moto's
backends with this mock: call :meth:`EmbeddedAws.suspend` first (tests/e2e/conftest.py does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.base_backend import BackendDict
from moto.core.config import default_user_config
from moto.core.models import DEFAULT_ACCOUNT_ID

from usage_meter_local.lambda_fakes import REGION
from usage_meter_local.template import LocalResources, load_template, provision


@dataclass(frozen=True)
class SecretSpec:
    name: str
    value: str


def scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS or AssemblyAI setting of the developer's environment reaches the tests: fake
    credentials, a fixed region, no endpoint overrides or profiles."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "ASSEMBLYAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


class EmbeddedAws:
    """moto's in-process AWS with the template's resources and the given secrets."""

    def __init__(self, secrets: list[SecretSpec]) -> None:
        self._secrets = secrets
        self._mock: Any = None
        self._unpatch: Callable[[], None] = lambda: None
        self._baseline: Any = None
        self.resources = LocalResources()
        self.full_resets = 0  # how often a test changed more than data (reported at the end)
        self._clients: dict[str, Any] = {}

    # -- clients shared by the fixtures (explicit region and credentials, made once) -----------
    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.session.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
            ).client(service)
        return self._clients[service]

    def table(self, name: str) -> Any:
        """A boto3 ``Table`` resource (items come back as Python values, numbers as Decimal)."""
        if "dynamodb-resource" not in self._clients:
            self._clients["dynamodb-resource"] = boto3.session.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
            ).resource("dynamodb")
        return self._clients["dynamodb-resource"].Table(name)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the mock and provision, unless that is done already (then False)."""
        if self._mock is not None:
            return False
        # The environment's credentials are left alone: the tests set their own.
        core = {**default_user_config["core"], "mock_credentials": False}
        self._mock = mock_aws(config={"core": core})
        self._mock.start()
        self._unpatch = _answer_hopeless_long_polls_at_once()
        self._provision()
        return True

    def fresh(self) -> LocalResources:
        """The provisioned resources, with no data in them and nothing else changed."""
        if self.start():
            return self.resources
        if self._inventory() != self._baseline:
            self._reprovision()
        else:
            self._clear_data()
        return self.resources

    def suspend(self) -> None:
        """Stop the mock and forget its data (the next :meth:`fresh` provisions again)."""
        if self._mock is not None:
            self._unpatch()
            self._mock.stop()  # resets every moto backend
            self._mock = None

    def _reprovision(self) -> None:
        self.full_resets += 1
        BackendDict.reset()  # what mock_aws does when it starts
        self._provision()

    def _provision(self) -> None:
        with _scrubbed():
            self.resources = provision(
                load_template(),
                self.client("dynamodb"),
                self.client("sqs"),
                self.client("s3"),
                events=self.client("events"),
            )
            for secret in self._secrets:
                self.client("secretsmanager").create_secret(
                    Name=secret.name, SecretString=secret.value
                )
        self._baseline = self._inventory()

    def _clear_data(self) -> None:
        backends = _backends()
        for name in self.resources.tables.values():
            backends.dynamodb.get_table(name).items.clear()
        for url in self.resources.queue_urls.values():
            queue = backends.sqs.queues[url.rsplit("/", 1)[1]]
            queue.last_purged_at = None  # SQS allows one purge a minute; these are not the test's
            backends.sqs.purge_queue(queue.name)
            queue.last_purged_at = None
        for name in self.resources.buckets.values():
            bucket = backends.s3.get_bucket(name)
            for key in list(bucket.keys):
                backends.s3.delete_object(name, key)

    def _inventory(self) -> Any:
        """What a test may change besides data: every backend in use, and the shape of every
        table, queue, bucket and secret (never their items, messages or objects)."""
        backends = _backends()
        in_use = sorted(
            (b.service_name, account, region)
            for b in BackendDict._instances  # type: ignore[misc]
            for account, region, _ in b.iter_backends()
        )
        tables = sorted(
            (
                name,
                json.dumps(t.schema, sort_keys=True),
                json.dumps(t.attr, sort_keys=True),
                sorted(i.name for i in t.global_indexes),
                sorted(i.name for i in t.indexes),
                json.dumps(t.ttl, sort_keys=True, default=str),
                t.billing_mode,
            )
            for name, t in backends.dynamodb.tables.items()
        )
        # moto stamps a queue (float seconds) when it is created and when its attributes change.
        queues = sorted(
            (name, q.created_timestamp, q.last_modified_timestamp)
            for name, q in backends.sqs.queues.items()
        )
        buckets = sorted(
            (name, str(b.versioning_status), str(b.policy), str(b.notification_configuration))
            for name, b in backends.s3.buckets.items()
        )
        secrets = sorted(
            (
                name,
                str(getattr(s, "default_version_id", None)),
                sorted(getattr(s, "versions", {})),
                str(getattr(s, "deleted_date", None)),
                str(getattr(s, "description", None)),
            )
            for name, s in dict.items(backends.secrets.secrets)
        )
        events = sorted(
            (bus, sorted(getattr(backends.events, "rules", {}) or {}))
            for bus in getattr(backends.events, "event_buses", {}) or {}
        )
        return in_use, tables, queues, buckets, secrets, events


def _answer_hopeless_long_polls_at_once() -> Callable[[], None]:
    """A long poll (``WaitTimeSeconds``) of a queue holding no message that can become visible
    before the wait ends returns empty at once instead of after the wait, as SQS would return
    empty at its end: in this process nothing else sends while a test waits. (The DLQ browser
    long-polls 1 s to be sure a queue is empty; each listing cost a second of sleep.) Returns
    the function that undoes the patch."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message

    def receive_message(
        self: Any, queue_name: str, count: int, wait_seconds_timeout: int, *args: Any, **kw: Any
    ) -> Any:
        if wait_seconds_timeout:
            horizon = unix_time_millis() + wait_seconds_timeout * 1000
            queue = self.get_queue(queue_name)
            if not any(  # moto's own fields: when a message can next be received
                max(m.visible_at, m.delayed_until) <= horizon for m in queue._messages
            ):
                wait_seconds_timeout = 0
        return original(self, queue_name, count, wait_seconds_timeout, *args, **kw)

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]

    def undo() -> None:
        SQSBackend.receive_message = original  # type: ignore[method-assign]

    return undo


@dataclass(frozen=True)
class _Backends:
    dynamodb: Any
    sqs: Any
    s3: Any
    secrets: Any
    events: Any


def _backends() -> _Backends:
    from moto.dynamodb.models import dynamodb_backends
    from moto.events.models import events_backends
    from moto.s3.models import s3_backends
    from moto.secretsmanager.models import secretsmanager_backends
    from moto.sqs.models import sqs_backends

    return _Backends(
        dynamodb=dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION],
        sqs=sqs_backends[DEFAULT_ACCOUNT_ID][REGION],
        s3=s3_backends[DEFAULT_ACCOUNT_ID]["aws"],
        secrets=secretsmanager_backends[DEFAULT_ACCOUNT_ID][REGION],
        events=events_backends[DEFAULT_ACCOUNT_ID][REGION],
    )


@contextmanager
def _scrubbed() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        scrub_environment(monkeypatch)
        yield
