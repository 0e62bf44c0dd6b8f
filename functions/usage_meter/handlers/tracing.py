"""Powertools Tracer where tracing is on, nothing at all where it is off.

``template.yaml`` sets ``POWERTOOLS_TRACE_DISABLED`` from its ``TracingMode`` parameter: ``"false"``
with ``Active`` (X-Ray segments for every handler and AWS call), ``"true"`` with ``PassThrough``
(the default). Off, the decorators below return the function unchanged and never import
``aws_xray_sdk``: creating a Powertools ``Tracer`` imports it even when disabled (about 0.1-0.3 s
of cold start, measured with ``python -X importtime``), so the Tracer is made only when tracing
is on. Unset counts as off (tests, the local stack, the benchmarks' default).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from usage_meter.settings_base import tracing_enabled

F = TypeVar("F", bound=Callable[..., Any])


class LazyTracer:
    """``capture_lambda_handler`` / ``capture_method`` of a Powertools ``Tracer`` made on first use,
    and only when ``tracing_enabled()`` at decoration time (module import, i.e. cold start)."""

    @cached_property
    def tracer(self) -> Any:
        """The Powertools Tracer (imports ``aws_xray_sdk``)."""
        from aws_lambda_powertools import Tracer

        return Tracer()

    def capture_lambda_handler(self, *, capture_response: bool = False) -> Callable[[F], F]:
        """Trace the Lambda handler (a segment per invocation, cold start annotated). Responses
        are never recorded: they carry customers' usage."""

        def decorate(function: F) -> F:
            if not tracing_enabled():
                return function
            wrapped: F = self.tracer.capture_lambda_handler(
                function, capture_response=capture_response
            )
            return wrapped

        return decorate

    def capture_method(self, *, capture_response: bool = False) -> Callable[[F], F]:
        """Trace one function as a subsegment (its return value is never recorded)."""

        def decorate(function: F) -> F:
            if not tracing_enabled():
                return function
            wrapped: F = self.tracer.capture_method(function, capture_response=capture_response)
            return wrapped

        return decorate


tracer = LazyTracer()
