"""The HTTP face: `/` (live page), `/stream.mjpg`, `/events` (SSE), `/model`, `POST /classify`,
`/healthz` and `/metrics`. Every answer but the page and the streams is JSON; every error is a
JSON `{"error": ...}` with a 4xx status, never a traceback. No request names a file: the page is
package data read once at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge_cifar import MAX_IMAGE_PIXELS
from edge_cifar.classifier import Classifier
from edge_cifar.preprocess import FrameError
from edge_cifar.serve.feed import LIVE, MJPEG_MAX_FPS, LiveFeed, Snapshot
from edge_cifar.serve.upload import UploadError, read_upload
from edge_cifar.sources import ImageTooLargeError, SourceError, decode_image

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # a phone photo is 2-8 MB
# Uploads in progress at once (body, decode, classification): each may hold a 10 MB body and a
# decode at the pixel limit (120 MB for 8-bit BGR, 480 MB for a float .hdr); two fit on a 1 GB Pi.
MAX_CONCURRENT_UPLOADS = 2
RETRY_AFTER_S = 1  # an upload takes well under a second on a Pi 4
EVENTS_PER_SECOND = 10  # the page's figures: fast enough to look live, light on a Pi
HEARTBEAT_S = 1.0  # a stream with no new frame still speaks this often (status, closed sockets)
NO_STORE = {"Cache-Control": "no-store"}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@dataclass(frozen=True)
class ServeConfig:
    model_info: dict[str, Any]  # the page's model name, size and card figures
    token: str | None = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_IMAGE_PIXELS
    # The Host names requests may carry (None: any): a loopback server answers only to its own
    # names, so a web page cannot reach it through DNS rebinding (evil.example -> 127.0.0.1).
    allowed_hosts: frozenset[str] | None = None


# The page itself holds no data: a browser, which cannot send a header, gets it and its login
# form; the page then sends the token on every request of its own.
PUBLIC_PATHS = frozenset({"/"})


class BearerToken:
    """Every request but the page's needs `Authorization: Bearer <token>` (or `?token=` for the
    page's <img> and EventSource, which cannot send a header); else 401 with a JSON body."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        public = scope["type"] == "http" and scope["path"] in PUBLIC_PATHS
        if scope["type"] == "http" and not public and not self._allowed(Request(scope)):
            response = error(401, "missing or wrong token (Authorization: Bearer <token>)")
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        offered = (
            header[7:] if header[:7].lower() == "bearer " else request.query_params.get("token")
        )
        return offered is not None and hmac.compare_digest(offered.encode(), self.token)


class UploadClassifier:
    """POST /classify's model: its own interpreter (the loop's is busy), one request at a time."""

    def __init__(self, classifier: Classifier, max_pixels: int) -> None:
        self.classifier, self.max_pixels = classifier, max_pixels
        self._lock = threading.Lock()

    def classify(self, encoded: bytes) -> dict[str, object]:
        image = decode_image(encoded, "upload", self.max_pixels)
        with self._lock:
            return self.classifier.classify(image).as_json()


def result_event(snapshot: Snapshot) -> dict[str, object]:
    event: dict[str, object] = {
        "status": snapshot.status,
        "frames": snapshot.frames,
        "fps": round(snapshot.fps, 2),
    }
    if snapshot.result is not None:
        event.update(snapshot.result.as_json())
    return event


def build_app(feed: LiveFeed, uploads: UploadClassifier, config: ServeConfig) -> ASGIApp:
    page = (files("edge_cifar.serve") / "page.html").read_text(encoding="utf-8")
    metrics = feed.metrics

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=NO_STORE)

    async def model(request: Request) -> Response:
        return JSONResponse(config.model_info)

    async def healthz(request: Request) -> Response:
        snapshot = feed.snapshot
        body = {"status": snapshot.status, "frames": snapshot.frames, "fps": round(snapshot.fps, 2)}
        # 503 while the camera is gone: a supervisor or load balancer sees the device is blind.
        return JSONResponse(body, status_code=200 if snapshot.status in (LIVE, "starting") else 503)

    async def metrics_text(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def viewer(
        stream: str, parts: Callable[[int], Awaitable[tuple[int, bytes | None]]], rate: float
    ) -> AsyncIterator[bytes]:
        """Newest-only delivery, at most `rate` parts a second: wait for a change, send the
        newest part, count what was skipped."""
        metrics.clients.labels(stream).inc()
        sent, next_due = -1, 0.0
        clock = asyncio.get_running_loop().time
        try:
            while True:
                await asyncio.sleep(max(0.0, next_due - clock()))
                version, part = await parts(sent)
                if part is not None:
                    if sent > 0 and version > sent + 1:
                        metrics.dropped.labels(stream).inc(version - sent - 1)
                    sent, next_due = version, clock() + 1 / rate
                    yield part
                if feed.snapshot.status == "ended":
                    return
                await feed.changed(HEARTBEAT_S)
        finally:
            metrics.clients.labels(stream).dec()

    async def mjpeg_part(sent: int) -> tuple[int, bytes | None]:
        if feed.snapshot.version in (0, sent):
            return sent, None
        version, jpeg = await anyio.to_thread.run_sync(feed.jpeg)
        if version == sent:  # encoded less than 1/MJPEG_MAX_FPS ago, for another viewer
            return sent, None
        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
        return version, head.encode() + jpeg + b"\r\n"

    async def event_part(sent: int) -> tuple[int, bytes | None]:
        snapshot = feed.snapshot
        return snapshot.version, f"data: {json.dumps(result_event(snapshot))}\n\n".encode()

    async def stream_mjpeg(request: Request) -> Response:
        return StreamingResponse(
            viewer("mjpeg", mjpeg_part, MJPEG_MAX_FPS),
            media_type="multipart/x-mixed-replace; boundary=frame",
            headers=NO_STORE,
        )

    async def events(request: Request) -> Response:
        return StreamingResponse(
            viewer("events", event_part, EVENTS_PER_SECOND),
            media_type="text/event-stream",
            headers=NO_STORE,
        )

    async def classify(request: Request) -> Response:
        try:
            encoded = await read_upload(request, config.max_upload_bytes)
        except UploadError as problem:
            return error(problem.status, str(problem))
        try:
            answer = await anyio.to_thread.run_sync(uploads.classify, encoded)
        except ImageTooLargeError as problem:
            return error(413, str(problem))
        except (SourceError, FrameError) as problem:
            return error(400, str(problem))
        metrics.classify_requests.inc()
        return JSONResponse(answer)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return error(status, str(detail))

    async def client_gone(request: Request, exc: Exception) -> Response:
        # The client dropped (or stalled and was cut) mid-upload: no one reads this answer; it
        # keeps the event out of the log as an "Exception in ASGI application" traceback.
        return error(408, "the upload ended before its body did")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        feed.bind(asyncio.get_running_loop())
        yield

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/model", model),
            Route("/healthz", healthz),
            Route("/metrics", metrics_text),
            Route("/stream.mjpg", stream_mjpeg),
            Route("/events", events),
            Route("/classify", classify, methods=["POST"]),
        ],
        exception_handlers={
            HTTPException: http_error,
            ClientDisconnect: client_gone,
            Exception: http_error,
        },
        lifespan=lifespan,
    )
    limited = UploadSlots(app, MAX_CONCURRENT_UPLOADS)
    guarded: ASGIApp = BearerToken(limited, config.token) if config.token else limited
    if config.allowed_hosts is not None:
        guarded = HostCheck(guarded, config.allowed_hosts)
    return CountErrors(SecurityHeaders(guarded), feed)


# On every answer: no MIME sniffing of a JSON error into HTML, and no page of another site may
# frame the live view (clickjacking); X-Frame-Options for browsers without CSP's frame-ancestors.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


class HostCheck:
    """A request whose Host header names none of `allowed` is refused with 400 (a request with
    no Host at all, HTTP/1.0, is let through: a browser always sends one)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Request(scope).headers.get("host")
            if host is not None and urlsplit(f"//{host}").hostname not in self.allowed:
                response = error(400, f"unknown host {host!r}; see serve's --allow-host")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class UploadSlots:
    """At most `slots` POST /classify requests at once, from their first body byte to their
    answer; beyond that a 503 with Retry-After, before the body is read. One event loop runs
    every request, so a plain count is safe."""

    def __init__(self, app: ASGIApp, slots: int) -> None:
        self.app, self.free = app, slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upload = scope["type"] == "http" and scope["method"] == "POST"
        if not (upload and scope["path"] == "/classify"):
            await self.app(scope, receive, send)
            return
        if self.free == 0:
            response = error(503, "busy with other uploads; retry shortly")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            await response(scope, receive, send)
            return
        self.free -= 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.free += 1


class CountErrors:
    """Counts every 4xx/5xx answer in /metrics, whichever route (or the router) gave it."""

    def __init__(self, app: ASGIApp, feed: LiveFeed) -> None:
        self.app, self.metrics = app, feed.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.metrics.errors.labels(str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
