"""Domain errors. Handlers map them to HTTP codes (API) or queue actions (SQS) in one place each."""

from __future__ import annotations


class RequestRejected(Exception):
    """A request that is truly bad: answered with a 4xx and changes nothing."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
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
