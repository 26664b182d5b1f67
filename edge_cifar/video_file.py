"""The annotated frames as a video file, written so that nothing is lost: under a temporary name
beside the target, renamed when finalized, stopped with the file playable when the disk fills."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2

from edge_cifar.camera import FrameResult, annotate
from edge_cifar.sources import Frame, SourceError

FOURCC_BY_SUFFIX = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}
DEFAULT_VIDEO_FPS = 15.0


# OpenCV's writer says nothing when a write fails: a full disk leaves an mp4 without its index
# (unreadable) and an avi cut short. So saving stops while there is still room to finalize: the
# muxer's buffered bytes and trailer, and an index entry per frame (mp4 and avi take 8-16 bytes).
FINALIZE_RESERVE_BYTES = 256 * 1024
INDEX_BYTES_PER_FRAME = 64
# The next frame's size: four times the mean of those written (a scene change or a key frame can
# take several times the average); before the file shows it, four times the first frame as a JPEG.
FRAMES_BEFORE_ESTIMATE = 8
FRAME_SIZE_MARGIN = 4


def same_file(a: Path, b: Path) -> bool:
    """The same file under either name (a link, a relative path): False when either is missing."""
    try:
        return a.samefile(b)
    except OSError:
        return False


class VideoFileSink:
    """The annotated frames as a video file; opened at the first frame, when its size is known.

    The video is written under a temporary name beside `path` and renamed to it when closed, so a
    stop of any kind never leaves a half-written file under the final name. When the disk has no
    room for another frame and the container's index, saving stops with the video so far
    finalized, renamed into place and readable, and a SourceError says so.
    """

    def __init__(self, path: Path, fps: float | None, inputs: Sequence[Path] = ()) -> None:
        fourcc = FOURCC_BY_SUFFIX.get(path.suffix.lower())
        if fourcc is None:
            raise SourceError(
                f"{path}: cannot save video as {path.suffix or 'no suffix'!r}; "
                f"use one of {', '.join(FOURCC_BY_SUFFIX)}"
            )
        if not path.parent.is_dir():
            raise SourceError(f"{path}: folder {path.parent} does not exist")
        if any(same_file(path, source) for source in inputs):
            raise SourceError(f"{path}: is also the input; saving onto it would destroy it")
        self.path, self.fourcc, self.fps = path, fourcc, fps or DEFAULT_VIDEO_FPS
        self.frames = 0
        self._first_frame_bytes = 0
        self._writer: cv2.VideoWriter | None = None
        self._partial: Path | None = None

    def write(self, frame: Frame, result: FrameResult, fps: float) -> str | None:
        if self._writer is None:
            self._open(frame)
        assert self._writer is not None and self._partial is not None
        if not self._room_for(frame):
            free = shutil.disk_usage(self._partial.parent).free
            self.close()
            kept = f"the {self.frames} frames before are in it" if self.frames else "none saved"
            raise SourceError(
                f"{self.path}: the disk is full ({free / 2**20:.1f} MiB free): "
                f"saving stopped, {kept}"
            )
        self._writer.write(annotate(frame, result, fps))
        self.frames += 1
        return None

    def _open(self, frame: Frame) -> None:
        height, width = frame.shape[:2]
        # Hidden, this process's own, and with the suffix that chooses the container.
        self._partial = self.path.with_name(f".{self.path.stem}.{os.getpid()}{self.path.suffix}")
        code = cv2.VideoWriter.fourcc(*self.fourcc)
        self._writer = cv2.VideoWriter(str(self._partial), code, self.fps, (width, height))
        if not self._writer.isOpened():
            self._partial.unlink(missing_ok=True)
            raise SourceError(f"{self.path}: cannot write a {self.fourcc} video here")
        self._first_frame_bytes = len(cv2.imencode(".jpg", frame)[1])

    def _room_for(self, frame: Frame) -> bool:
        assert self._partial is not None
        written = self._partial.stat().st_size
        typical = (
            written // self.frames
            if self.frames >= FRAMES_BEFORE_ESTIMATE
            else self._first_frame_bytes
        )
        next_frame = min(frame.nbytes, FRAME_SIZE_MARGIN * typical)
        needed = FINALIZE_RESERVE_BYTES + INDEX_BYTES_PER_FRAME * (self.frames + 1) + next_frame
        return shutil.disk_usage(self._partial.parent).free >= needed

    def close(self) -> None:
        if self._writer is None or self._partial is None:
            return
        self._writer.release()
        self._writer, partial = None, self._partial
        if self.frames == 0:  # the disk was full from the start: nothing to keep
            partial.unlink(missing_ok=True)
            return
        # The container's own count of its frames (0 where it keeps none): all that were written.
        capture = cv2.VideoCapture(str(partial))
        counted = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        readable = capture.isOpened() and capture.read()[0] and counted in (0, self.frames)
        capture.release()
        if not readable:
            raise SourceError(
                f"{self.path}: the video could not be finalized (a write failed); "
                f"what was written is in {partial}"
            )
        partial.replace(self.path)
