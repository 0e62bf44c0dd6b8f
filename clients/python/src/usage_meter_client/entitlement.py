"""The entitlement check from the application (standard library only; re-exported by the package).

    frozen = boto3.Session().get_credentials().get_frozen_credentials()   # or your own source
    checker = EntitlementClient("https://<api-id>.execute-api.eu-west-1.amazonaws.com",
                                region="eu-west-1",
                                credentials=lambda: (frozen.access_key, frozen.secret_key,
                                                     frozen.token))
    answer = checker.check("acme-corp", product="async")
    if not answer.allowed:
        refuse(answer.reason)                 # e.g. "hard limit reached: async seconds 660 of 600"

The route is IAM-authorized, so requests are signed with AWS Signature Version 4 (service
``execute-api``). Credentials come from ``credentials``, a callable returning the access key id,
secret access key and session token (or None), called for every request so rotating role
credentials work. The caller's IAM policy needs ``execute-api:Invoke`` on
``GET /customers/*/entitlement``.

The answer reflects usage the meter has recorded (see README "Plans and limits" for what is not
yet counted: streaming sessions in progress, async jobs not finished). A check that cannot be
answered (network, 5xx after one retry) raises EntitlementUnavailable: decide in the app whether
to fail open or closed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

Credentials = tuple[str, str, str | None]  # access key id, secret access key, session token
RETRYABLE = frozenset({429, 500, 502, 503, 504})


class EntitlementUnavailable(Exception):
    """The check could not be answered; the app chooses to fail open or closed."""


@dataclass(frozen=True)
class EntitlementAnswer:
    """``allowed``: may the customer start more work on the product; ``limits``: each limit that
    applies with ``allowance``, ``used``, ``remaining`` (decimal strings), ``exhausted``."""

    allowed: bool
    reason: str
    limits: tuple[dict[str, Any], ...]
    document: dict[str, Any]


def sigv4_headers(
    method: str,
    url: str,
    region: str,
    credentials: Credentials,
    *,
    now: datetime | None = None,
    service: str = "execute-api",
) -> dict[str, str]:
    """AWS Signature Version 4 headers for a request without a body (``url`` already encoded).

    Follows AWS's "Create a signed AWS API request" steps: canonical request (path segments
    URI-encoded again, sorted query, host and x-amz-* headers), string to sign, derived key.
    """
    key, secret, token = credentials
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date, day = moment.strftime("%Y%m%dT%H%M%SZ"), moment.strftime("%Y%m%d")
    parts = urlsplit(url)
    query = "&".join(
        sorted(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, _, v in (pair.partition("=") for pair in parts.query.split("&") if pair)
        )
    )
    headers = {"host": parts.netloc, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/~"),
            query,
            "".join(f"{name}:{headers[name]}\n" for name in sorted(headers)),
            signed,
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing_key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in headers.items() if k != "host"}
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return out


class EntitlementClient:
    """``GET <api_url>/customers/{customer_id}/entitlement?product=...``, SigV4-signed."""

    def __init__(
        self,
        api_url: str,
        *,
        region: str,
        credentials: Callable[[], Credentials] | None = None,
        timeout_seconds: float = 2.0,
        sign: bool = True,
    ) -> None:
        self._base = api_url.rstrip("/")
        self._region = region
        if sign and credentials is None:
            raise ValueError("credentials are required to sign (sign=False only locally)")
        self._credentials = credentials
        self._timeout = timeout_seconds
        self._sign = sign  # False only for the local stack, which does not check IAM

    def check(self, customer_id: str, product: str = "async") -> EntitlementAnswer:
        """Raises ValueError (400: bad customer id or product) or EntitlementUnavailable."""
        url = (
            f"{self._base}/customers/{quote(customer_id, safe='')}/entitlement?"
            f"{urlencode({'product': product})}"
        )
        for attempt in (1, 2):
            headers = {"Accept": "application/json"}
            if self._credentials is not None and self._sign:
                headers |= sigv4_headers("GET", url, self._region, self._credentials())
            request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                    document = json.loads(response.read())
                return EntitlementAnswer(
                    allowed=bool(document["allowed"]),
                    reason=str(document["reason"]),
                    limits=tuple(document.get("limits", ())),
                    document=document,
                )
            except urllib.error.HTTPError as exc:
                body = exc.read().decode(errors="replace")[:500]
                if exc.code == 400:
                    raise ValueError(body) from exc
                if exc.code not in RETRYABLE or attempt == 2:
                    raise EntitlementUnavailable(f"HTTP {exc.code}: {body}") from exc
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                if attempt == 2:
                    raise EntitlementUnavailable(str(exc)) from exc
            time.sleep(0.1)
        raise EntitlementUnavailable("unreachable")  # pragma: no cover - the loop returns or raises
