"""Domain errors. Handlers map them to HTTP codes (API, ``handlers/http_errors.py``) or queue
actions (SQS) in one place each; nothing here knows HTTP."""

from __future__ import annotations

from enum import StrEnum


class Rejection(StrEnum):
    """Why a request is refused (the handlers' one mapping turns each into its 4xx)."""

    INVALID = "invalid"  # malformed, or breaks a rule: the caller must change it
    UNAUTHENTICATED = "unauthenticated"  # not signed by a secret the meter accepts
    TOO_LARGE = "too_large"  # over the size the meter reads
    CONFLICT = "conflict"  # contradicts usage already recorded (held in quarantine)
    DISABLED = "disabled"  # the feature is turned off in this deployment (e.g. Allowances)


class RequestRejected(Exception):
    """A request that is truly bad: refused (``kind``; a 4xx at the API) and changes nothing.
    ``code`` is the machine-readable reason, ``message`` the caller's explanation."""

    def __init__(self, kind: Rejection, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message


class TransientFailure(Exception):
    """Something that may work on a retry (AWS or AssemblyAI unavailable, throttled, ...)."""

    def __init__(self, message: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class NotReady(TransientFailure):
    """The transcript is still queued or processing: try again later, never bill it as zero."""


STORAGE_REFUSED = "dynamodb_validation"  # PermanentFailure reason: DynamoDB refused the request
# PermanentFailure reason: AssemblyAI answered a 4xx that is neither about our key (401/403), nor
# "no such transcript" (404), nor transient (408, 429): asking again gets the same answer.
ASSEMBLYAI_CLIENT_ERROR = "assemblyai_client_error"


class PermanentFailure(Exception):
    """Retrying cannot help (e.g. AssemblyAI rejects our API key): dead-letter with the reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class UnstorableUsage(PermanentFailure):
    """DynamoDB refuses a usage row as it stands (an item over 400 KB, a number out of range, a
    key over its limit despite the bounds): retrying cannot help. The flows that record usage
    quarantine it with ``message`` (reason ``unstorable``); anywhere else it is a PermanentFailure
    (``dynamodb_validation``), dead-lettered at once."""

    def __init__(self, message: str) -> None:
        super().__init__(STORAGE_REFUSED, message)


class TranscriptNotFound(Exception):
    """AssemblyAI has no such transcript for this project's key (404)."""
