"""uvicorn in a thread of its own, beside the camera loop in the main thread.

The socket is bound here, before anything starts, so a taken port or a bad address is one
`error:` line; stopping waits a bounded time for open streams to end.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from edge_cifar.sources import SourceError

START_TIMEOUT_S = 15.0
# Open streams end within a heartbeat of the loop's end; anything still open after this is cut.
SHUTDOWN_GRACE_S = 3


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebServer:
    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server((host, port), family=family, backlog=128)
        except OSError as error:
            raise SourceError(
                f"cannot listen on {host}:{port}: {error.strerror or error}"
            ) from None
        bound_host, self.port = self._socket.getsockname()[:2]
        self.url = (
            f"http://{f'[{bound_host}]' if family == socket.AF_INET6 else bound_host}:{self.port}/"
        )
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,  # a Pi's SD card and journal need no line per MJPEG frame
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="web", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SourceError(f"the web server did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=SHUTDOWN_GRACE_S + 5)
        self._socket.close()
