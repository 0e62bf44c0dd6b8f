"""The local HTTP API: template.yaml's HttpApi routes, each request turned into an API Gateway
HTTP API (payload format 2.0) event for the route's function, its answer written back.

It also answers Lambda's Invoke API (``POST /2015-03-31/functions/<logical id>/invocations``,
as ``sam local start-lambda`` does), so functions with no route, such as the scheduled ones, can be
run against the live stack: ``aws lambda invoke --endpoint-url <this URL> --function-name ...``.

What API Gateway does and this does too: lower-cased header names (repeated headers joined with
commas), cookies in ``cookies``, the raw query string exactly as received, repeated query
parameters joined with commas in ``queryStringParameters``, ``{name}`` / ``{name+}`` path
parameters, ``isBase64Encoded`` bodies when they are not UTF-8 text, 404 ``{"message":"Not Found"}``
for a request no route matches and 500 ``{"message":"Internal Server Error"}`` when the function
fails.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from usage_meter_local.background_server import BackgroundServer
from usage_meter_local.function_pool import Invocation
from usage_meter_local.moto_server import ACCOUNT_ID
from usage_meter_local.ports import bind

log = logging.getLogger("usage_meter_local")
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit
API_ID = "local"
LAMBDA_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations$")

Invoke = Callable[[str, dict[str, Any]], Invocation]


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    path: str  # as declared, e.g. /usage/{customer_id}
    function: str  # logical id
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, method: str, path: str, function: str) -> Route:
        regex = ""
        for part in re.split(r"(\{[^}]+\})", path):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                regex += f"(?P<{name[:-1]}>.+)" if name.endswith("+") else f"(?P<{name}>[^/]+)"
            else:
                regex += re.escape(part)
        return cls(method.upper(), path, function, re.compile(f"^{regex}$"))

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for a request: an exact method beats ANY; a static path beats a templated one."""
    candidates = []
    for route in routes:
        found = route.pattern.match(path)
        if found and route.method in (method, "ANY"):
            rank = (route.method == "ANY", "{" in route.path)
            candidates.append((rank, route, found.groupdict()))
    if not candidates:
        return None
    _, route, params = min(candidates, key=lambda c: c[0])
    # API Gateway HTTP APIs hand the function path parameters percent-decoded
    # (/customers/user%40example.com/usage -> customer_id "user@example.com"); matching happens
    # on the raw path first, so an encoded "/" stays inside its parameter.
    return route, {name: unquote(value) for name, value in params.items()}


def _query_parameters(raw_query: str) -> dict[str, str] | None:
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return {name: ",".join(v) for name, v in values.items()} or None


@dataclass(frozen=True)
class RawRequest:
    """An HTTP request as it arrived."""

    method: str
    target: str  # path and query string, exactly as sent
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]


def build_event(
    route: Route,
    path_parameters: dict[str, str],
    request: RawRequest,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API v2 event for one request."""
    now = now or datetime.now(UTC)
    source_ip = request.source_ip
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[lower] = f"{merged[lower]},{value}" if lower in merged else value
    merged["x-forwarded-for"] = (
        f"{merged['x-forwarded-for']}, {source_ip}" if "x-forwarded-for" in merged else source_ip
    )
    merged.setdefault("x-forwarded-proto", "http")
    request_id = base64.b64encode(secrets.token_bytes(10)).decode()
    host = merged.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": merged,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if (query := _query_parameters(request.query)) is not None:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if request.body:
        try:
            event["body"] = request.body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    return event


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json_answer(status: int, document: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(status, [("content-type", "application/json")], json.dumps(document).encode())


NOT_FOUND = _json_answer(404, {"message": "Not Found"})
INTERNAL_ERROR = _json_answer(500, {"message": "Internal Server Error"})


def answer_from_result(result: Any) -> HttpAnswer:
    """What API Gateway makes of a payload-2.0 function result."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Without a statusCode, API Gateway treats the whole result as a JSON body.
        return HttpAnswer(200, [("content-type", "application/json")], json.dumps(result).encode())
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        return INTERNAL_ERROR
    body = result.get("body")
    if body is None:
        raw = b""
    elif result.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(str(body), validate=True)
        except ValueError:  # binascii.Error is a ValueError
            return INTERNAL_ERROR
    else:
        raw = (body if isinstance(body, str) else json.dumps(body)).encode()
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("content-type", "application/json"))
    headers.extend(("set-cookie", str(c)) for c in result.get("cookies") or [])
    return HttpAnswer(status, headers, raw)


class _Handler(BaseHTTPRequestHandler):
    server: _FrontServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        started = time.monotonic()
        answer, note = self._answer()
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        log.info(
            "%s %s -> %s %s(%.0f ms)",
            self.command,
            self.path,
            answer.status,
            f"{note} " if note else "",
            (time.monotonic() - started) * 1000,
        )

    def _answer(self) -> tuple[HttpAnswer, str]:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self.close_connection = True
            return _json_answer(411, {"message": "Length Required"}), ""
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return _json_answer(400, {"message": "Bad Request"}), ""
        if length > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            return _json_answer(413, {"message": "Request Entity Too Large"}), ""
        request = RawRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=self.rfile.read(length) if length else b"",
            source_ip=str(self.client_address[0]),
            protocol=self.request_version,
        )
        found = match_route(self.server.routes, request.method, request.path)
        invoke_api = LAMBDA_INVOKE.match(request.path) if request.method == "POST" else None
        if found is None and invoke_api and invoke_api["function"] in self.server.functions:
            return self._lambda_invoke(invoke_api["function"], request.body)
        if found is None:
            return NOT_FOUND, "no route"
        route, params = found
        event = build_event(route, params, request)
        invocation = self.server.invoke(route.function, event)
        if not invocation.ok:
            error = invocation.error or {}
            return INTERNAL_ERROR, f"{route.function} failed: {error.get('errorType')}"
        answer = answer_from_result(invocation.result)
        request_id = ("apigw-requestid", event["requestContext"]["requestId"])
        return HttpAnswer(answer.status, [*answer.headers, request_id], answer.body), _summary(
            answer
        )

    def _lambda_invoke(self, function: str, body: bytes) -> tuple[HttpAnswer, str]:
        """Lambda's Invoke API: the payload in, the result (or the error document) out."""
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            return _json_answer(400, {"Type": "User", "message": "payload is not JSON"}), ""
        invocation = self.server.invoke(function, event)
        headers = [("content-type", "application/json")]
        if not invocation.ok:
            headers.append(("x-amz-function-error", "Unhandled"))
        payload = json.dumps(invocation.as_json()).encode()
        return HttpAnswer(200, headers, payload), f"invoked {function}"

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


def _summary(answer: HttpAnswer) -> str:
    try:
        document = json.loads(answer.body)
    except ValueError:
        return ""
    if isinstance(document, dict):
        return str(document.get("error") or document.get("status") or "")
    return ""


class _FrontServer(ThreadingHTTPServer):
    """The server the handler reads its routes, invoker and invokable functions from."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        routes: list[Route],
        invoke: Invoke,
        functions: frozenset[str],
    ) -> None:
        super().__init__(address, _Handler)
        self.routes = routes
        self.invoke = invoke
        self.functions = functions  # what the Lambda Invoke API may call


class HttpFront(BackgroundServer):
    """``HttpFront(routes, invoke, port=3000).start()`` serves until ``stop()``."""

    def __init__(
        self,
        routes: dict[tuple[str, str], str],
        invoke: Invoke,
        host: str = "127.0.0.1",
        port: int = 0,
        functions: frozenset[str] = frozenset(),
    ) -> None:
        self.routes = [Route.of(method, path, fn) for (method, path), fn in routes.items()]
        server = bind(
            port,
            "--api-port",
            lambda: _FrontServer((host, port), self.routes, invoke, functions),
        )
        super().__init__(server, "http-front")
