"""The camera loop: frame source → classifier → sinks (window overlay, JSON lines, video file).

The loop knows nothing of tensors, the classifier nothing of cameras. SIGINT (Ctrl-C), SIGTERM
(`systemctl stop`, `docker stop`), SIGHUP (an ssh session dropped, a terminal closed), `q`/Esc in
the window, `max_frames` and the end of the stream all end the loop alike: sinks closed (a saved
video finalized), a `Summary`.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import json
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge_cifar.classifier import STAGES, Classifier, Decision
from edge_cifar.sources import Frame, FrameSource

FPS_WINDOW = 30  # frames: about a second at camera rates, long enough to steady the figure
WINDOW_TITLE = "edge-cifar"
QUIT_KEYS = (ord("q"), 27)  # q, Esc
# A video writer's codec by file suffix: MJPG plays anywhere, mp4v needs no system encoder.


@dataclass(frozen=True)
class FrameResult:
    """One frame of the loop: its number in the stream and its decision."""

    index: int
    decision: Decision

    def as_json(self) -> dict[str, object]:
        return {"frame": self.index, **self.decision.as_json()}


class ScoreSmoother:
    """Exponential moving average of score vectors: alpha is the newest frame's weight (1 = off)."""

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._average: npt.NDArray[np.float32] | None = None

    def update(self, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._average is None or self.alpha == 1.0:
            self._average = scores.astype(np.float32, copy=True)
        else:
            self._average = (self.alpha * scores + (1.0 - self.alpha) * self._average).astype(
                np.float32
            )
        return self._average


class FpsMeter:
    """Frames per second over the last `window` frames."""

    def __init__(self, window: int = FPS_WINDOW) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, now: float) -> float:
        self._times.append(now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def annotate(frame: Frame, result: FrameResult, fps: float) -> Frame:
    """A copy of the frame with the label, score and FPS drawn in its top-left corner."""
    canvas = frame.copy()
    scale = max(0.5, canvas.shape[0] / 640)
    decision = result.decision
    lines = [f"{decision.label} {decision.score:.2f}", f"{fps:.1f} FPS"]
    for row, text in enumerate(lines):
        origin = (10, int((row + 1) * 30 * scale))
        # A dark outline under the white text keeps it legible on any background.
        cv2.putText(
            canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA
        )
        cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
    return canvas


class Sink(Protocol):
    def write(self, frame: Frame, result: FrameResult, fps: float) -> str | None:
        """Take one frame; a returned reason ("quit key") asks the loop to stop."""
        ...

    def close(self) -> None: ...


def discard_closed_stream(stream: IO[str]) -> None:
    """Point a stream whose reader went away at /dev/null, so Python's flush at exit stays quiet."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (a test's StringIO)
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


class JsonLinesSink:
    """One JSON object per frame on a text stream (stdout by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def write(self, frame: Frame, result: FrameResult, fps: float) -> str | None:
        try:
            self.stream.write(json.dumps(result.as_json()) + "\n")
            self.stream.flush()
        except OSError as error:
            # `edge-cifar camera | head`: the reader has had enough (EPIPE); the terminal was
            # closed (EIO). Any other failure (a full disk under a redirect) is an error.
            if not isinstance(error, BrokenPipeError) and error.errno != errno.EIO:
                raise
            discard_closed_stream(self.stream)
            return "output closed"
        return None

    def close(self) -> None:
        pass


NO_DISPLAY = "no display"
# Both wheels own `cv2`: installed side by side they overwrite each other, so the note says to swap
# the headless build for the GUI build of the same version, leaving one.
NO_GUI = (
    "this OpenCV ({wheel} {version}) has no GUI; for a window swap it for the GUI build: "
    "`pip uninstall -y {wheel} && pip install {gui_wheel}=={version}`"
)
NO_GUI_UNKNOWN = (
    "this OpenCV build has no GUI; for a window use a GUI build, alone in its environment: "
    "opencv-python, or Raspberry Pi OS's python3-opencv"
)
# Each headless wheel and the GUI wheel that replaces it.
GUI_WHEELS = {
    "opencv-python-headless": "opencv-python",
    "opencv-contrib-python-headless": "opencv-contrib-python",
}


def headless_wheel() -> tuple[str, str] | None:
    """The installed OpenCV wheel that has no GUI and its version, if OpenCV came from one."""
    for name in GUI_WHEELS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return name, importlib.metadata.version(name)
    return None


def window_problem() -> str | None:
    """Why no window can be shown here (NO_DISPLAY on a headless machine), or None if one can.

    opencv-python-headless (the package's default OpenCV) has no GUI backend and its imshow
    raises; its build information says so.
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return NO_DISPLAY
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:") and line.split(":", 1)[1].strip().upper() != "NONE":
            return None
    if (installed := headless_wheel()) is None:
        return NO_GUI_UNKNOWN
    wheel, version = installed
    return NO_GUI.format(wheel=wheel, version=version, gui_wheel=GUI_WHEELS[wheel])


class WindowSink:
    """The annotated frame in a window; q or Esc ends the loop.

    The window opens at the frame's own size (resizable, no toolbar), so the overlay is drawn
    pixel for pixel; OpenCV's default for a resizable window is a fixed 400x300.
    """

    def __init__(self) -> None:
        cv2.namedWindow(
            WINDOW_TITLE, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL
        )
        self._sized = False

    def write(self, frame: Frame, result: FrameResult, fps: float) -> str | None:
        cv2.imshow(WINDOW_TITLE, annotate(frame, result, fps))
        if not self._sized:
            # After the first image: resized before it, a Qt window could stay black for good.
            cv2.resizeWindow(WINDOW_TITLE, frame.shape[1], frame.shape[0])
            self._sized = True
        return "quit key" if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS else None

    def close(self) -> None:
        cv2.destroyWindow(WINDOW_TITLE)


@dataclass(frozen=True)
class LoopOptions:
    max_frames: int | None = None
    smooth_alpha: float = 1.0
    # A file source shown to a person plays at its own frame rate, not as fast as it decodes.
    realtime: bool = False


SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP, while `installed()`: the loop ends after the frame in hand, as
    at the end of the stream. A second signal interrupts whatever runs (a hung read) at once.

    The handlers are the loop's own, so a SIGINT that the parent shell set to "ignore" (a job
    started with `&`) stops it too; an ignored SIGHUP stays ignored: `nohup` asked to outlive the
    terminal. `event` is set by a signal, for waits that must end with it.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.event = threading.Event()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None:
            raise KeyboardInterrupt
        self.reason = SIGNAL_NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
        self.event.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # signals reach main only
            yield
            return
        previous = {
            signum: signal.signal(signum, self._handle)
            for signum in SIGNAL_NAMES
            if not (signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN)
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


# Timings kept per stage for the summary's percentiles: a p99 from 10,000 samples is within a
# fraction of a percentile of the true one, and the memory stays flat however long the run.
STAGE_SAMPLES = 10_000


class Reservoir:
    """A uniform random sample of at most `size` of all the values added (Vitter's algorithm R):
    percentiles of the whole run in bounded memory. Seeded: the same run, the same summary."""

    def __init__(self, size: int = STAGE_SAMPLES, seed: int = 0) -> None:
        self.size, self.seen = size, 0
        self.values: list[float] = []
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
        elif (slot := self._random.randrange(self.seen)) < self.size:
            self.values[slot] = value


@dataclass
class Summary:
    frames: int = 0
    seconds: float = 0.0
    stopped_by: str = "end of stream"
    stage_ms: dict[str, Reservoir] = field(default_factory=lambda: {s: Reservoir() for s in STAGES})

    @property
    def mean_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def add_timings(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stage_ms.setdefault(stage, Reservoir()).add(ms)

    def percentiles(self) -> dict[str, tuple[float, float]]:
        """Per stage: (p50, p99) milliseconds."""
        return {
            stage: (
                float(np.percentile(sample.values, 50)),
                float(np.percentile(sample.values, 99)),
            )
            for stage, sample in self.stage_ms.items()
            if sample.values
        }

    def describe(self) -> str:
        stages = ", ".join(
            f"{stage} p50 {p50:.2f} / p99 {p99:.2f} ms"
            for stage, (p50, p99) in self.percentiles().items()
        )
        return (
            f"{self.frames} frames in {self.seconds:.1f} s ({self.mean_fps:.1f} FPS), "
            f"stopped by {self.stopped_by}" + (f"; {stages}" if stages else "")
        )


def run(
    source: FrameSource,
    classifier: Classifier,
    sinks: Sequence[Sink],
    options: LoopOptions = LoopOptions(),
    stop: StopRequest | None = None,
) -> Summary:
    """Classify frames until the stream ends, max_frames, a sink's stop, SIGINT or SIGTERM."""
    stop = stop or StopRequest()
    smoother = ScoreSmoother(options.smooth_alpha)
    meter = FpsMeter()
    # A live source sets its own pace; a file's frame i is due i / fps after the first.
    frame_period = 1.0 / source.fps if options.realtime and source.fps and not source.live else 0
    summary = Summary()
    start = time.perf_counter()
    try:
        with stop.installed():
            for index, frame in enumerate(source.frames()):
                if stop.reason:
                    break
                result = FrameResult(index, classifier.classify(frame, smoother.update))
                if frame_period and (due := start + index * frame_period - time.perf_counter()) > 0:
                    stop.event.wait(due)
                fps = meter.tick(time.perf_counter())
                summary.frames += 1
                summary.add_timings(result.decision.timings_ms)
                stops = [reason for sink in sinks if (reason := sink.write(frame, result, fps))]
                if stops:
                    summary.stopped_by = stops[0]
                    break
                if options.max_frames is not None and summary.frames >= options.max_frames:
                    summary.stopped_by = "max frames"
                    break
                if stop.reason:
                    break
    except KeyboardInterrupt:
        summary.stopped_by = stop.reason or "Ctrl-C"
    finally:
        summary.seconds = time.perf_counter() - start
        if stop.reason:
            summary.stopped_by = stop.reason
        # Every sink is closed even when one fails to (a video that cannot be finalized).
        with contextlib.ExitStack() as closing:
            for sink in reversed(sinks):
                closing.callback(sink.close)
            source.close()
    return summary
