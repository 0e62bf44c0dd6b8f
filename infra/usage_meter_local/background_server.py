"""One way to run a local server on a background thread: the AssemblyAI and Stripe stand-ins, the
application receiver and moto's server all use it.

``with Server(...) as server: server.url`` or ``server.start()`` ... ``server.stop()``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self


class _Serving(Protocol):
    server_address: Any

    def serve_forever(self) -> None: ...

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...


class StatefulHTTPServer[S](ThreadingHTTPServer):
    """A threading HTTP server whose handlers read the stand-in's state (``self.server.state``)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], state: S
    ) -> None:
        super().__init__(address, handler)
        self.state = state


class BackgroundServer:
    """Serves ``server`` on a daemon thread named ``name`` once started; ``url`` is its base URL."""

    def __init__(self, server: _Serving, name: str) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
