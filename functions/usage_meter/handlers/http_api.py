"""The HTTP functions' one way of answering (all but the webhook intake, which stays lean).

Each function's routes live on a Powertools ``Router``; ``resolver`` wraps them in an
``APIGatewayHttpResolver`` with request validation (pydantic models, typed query and path
parameters) and maps every domain error to its HTTP answer here, in one place
(``error_answer``). ``docs/openapi.json`` is generated from the same routers
(``handlers/openapi.py``).

API Gateway has already matched the route: ``resolve`` hands the resolver the route API Gateway
matched (``routeKey`` with ``pathParameters`` filled in, percent-encoded), never the raw path,
so a custom domain's API mapping (``/usage/customers/...``) routes the same, and a path
parameter comes back to the route function exactly as ``path_value`` decodes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from usage_meter.handlers import correlation
from usage_meter.handlers.http_errors import rejection_status
from usage_meter.handlers.routes import route_key
from usage_meter.logic.errors import PermanentFailure, Rejection, RequestRejected, TransientFailure
from usage_meter.logic.operations import InvalidOperation, OperationRefused
from usage_meter.models.identifiers import InvalidIdentifier

JSON = "application/json"
# One key per route in ``Route.dependant.query_params`` is all a route reads; any other query
# parameter is refused (400 unknown_parameter) rather than ignored, so ``?Month=2025-01`` never
# answers another month.
UNKNOWN_PARAMETER = "unknown_parameter"
ErrorHook = Callable[[int, str], None]
Check = Callable[[dict[str, Any]], None]
# The domain errors error_answer maps; anything else is a bug and propagates (Lambda's 5xx).
HANDLED: tuple[type[Exception], ...] = (
    RequestRejected,
    RequestValidationError,
    InvalidIdentifier,
    OperationRefused,
    TransientFailure,
    PermanentFailure,
    NotFoundError,
)
# The routes API Gateway authorizes with IAM (SigV4): their OpenAPI ``security`` requirement
# (the scheme is declared where the document is generated, infra/openapi.py).
IAM: list[dict[str, list[str]]] = [{"sigv4": []}]
logger = Logger()


def _loads(body: str) -> Any:
    """JSON with numbers kept exact: a fraction such as ``312.25`` becomes ``Decimal`` (money and
    seconds are never floats), as pydantic's JSON mode keeps them."""
    return json.loads(body, parse_float=Decimal)


def new_router() -> APIGatewayHttpRouter:
    """A new Powertools router for one function's routes."""
    return APIGatewayHttpRouter()  # type: ignore[no-untyped-call]


def path_value(raw: str) -> str:
    """A path parameter as the route function sees it: percent-decoded once. ``%`` never belongs
    to a valid identifier, so a value still carrying one is decoded (API Gateway passes
    ``user%40example.com`` as sent)."""
    return unquote(raw) if "%" in raw else raw


def canonical_event(event: Mapping[str, Any], default_route: str | None = None) -> dict[str, Any]:
    """``event`` with the path and method of the route API Gateway matched (``routeKey``), each
    path parameter percent-encoded in its place. Hand-made events without ``routeKey`` keep
    their method and ``rawPath``, or, with neither, are for ``default_route``."""
    method, _, template = _route(event, default_route).partition(" ")
    params = event.get("pathParameters") or {}

    def fill(match: re.Match[str]) -> str:
        return quote(path_value(str(params.get(match.group(1), ""))), safe="")

    path = re.sub(r"\{(\w+)\}", fill, template)
    context = dict(event.get("requestContext") or {})
    context["http"] = {**(context.get("http") or {}), "method": method, "path": path}
    context["stage"] = "$default"
    return {
        **event,
        "rawPath": path,
        "rawQueryString": event.get("rawQueryString") or "",
        "headers": event.get("headers") or {},
        "requestContext": context,
    }


def _route(event: Mapping[str, Any], default_route: str | None) -> str:
    bare = not event.get("routeKey") and not event.get("rawPath")
    return default_route if bare and default_route else route_key(dict(event))


def template_route(method: str, rule: str) -> str:
    """Powertools' ``("GET", "/customers/<customer_id>/usage")`` as the template's route key
    ``"GET /customers/{customer_id}/usage"``."""
    path = re.sub(r"<(\w+)>", r"{\1}", rule)
    return f"{method} {path}"


def validation_message(errors: list[Any]) -> str:
    """``"field.sub: problem; ..."`` for the first five problems (no input values: they may be
    anything the caller sent)."""
    problems = []
    for error in errors[:5]:
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        problems.append(f"{'.'.join(loc) or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(problems)


def _unknown_parameters(app: APIGatewayHttpResolver, next_middleware: Any) -> Any:
    route = app.context.get("_route")
    if route is not None and route.func.__name__ != "not_found_handler":
        known = {p.alias for p in route.dependant.query_params}
        unknown = sorted(set(app.current_event.query_string_parameters or {}) - known)
        if unknown:
            accepted = ", ".join(sorted(known)) or "none"
            raise RequestRejected(
                Rejection.INVALID,
                UNKNOWN_PARAMETER,
                f"unknown query parameter {unknown[0][:64]!r} (accepted: {accepted})",
            )
    return next_middleware(app)


class HttpApi:
    """One function's resolver and its error answers.

    ``invalid_code``: the ``error`` code of a request the models refuse (``invalid_report``...),
    or a function of the validation errors; ``headers``: sent with every answer;
    ``on_error(status, code)``: called for every error answer (metrics); ``before(event)``:
    a check of the raw request that must come before its body is parsed (size, signature),
    run for this API's routes only and answered through the same ``error_answer``;
    ``model_errors_are_requests``: a pydantic ``ValidationError`` raised while handling (a report
    whose figures break a ledger row's rules) is the caller's 400 too, not a bug's 5xx;
    ``default_route``: the route of a hand-made event that names none (``invoke``).
    """

    def __init__(
        self,
        *routers: APIGatewayHttpRouter,
        invalid_code: str | Callable[[list[Any]], str] = "invalid_request",
        headers: Mapping[str, str] | None = None,
        on_error: ErrorHook | None = None,
        before: Check | None = None,
        default_route: str | None = None,
        model_errors_are_requests: bool = False,
    ) -> None:
        self.headers = dict(headers or {"Content-Type": JSON})
        self.invalid_code = invalid_code
        self.on_error = on_error
        self.before = before
        self.default_route = default_route
        self.app = resolver(*routers)
        self.handled = HANDLED + ((ValidationError,) if model_errors_are_requests else ())
        self.app.exception_handler_manager.exception_handler(list(self.handled))(self.error_answer)
        # The template's route keys ("GET /customers/{customer_id}/usage") of these routes.
        routes = self.app._static_routes + self.app._dynamic_routes
        self.route_keys = frozenset(template_route(r.method, r.path) for r in routes)

    def answer(
        self, status: int, body: str, content_type: str = JSON, **headers: str
    ) -> Response[str]:
        """A response with this API's headers (``content_type`` overrides theirs)."""
        merged = {**self.headers, "Content-Type": content_type, **headers}
        return Response(status_code=status, body=body, headers=merged)

    def error(self, status: int, code: str, message: str) -> Response[str]:
        """``{"error": code, "message": message}`` with ``status``."""
        if self.on_error is not None:
            self.on_error(status, code)
        body = json.dumps({"error": code, "message": message})
        return self.answer(status, body, self.headers.get("Content-Type", JSON))

    def error_answer(self, exc: Exception) -> Response[str]:
        """Every domain error's HTTP answer, in one place: refused requests keep their 4xx,
        anything that may work later is 503 (retry), what retrying cannot fix is 422 with the
        reason, never a bare 500."""
        if isinstance(exc, RequestRejected):
            status = rejection_status(exc)
            logger.warning("request rejected", extra={"status": status, "code": exc.code})
            return self.error(status, exc.code, exc.message)
        if isinstance(exc, RequestValidationError | ValidationError):
            errors = list(exc.errors())
            code = self.invalid_code
            code = code if isinstance(code, str) else code(errors)
            logger.warning("request invalid", extra={"status": 400, "code": code})
            return self.error(400, code, validation_message(errors))
        if isinstance(exc, InvalidIdentifier):
            return self.error(400, exc.code, exc.message)
        if isinstance(exc, InvalidOperation):
            return self.error(400, "invalid_request", str(exc))
        if isinstance(exc, OperationRefused):
            return self.error(409, "refused", str(exc))
        if isinstance(exc, NotFoundError):
            return self.error(404, "not_found", "no such route")
        if isinstance(exc, PermanentFailure):
            logger.error("request cannot be stored", extra={"reason": exc.reason})
            return self.error(422, exc.reason, exc.message)
        logger.exception("request failed; the caller may retry")
        return self.error(503, "unavailable", "temporarily unavailable, retry")

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Answer one API Gateway (payload 2.0) event; its log lines carry the request's id."""
        logger.set_correlation_id(correlation.from_api_event(event))
        canonical = canonical_event(event, self.default_route)
        if self.before is not None and _route(event, self.default_route) in self.route_keys:
            try:
                self.before(canonical)
            except self.handled as exc:
                response = self.error_answer(exc)
                return {
                    "statusCode": response.status_code,
                    "headers": {
                        k: v if isinstance(v, str) else ", ".join(v)
                        for k, v in response.headers.items()
                    },
                    "body": response.body,
                    "isBase64Encoded": False,
                    "cookies": [],
                }
        return self.app.resolve(canonical, context)


def resolver(*routers: APIGatewayHttpRouter) -> APIGatewayHttpResolver:
    """An HTTP API resolver with request validation and the unknown-parameter rule, holding
    ``routers``' routes (also what the OpenAPI document is generated from)."""
    app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=_loads)
    app.use([_unknown_parameters])
    for router in routers:
        app.include_router(router)
    return app
