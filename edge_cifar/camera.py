"""The camera loop: frame source → classifier → sinks (window overlay, JSON lines, video file).

The loop knows nothing of tensors, the classifier nothing of cameras. SIGINT (Ctrl-C), SIGTERM
(`systemctl stop`, `docker stop`), `q`/Esc in the window, `max_frames` and the end of the stream
all end the loop alike: sinks closed (a saved video finalized), a `Summary`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge_cifar.classifier import (
    BACKGROUND_LABEL,
    STAGES,
    Category,
    Classifier,
    Prediction,
    top_categories,
)
from edge_cifar.sources import Frame, FrameSource, SourceError

UNCERTAIN = "uncertain"
FPS_WINDOW = 30  # frames: about a second at camera rates, long enough to steady the figure
WINDOW_TITLE = "edge-cifar"
QUIT_KEYS = (ord("q"), 27)  # q, Esc
# A video writer's codec by file suffix: MJPG plays anywhere, mp4v needs no system encoder.
FOURCC_BY_SUFFIX = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}
DEFAULT_VIDEO_FPS = 15.0


@dataclass(frozen=True)
class FrameResult:
    """One classified frame, after smoothing and the min-score rule."""

    index: int
    label: str  # a class name, or UNCERTAIN when the score is below min_score
    score: float
    top_k: tuple[Category, ...]
    timings_ms: dict[str, float]

    def as_json(self) -> dict[str, object]:
        return {
            "frame": self.index,
            "label": self.label,
            "score": round(self.score, 4),
            "top_k": [{"label": c.label, "score": round(c.score, 4)} for c in self.top_k],
            "ms": {stage: round(ms, 3) for stage, ms in self.timings_ms.items()},
        }


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


def decide(
    prediction: Prediction,
    index: int,
    smoother: ScoreSmoother,
    min_score: float,
    top_k: int,
) -> FrameResult:
    """The frame's label from the (smoothed) scores; below min_score, or the background class,
    it is UNCERTAIN."""
    scores = smoother.update(prediction.scores)
    ranked = top_categories(scores, prediction.labels, top_k)
    best = ranked[0]
    label = best.label if best.score >= min_score and best.label != BACKGROUND_LABEL else UNCERTAIN
    return FrameResult(index, label, best.score, ranked, prediction.timings_ms)


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
    lines = [f"{result.label} {result.score:.2f}", f"{fps:.1f} FPS"]
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
        except BrokenPipeError:  # `edge-cifar camera | head`: the reader has had enough
            discard_closed_stream(self.stream)
            return "output closed"
        return None

    def close(self) -> None:
        pass


class VideoFileSink:
    """The annotated frames as a video file; opened at the first frame, when its size is known."""

    def __init__(self, path: Path, fps: float | None) -> None:
        fourcc = FOURCC_BY_SUFFIX.get(path.suffix.lower())
        if fourcc is None:
            raise SourceError(
                f"{path}: cannot save video as {path.suffix or 'no suffix'!r}; "
                f"use one of {', '.join(FOURCC_BY_SUFFIX)}"
            )
        if not path.parent.is_dir():
            raise SourceError(f"{path}: folder {path.parent} does not exist")
        self.path, self.fourcc, self.fps = path, fourcc, fps or DEFAULT_VIDEO_FPS
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: Frame, result: FrameResult, fps: float) -> str | None:
        if self._writer is None:
            height, width = frame.shape[:2]
            code = cv2.VideoWriter.fourcc(*self.fourcc)
            self._writer = cv2.VideoWriter(str(self.path), code, self.fps, (width, height))
            if not self._writer.isOpened():
                raise SourceError(f"{self.path}: cannot write a {self.fourcc} video here")
        self._writer.write(annotate(frame, result, fps))
        return None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


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
        if not self._sized:
            cv2.resizeWindow(WINDOW_TITLE, frame.shape[1], frame.shape[0])
            self._sized = True
        cv2.imshow(WINDOW_TITLE, annotate(frame, result, fps))
        return "quit key" if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS else None

    def close(self) -> None:
        cv2.destroyWindow(WINDOW_TITLE)


@dataclass(frozen=True)
class LoopOptions:
    max_frames: int | None = None
    smooth_alpha: float = 1.0
    min_score: float = 0.0
    top_k: int = 3
    # A file source shown to a person plays at its own frame rate, not as fast as it decodes.
    realtime: bool = False


SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopRequest:
    """SIGINT and SIGTERM, while `installed()`: the loop ends after the frame in hand, as at the
    end of the stream. A second signal interrupts whatever runs (a hung read) at once.

    The handlers are the loop's own, so a SIGINT that the parent shell set to "ignore" (a job
    started with `&`) stops it too. `event` is set by a signal, for waits that must end with it.
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
        previous = {signum: signal.signal(signum, self._handle) for signum in SIGNAL_NAMES}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@dataclass
class Summary:
    frames: int = 0
    seconds: float = 0.0
    stopped_by: str = "end of stream"
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    @property
    def mean_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def percentiles(self) -> dict[str, tuple[float, float]]:
        """Per stage: (p50, p99) milliseconds."""
        return {
            stage: (float(np.percentile(values, 50)), float(np.percentile(values, 99)))
            for stage, values in self.stage_ms.items()
            if values
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
    top_k = max(1, options.top_k)  # top_categories takes at most the classes there are
    # A live source sets its own pace; a file's frame i is due i / fps after the first.
    frame_period = 1.0 / source.fps if options.realtime and source.fps and not source.live else 0
    summary = Summary()
    start = time.perf_counter()
    try:
        with stop.installed():
            for index, frame in enumerate(source.frames()):
                if stop.reason:
                    break
                result = decide(
                    classifier.classify(frame), index, smoother, options.min_score, top_k
                )
                if frame_period and (due := start + index * frame_period - time.perf_counter()) > 0:
                    stop.event.wait(due)
                fps = meter.tick(time.perf_counter())
                summary.frames += 1
                for stage, ms in result.timings_ms.items():
                    summary.stage_ms.setdefault(stage, []).append(ms)
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
        source.close()
        for sink in sinks:
            sink.close()
    return summary
