"""Collect what the model is unsure of: frames saved as JPEGs under DIR/<predicted label>/.

Edge Impulse's loop on the device: the camera keeps the frames whose top score is under the
threshold (and, with `every`, every Nth frame), a person moves each into its right class folder,
and `make quantize DATA=DIR` trains the next model on them. A frame is saved at most once per
`min_interval_s` (a camera at 30 FPS would otherwise save the same scene thirty times a second)
and never past `max_bytes` in the folder, counted from what it already holds, so the cap holds
across runs; reaching it is said once. Each file is written under a temporary name beside its
target and renamed: a crash never leaves half a JPEG for the next training run to trip on.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_cifar.camera import FrameResult
from edge_cifar.classifier import BACKGROUND_LABEL
from edge_cifar.preprocess import to_uint8
from edge_cifar.sources import Frame, SourceError

# Without --min-score or a threshold in the model's metadata, frames under this top score count
# as unsure: a coin flip between the two best classes or worse.
DEFAULT_BELOW = 0.5
DEFAULT_INTERVAL_S = 1.0
DEFAULT_MAX_MB = 500
JPEG_QUALITY = 90  # retraining material: sharp enough, a tenth of a PNG's size


@dataclass(frozen=True)
class CollectOptions:
    folder: Path
    below: float = DEFAULT_BELOW  # a frame whose top score is under this is saved
    every: int | None = None  # and every Nth frame, whatever its score
    min_interval_s: float = DEFAULT_INTERVAL_S
    max_bytes: int = DEFAULT_MAX_MB * 1_000_000


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def label_folder(label: str) -> str:
    """A class name as one safe path component (labels come from a model file)."""
    name = label.replace("/", "_").replace("\\", "_").replace("\0", "_").strip()
    return name if name not in ("", ".", "..") else "_"


def jpeg_bytes(frame: Frame) -> bytes:
    """The frame as a JPEG: 16-bit scaled to 8, alpha dropped (JPEG has none)."""
    image = to_uint8(frame)
    opaque = (
        cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if image.ndim == 3 and image.shape[2] == 4
        else image
    )
    ok, encoded = cv2.imencode(".jpg", opaque, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SourceError(f"cannot encode a {frame.shape} frame as JPEG")
    return np.asarray(encoded).tobytes()


def write_atomic(path: Path, content: bytes) -> None:
    """`content` into `path` through a temporary file beside it and a rename."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            tmp.write(content)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    Path(tmp.name).chmod(0o644)  # the temporary file is private; the JPEG is an ordinary file
    Path(tmp.name).replace(path)


class CollectSink:
    """A camera-loop sink that saves the unsure frames (see the module's docstring)."""

    def __init__(
        self,
        options: CollectOptions,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    ) -> None:
        try:
            options.folder.mkdir(parents=True, exist_ok=True)
            self.used = folder_bytes(options.folder)
        except OSError as error:
            raise SourceError(f"--collect {options.folder}: {error.strerror}") from None
        self.options, self.clock, self.say = options, clock, say
        self.saved = 0
        self.full = False
        self._last: float | None = None
        # Names unique across runs into the same folder: the start time, then the frame number.
        self._run = time.strftime("%Y%m%d-%H%M%S")

    def wants(self, index: int, label: str, score: float) -> bool:
        every = self.options.every
        return (
            score < self.options.below
            or label == BACKGROUND_LABEL
            or (every is not None and index % every == 0)
        )

    def write(self, frame: Frame, result: FrameResult, fps: float) -> str | None:
        """Save the frame under its top class's folder if unsure (or due) and allowed by the
        rate and the cap; never stops the loop."""
        decision, index = result.decision, result.index
        label = decision.top_k[0].label
        if self.full or not self.wants(index, label, decision.score):
            return None
        now = self.clock()
        if self._last is not None and now - self._last < self.options.min_interval_s:
            return None
        content = jpeg_bytes(frame)
        if self.used + len(content) > self.options.max_bytes:
            self.full = True
            self.say(
                f"collect: {self.options.folder} holds {self.used / 1e6:.1f} MB, its cap is "
                f"{self.options.max_bytes / 1e6:g} MB: no more frames saved"
            )
            return None
        folder = self.options.folder / label_folder(label)
        folder.mkdir(exist_ok=True)
        write_atomic(folder / f"{self._run}-{index:07d}.jpg", content)
        self.used += len(content)
        self.saved += 1
        self._last = now
        return None

    def close(self) -> None:
        if self.saved:
            self.say(f"collect: saved {self.saved} frame(s) under {self.options.folder}")
