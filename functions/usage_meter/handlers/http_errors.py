"""The one mapping of a refused request (``logic.errors.RequestRejected``) to its HTTP status,
for every HTTP function. Standard library only (the webhook intake's cold start imports it)."""

from __future__ import annotations

from usage_meter.logic.errors import Rejection, RequestRejected

REJECTION_STATUS: dict[Rejection, int] = {
    Rejection.INVALID: 400,
    Rejection.UNAUTHENTICATED: 401,
    Rejection.CONFLICT: 409,
    Rejection.TOO_LARGE: 413,
    Rejection.DISABLED: 409,
}


def rejection_status(exc: RequestRejected) -> int:
    """The 4xx a refusal is answered with (RFC 9110: 400 Bad Request, 401 Unauthorized,
    409 Conflict: with the usage already recorded, or with the deployment's configuration;
    413 Content Too Large)."""
    return REJECTION_STATUS[exc.kind]
