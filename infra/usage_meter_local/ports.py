"""Binding the local servers' ports, with an error that says what to do when a port is taken."""

from __future__ import annotations

import errno
from collections.abc import Callable


class PortUnavailable(Exception):
    """A port the local stack needs cannot be bound."""

    def __init__(self, port: int, flag: str, reason: str) -> None:
        super().__init__(f"port {port} is {reason}, choose another with {flag} (0 = any free port)")
        self.port = port
        self.flag = flag


def bind[T](port: int, flag: str, create: Callable[[], T]) -> T:
    """Run ``create`` (which binds ``port``), turning "address in use" into PortUnavailable."""
    try:
        return create()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(port, flag, "in use") from exc
        if exc.errno == errno.EACCES:
            raise PortUnavailable(port, flag, "not allowed for this user") from exc
        raise
