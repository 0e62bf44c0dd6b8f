"""Binding the local servers' ports, with an error that says what to do when a port is taken."""

from __future__ import annotations

import errno
from collections.abc import Callable

# The environment variable beside each port flag: the only way to choose a port through `make`
# (`USAGE_METER_API_PORT=3010 make local`); the command line reads its defaults from them.
PORT_ENV = {
    "--api-port": "USAGE_METER_API_PORT",
    "--aws-port": "USAGE_METER_AWS_PORT",
    "--assemblyai-port": "USAGE_METER_ASSEMBLYAI_PORT",
}


class PortUnavailable(Exception):
    """A port the local stack needs cannot be bound."""

    def __init__(self, port: int, flag: str, reason: str) -> None:
        how = f"{flag}, or {PORT_ENV[flag]}=N with make" if flag in PORT_ENV else flag
        super().__init__(f"port {port} is {reason}, choose another with {how} (0 = any free port)")
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
