"""The app's entitlement helper signs like AWS's own SDK (botocore's SigV4Auth, the reference
implementation of AWS Signature Version 4) and needs only the standard library."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from usage_meter_client.entitlement import sigv4_headers

MOMENT = datetime(2026, 11, 29, 16, 5, 9, tzinfo=UTC)


@pytest.mark.parametrize("token", [None, "session-token-value"])
@pytest.mark.parametrize(
    "url",
    [
        "https://abc123.execute-api.eu-west-1.amazonaws.com/customers/acme-corp/entitlement?product=async",
        "https://abc123.execute-api.eu-west-1.amazonaws.com/customers/team%3Aacme%40x/entitlement?product=streaming",
    ],
)
def test_signature_matches_botocore(url: str, token: str | None) -> None:
    stamp = MOMENT.strftime("%Y%m%dT%H%M%SZ")
    request = AWSRequest(method="GET", url=url)
    request.context["timestamp"] = stamp
    request.headers["X-Amz-Date"] = stamp
    if token:
        request.headers["X-Amz-Security-Token"] = token
    auth = SigV4Auth(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMIEXAMPLEKEY", token), "execute-api", "eu-west-1"
    )
    expected = auth.signature(
        auth.string_to_sign(request, auth.canonical_request(request)), request
    )
    ours = sigv4_headers(
        "GET", url, "eu-west-1", ("AKIDEXAMPLE", "wJalrXUtnFEMIEXAMPLEKEY", token), now=MOMENT
    )
    assert ours["Authorization"].endswith(f"Signature={expected}")
    assert (
        "SignedHeaders=" + auth.signed_headers(auth.headers_to_sign(request))
        in ours["Authorization"]
    )
    assert ours["x-amz-date"] == stamp


def test_helper_imports_only_the_standard_library() -> None:
    source = Path("clients/python/src/usage_meter_client/entitlement.py").read_text()
    modules = {
        (node.module or "").split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert modules <= {
        "__future__",
        "hashlib",
        "hmac",
        "json",
        "time",
        "urllib",
        "collections",
        "dataclasses",
        "datetime",
        "typing",
    }
