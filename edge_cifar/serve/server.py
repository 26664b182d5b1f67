"""uvicorn in a thread of its own, beside the camera loop in the main thread.

The socket is bound here, before anything starts, so a taken port or a bad address is one
`error:` line; stopping waits a bounded time for open streams to end.

No client can take the server down by holding sockets: uvicorn closes a connection idle between
requests (`timeout_keep_alive`) and bounds a request head (h11's incomplete-event limit); what it
lacks, `GuardedH11Protocol` adds: a deadline for a request's head and for each read of its body
(the two timeouts nginx calls client_header_timeout and client_body_timeout), and a cap on open
connections below the process's file descriptor limit. At the cap, a new connection takes the
place of the longest-idle one; when none is idle it gets a 503. uvicorn's own `limit_concurrency`
does not fit: it counts idle sockets against the limit, and answers only once a request arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from edge_cifar.sources import SourceError

START_TIMEOUT_S = 15.0
# Open streams end within a heartbeat of the loop's end; anything still open after this is cut.
SHUTDOWN_GRACE_S = 3
KEEP_ALIVE_S = 5  # uvicorn's default, stated: an idle connection between requests is closed
HEAD_TIMEOUT_S = 10.0  # a request's head (a few hundred bytes) has this long to arrive
BODY_READ_TIMEOUT_S = 10.0  # an upload that sends nothing for this long is cut
MAX_HEAD_BYTES = 16 * 1024  # h11's default, stated
MAX_CONNECTIONS = 256  # a Pi serves a few viewers and clients; more is an attack or a leak
# Connections asyncio accepts in one go (it takes up to the listen backlog per wake-up, before any
# is seen by the protocol), so the cap is kept below the descriptor limit by twice this (those
# just accepted, those just closed to make room) plus the process's own: camera, pipes, the event
# loop's (about 10 when serving; 32 leaves room for more).
ACCEPT_BACKLOG = 32
RESERVED_DESCRIPTORS = 32 + 2 * ACCEPT_BACKLOG
RETRY_AFTER_S = 1
# A repeated event-loop error (accept() failing for want of descriptors) is logged once a minute.
REPEATED_ERROR_INTERVAL_S = 60.0


def host_names(host: str, allowed: Sequence[str] = ()) -> frozenset[str] | None:
    """The Host names a server bound to `host` answers to, with `allowed` added; None (any) for
    an address of every interface, whose names cannot be known."""
    if host in ("0.0.0.0", "::", ""):
        return None
    own = {"localhost", "127.0.0.1", "::1"} if is_loopback(host) else {host.strip("[]")}
    return frozenset({*own, *(name.lower() for name in allowed)})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connection_cap(limit: int = MAX_CONNECTIONS) -> int:
    """Open connections allowed: `limit`, or fewer where the descriptor limit is low."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(1, min(limit, soft - RESERVED_DESCRIPTORS))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines for a request's head and body reads, and a cap on
    open connections (`max_connections`, set per server by `guarded_protocol`)."""

    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._read_timer: asyncio.TimerHandle | None = None
        self._idle_since = self.loop.time()
        self._await_head()
        others = [c for c in self.connections if c is not self and not c.transport.is_closing()]
        if len(others) >= self.max_connections:
            idle = [c for c in others if isinstance(c, GuardedH11Protocol) and c.idle]
            if idle:
                min(idle, key=lambda c: c._idle_since).transport.close()
            else:
                self.refuse(503, "too many connections; retry shortly", RETRY_AFTER_S)

    @property
    def idle(self) -> bool:
        """Between requests (or before the first): nothing is lost by closing it."""
        between = self.cycle is None or self.cycle.response_complete
        return between and self.conn.their_state is h11.IDLE

    def refuse(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        """Answer with a JSON error before any request is read, and close."""
        body = json.dumps({"error": message}).encode()
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ]
        if retry_after_s is not None:
            headers.append(("retry-after", str(retry_after_s)))
        reason = HTTPStatus(status).phrase.encode()
        with contextlib.suppress(h11.LocalProtocolError):  # a response already under way
            self.transport.write(
                self.conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
                + self.conn.send(h11.Data(data=body))
                + self.conn.send(h11.EndOfMessage())
            )
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.SEND_BODY:  # each read of a body has its deadline
            self._deadline(BODY_READ_TIMEOUT_S, "the upload stalled")
        elif self.conn.their_state is not h11.IDLE:  # the request is in: the app has it now
            self._cancel_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        """The next request's head, all of it, within HEAD_TIMEOUT_S (uvicorn's keep-alive
        timer is reset by every byte, so a head sent a byte at a time would never time out)."""
        self._deadline(HEAD_TIMEOUT_S, "no complete request in time")

    def _deadline(self, seconds: float, message: str) -> None:
        self._cancel_deadline()
        self._read_timer = self.loop.call_later(seconds, self._timed_out, message)

    def _cancel_deadline(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self, message: str) -> None:
        if self.transport.is_closing():
            return
        if self.idle:
            self.refuse(408, message)
        else:  # the app is reading the body: closing is what tells it the client is gone
            self.transport.close()


def guarded_protocol(max_connections: int) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with this server's cap."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"max_connections": max_connections})


class OncePerInterval:
    """An event loop's exception handler that logs each kind of error once per interval (with how
    many were held back), not once per occurrence: asyncio's accept loop reports a lack of file
    descriptors once per pending connection, thousands of times a second."""

    def __init__(self, interval_s: float = REPEATED_ERROR_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        key = str(context.get("message"))
        now = loop.time()
        logged_at, held_back = self._last.get(key, (-self.interval_s, 0))
        if now - logged_at < self.interval_s:
            self._last[key] = (logged_at, held_back + 1)
            return
        self._last[key] = (now, 0)
        again = f" (and {held_back} times since it was last logged)" if held_back else ""
        exception = context.get("exception")
        if isinstance(exception, OSError):  # a system condition: its errno says all, no traceback
            logging.getLogger("asyncio").error("%s: %s%s", key, exception, again)
        else:
            loop.default_exception_handler({**context, "message": key + again})


class GuardedServer(uvicorn.Server):
    """uvicorn's server, its event loop's repeated errors logged once per interval."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(OncePerInterval())
        await super().serve(sockets)


class WebServer:
    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server((host, port), family=family, backlog=ACCEPT_BACKLOG)
        except OSError as error:
            raise SourceError(
                f"cannot listen on {host}:{port}: {error.strerror or error}"
            ) from None
        bound_host, self.port = self._socket.getsockname()[:2]
        self.url = (
            f"http://{f'[{bound_host}]' if family == socket.AF_INET6 else bound_host}:{self.port}/"
        )
        self.max_connections = connection_cap()
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,  # a Pi's SD card and journal need no line per MJPEG frame
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            lifespan="on",
            http=guarded_protocol(self.max_connections),
            timeout_keep_alive=KEEP_ALIVE_S,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            backlog=ACCEPT_BACKLOG,
        )
        self._server = GuardedServer(config)
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
