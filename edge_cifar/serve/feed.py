"""The newest frame, handed from the camera loop's thread to the web server's event loop.

The loop publishes every frame; viewers take whichever is newest when they are ready for one, so
a slow viewer skips frames (counted as dropped) and never holds the loop up or queues frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass

import cv2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edge_cifar.camera import FrameResult, annotate
from edge_cifar.classifier import STAGES
from edge_cifar.sources import Frame

JPEG_QUALITY = 80  # a 640x480 frame in ~40 KB: smooth over Wi-Fi, sharp enough to read the label
# Frames encoded for viewers at most, whatever their number and the loop's rate: a person sees no
# more, and encoding each frame of an unpaced loop would take its CPU.
MJPEG_MAX_FPS = 30
# Stage latency buckets (seconds): 0.1 ms .. 1 s, around a Pi's 1-20 ms per stage.
STAGE_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

LIVE, LOST, ENDED, STARTING = "live", "camera lost", "ended", "starting"


class Metrics:
    """What `/metrics` reports, in a registry of its own (one per server)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("edge_cifar_frames", "Frames the camera loop classified", registry=r)
        self.fps = Gauge("edge_cifar_fps", "Camera loop frames per second", registry=r)
        self.stage_seconds = Histogram(
            "edge_cifar_stage_seconds",
            "Per-frame time of each classification stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.dropped = Counter(
            "edge_cifar_dropped_frames",
            "Frames a viewer skipped because a newer one was ready when it could take one",
            ["stream"],
            registry=r,
        )
        self.errors = Counter(
            "edge_cifar_errors", "Requests answered with an error", ["status"], registry=r
        )
        self.clients = Gauge("edge_cifar_clients", "Viewers connected now", ["stream"], registry=r)
        self.classify_requests = Counter(
            "edge_cifar_classify_requests", "POST /classify requests answered", registry=r
        )
        self.source_lost = Gauge(
            "edge_cifar_source_lost", "1 while the camera is gone and being reopened", registry=r
        )
        self.reopened = Counter(
            "edge_cifar_source_reopened", "Times a lost camera came back", registry=r
        )
        for stage in STAGES:
            self.stage_seconds.labels(stage)
        for stream in ("mjpeg", "events"):
            self.clients.labels(stream)
            self.dropped.labels(stream)


@dataclass(frozen=True)
class Snapshot:
    version: int  # 0 before the first frame
    status: str
    fps: float
    frames: int
    result: FrameResult | None


class LiveFeed:
    """The newest annotated frame and its result; wakes the server's waiting clients."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        self._snapshot = Snapshot(0, STARTING, 0.0, 0, None)
        self._frame: Frame | None = None
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._jpeg_time = -1.0
        self._jpeg_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Future[None] | None = None

    # --- the camera loop's side ---------------------------------------------------------------
    def publish(self, frame: Frame, result: FrameResult, fps: float) -> None:
        with self._lock:
            old = self._snapshot
            self._frame = frame
            self._snapshot = Snapshot(old.version + 1, LIVE, fps, old.frames + 1, result)
        self._wake()

    def set_status(self, status: str) -> None:
        with self._lock:
            old = self._snapshot
            self._snapshot = Snapshot(old.version, status, old.fps, old.frames, old.result)
        self._wake()

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None:
            # The server's loop closes only after the camera loop ends, or if the server died:
            # either way no one is waiting, and the camera loop must go on.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._notify)

    # --- the server's side (its event loop) ------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._changed = loop.create_future()

    def _notify(self) -> None:
        if self._changed is not None and self._loop is not None:
            self._changed.set_result(None)
            self._changed = self._loop.create_future()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    async def changed(self, timeout: float) -> None:
        """Return at the next frame or status change, or after `timeout` seconds."""
        if self._changed is not None:
            await asyncio.wait([self._changed], timeout=timeout)

    def jpeg(self) -> tuple[int, bytes]:
        """The newest frame as JPEG and its version, encoded once however many viewers ask, and
        at most MJPEG_MAX_FPS times a second (else the last encoded one again)."""
        with self._jpeg_lock:
            with self._lock:
                version, frame = self._snapshot.version, self._frame
            now = time.monotonic()
            fresh = now - self._jpeg_time < 1 / MJPEG_MAX_FPS
            if frame is not None and self._jpeg[0] != version and not fresh:
                ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if ok:
                    self._jpeg, self._jpeg_time = (version, encoded.tobytes()), now
            return self._jpeg


class ServeSink:
    """The camera loop's sink for the server: each annotated frame into the feed and the metrics."""

    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed

    def write(self, frame: Frame, result: FrameResult, fps: float) -> str | None:
        metrics = self.feed.metrics
        metrics.frames.inc()
        metrics.fps.set(fps)
        for stage, ms in result.decision.timings_ms.items():
            metrics.stage_seconds.labels(stage).observe(ms / 1e3)
        self.feed.publish(annotate(frame, result, fps), result, fps)
        return None

    def source_state(self, available: bool) -> None:
        """ReopeningSource's callback: the camera went away, or came back."""
        self.feed.metrics.source_lost.set(0 if available else 1)
        if available:
            self.feed.metrics.reopened.inc()
        self.feed.set_status(LIVE if available else LOST)

    def close(self) -> None:
        self.feed.set_status(ENDED)
