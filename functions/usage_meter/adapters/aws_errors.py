"""AWS failures in words, for the operator's CLI (the one place outside the usage flows that
calls AWS directly: Lambda invoke, CloudFormation). Everything else gets domain errors from its
adapter (``table_access.failure`` and the like)."""

from __future__ import annotations

from enum import StrEnum

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from usage_meter.logic.errors import TransientFailure

AWS_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)


class AwsProblem(StrEnum):
    NO_REGION = "no_region"  # no region configured
    NO_CREDENTIALS = "no_credentials"  # none, or only part of a key pair
    REFUSED = "refused"  # AWS answered with an error (detail: its code and message)
    OTHER = "other"


def aws_problem(exc: BaseException) -> tuple[AwsProblem, str]:
    """What ``exc`` (an AWS error, or a TransientFailure raised from one) says, and AWS's own
    words for a refusal (``<Code>: <Message>``)."""
    cause = exc.__cause__ if isinstance(exc, TransientFailure) else exc
    if isinstance(cause, NoRegionError):
        return AwsProblem.NO_REGION, ""
    if isinstance(cause, NoCredentialsError | PartialCredentialsError):
        return AwsProblem.NO_CREDENTIALS, ""
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        return AwsProblem.REFUSED, f"{error.get('Code')}: {error.get('Message')}"
    return AwsProblem.OTHER, str(exc)
