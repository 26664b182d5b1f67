"""Frame sources: a camera index, a video file, a stream URL, picamera2, or image files.

Every source yields BGR uint8 frames and is opened by `open_source(device)`; a device that does not
open raises `SourceError` with one line saying why. Nothing here knows about models.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from edge_cifar import MAX_IMAGE_PIXELS
from edge_cifar.orientation import exif_orientation, upright
from edge_cifar.preprocess import FrameError, to_uint8

Frame = npt.NDArray[np.uint8]

# Suffixes OpenCV's imread decodes; a folder is scanned for these, other files are left alone.
IMAGE_SUFFIXES = frozenset(
    {
        *(".bmp", ".dib", ".jpg", ".jpeg", ".jpe", ".jp2", ".png", ".webp", ".avif", ".pbm"),
        *(".pgm", ".ppm", ".pxm", ".pnm", ".pfm", ".sr", ".ras", ".tif", ".tiff", ".exr", ".hdr"),
    }
)
PICAMERA2 = "picamera2"
PICAMERA2_HINT = (
    "picamera2 is not installed: `sudo apt install python3-picamera2` (Raspberry Pi OS), "
    "or `pip install picamera2` in a venv made with --system-site-packages"
)
# A live camera sometimes drops a frame (USB hiccup, exposure change): retry before giving up.
LIVE_READ_RETRIES = 5
LIVE_RETRY_PAUSE_S = 0.05
# The largest image file read: a 40 MP photo as an uncompressed 16-bit RGB TIFF is 240 MB.
MAX_IMAGE_FILE_BYTES = 256 * 2**20
# A live source that went away is reopened after these pauses (doubling, then the last one).
REOPEN_FIRST_PAUSE_S = 0.5
REOPEN_MAX_PAUSE_S = 8.0


class SourceError(RuntimeError):
    """A camera, video, stream or image that cannot be opened or read; the message is one line."""


class ImageTooLargeError(SourceError):
    """An image whose header declares more pixels than MAX_IMAGE_PIXELS; it is never decoded."""


class FrameSource(Protocol):
    """Anything that yields BGR frames. `fps` is the source's nominal rate, when it has one; a
    `live` source (camera, stream) runs at its own pace, a file at whatever pace it is read."""

    name: str
    fps: float | None
    live: bool

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def quiet_opencv_logs() -> None:
    """Silence OpenCV's and FFmpeg's own log lines: our errors say what matters in one line.

    FFmpeg reads its level when OpenCV first opens a video, so this must run before that; setting
    OPENCV_FFMPEG_LOGLEVEL in the environment beforehand keeps FFmpeg's messages for debugging.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    logging = getattr(getattr(cv2, "utils", None), "logging", None)  # OpenCV 5
    set_level = getattr(logging, "setLogLevel", None) or getattr(cv2, "setLogLevel", None)
    if set_level is not None:
        set_level(0)  # LOG_LEVEL_SILENT in both APIs


def to_bgr(image: npt.NDArray[np.generic]) -> Frame:
    """Any image OpenCV reads (gray, BGR, BGRA; 8/16-bit or float) as 3-channel BGR uint8."""
    pixels = to_uint8(image)
    if pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 1):
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)  # type: ignore[return-value]
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)  # type: ignore[return-value]
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels
    raise FrameError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def opencv_reason(error: cv2.error) -> str:
    """What an OpenCV exception says, in one line (its message ends with the failed check)."""
    text = str(error).strip()
    return text.splitlines()[-1] if text else "OpenCV error"


def declared_size(encoded: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header, without decoding it; None for a format Pillow
    does not know (OpenCV may still decode it: EXR, HDR, PFM). Pillow refuses a header beyond
    twice its own limit itself: that is raised as ImageTooLargeError."""
    try:
        with warnings.catch_warnings():
            # Pillow warns on a large declared size: that is ours to judge, by our limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(encoded)) as image:
                return image.size
    except Image.DecompressionBombError:
        pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageTooLargeError(f"declares more than {pillow_limit / 1e6:.0f} MP") from None
    except Exception:  # Pillow raises many kinds on what it cannot parse; OpenCV judges next
        return None


def decode_image(
    encoded: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS
) -> npt.NDArray[np.generic]:
    """Encoded image bytes as OpenCV decodes them, unchanged (gray/BGR/BGRA, 8 or 16-bit) but
    turned upright as their EXIF orientation says.

    The header's declared size is checked first: a decompression bomb is refused undecoded.
    """
    limit = f"the {max_pixels / 1e6:.0f} MP limit; not decoded"
    try:
        size = declared_size(encoded)
    except ImageTooLargeError as error:
        raise ImageTooLargeError(f"{name}: {error}, more than {limit}") from None
    if size is not None and size[0] * size[1] > max_pixels:
        width, height = size
        raise ImageTooLargeError(
            f"{name}: declares {width}x{height} pixels ({width * height / 1e6:.0f} MP), "
            f"more than {limit}"
        )
    buffer = np.frombuffer(encoded, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    except cv2.error as error:
        # OpenCV refuses a declared size beyond its limits (OPENCV_IO_MAX_IMAGE_PIXELS, a side
        # over 2**20) with an assertion in this function, before allocating anything.
        if "validateInputImageSize" in str(error):
            raise ImageTooLargeError(
                f"{name}: declares more pixels than OpenCV's {MAX_IMAGE_PIXELS / 1e6:.0f} MP "
                f"limit, or a side over {2**20:,}; not decoded"
            ) from None
        raise SourceError(
            f"{name}: not an image OpenCV can decode ({opencv_reason(error)})"
        ) from None
    if image is None or image.size == 0:
        raise SourceError(f"{name}: not an image OpenCV can decode (corrupt, truncated or unknown)")
    return upright(image, exif_orientation(encoded))


def read_image(path: Path, max_bytes: int = MAX_IMAGE_FILE_BYTES) -> npt.NDArray[np.generic]:
    """An image file as OpenCV decodes it, unchanged: gray/BGR/BGRA, 8 or 16-bit.

    Only a regular file of at most `max_bytes` is read: a FIFO would block the read for ever and
    /dev/zero never end it. Opened without blocking, so that a FIFO is seen rather than waited on.
    """
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
            status = os.fstat(file.fileno())
            if stat.S_ISDIR(status.st_mode):
                raise SourceError(f"{path}: is a directory")
            if not stat.S_ISREG(status.st_mode):
                raise SourceError(f"{path}: not a regular file (a pipe or a device)")
            if status.st_size > max_bytes:
                raise SourceError(
                    f"{path}: {status.st_size / 2**20:.0f} MiB, larger than the "
                    f"{max_bytes / 2**20:.0f} MiB an image file may be"
                )
            encoded = file.read()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as error:
        raise SourceError(f"{path}: cannot read ({error.strerror})") from None
    return decode_image(encoded, str(path))


def folder_images(folder: Path) -> list[Path]:
    """A folder's image files, then those of each subfolder: a folder of class folders (what
    `make quantize DATA=` and `camera --collect` use) is classified whole."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    for subfolder in (p for p in entries if p.is_dir()):
        images += sorted(
            p for p in subfolder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    return images


def expand_image_paths(patterns: Sequence[str]) -> list[Path]:
    """Files, folders (their image files and their class folders', sorted) and globs → image
    paths, in the order given.

    A named file is kept whatever its suffix, and so is a missing path or a glob that matches
    nothing, so that reading reports it rather than it vanishing; an empty folder is a SourceError.
    """
    paths: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = folder_images(path)
            if not found:
                raise SourceError(f"{path}: no image files in this folder")
            paths.extend(found)
        elif glob.has_magic(pattern) and not path.exists():
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))  # noqa: PTH207
            paths.extend([m for m in matches if m.is_file()] or [path])
        else:
            paths.append(path)  # missing or not an image: read_image says so, for this file alone
    return paths


class ImageFiles:
    """Image files as a stream of frames; an unreadable file raises SourceError."""

    fps: float | None = None
    live = False

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.name = f"{len(self.paths)} image files"

    def frames(self) -> Iterator[Frame]:
        for path in self.paths:
            try:
                yield to_bgr(read_image(path))
            except FrameError as error:
                raise SourceError(f"{path}: {error}") from None

    def close(self) -> None:
        pass


class VideoCapture:
    """cv2.VideoCapture: a camera index, a video file or a stream URL.

    A live source (camera, stream) retries a failed read a few times before ending; a file ends at
    its first failed read, and one that yields no frame at all is reported as unreadable.
    """

    def __init__(
        self, target: int | str, *, width: int | None = None, height: int | None = None
    ) -> None:
        self.live = isinstance(target, int) or "://" in str(target)
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            self._capture.release()
            what = "camera" if isinstance(target, int) else "stream" if self.live else "video"
            raise SourceError(f"{self.name}: cannot open {what}")
        if width:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        rate = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = rate if 0 < rate < 1000 else None

    def _read(self) -> Frame | None:
        attempts = LIVE_READ_RETRIES if self.live else 1
        for attempt in range(attempts):
            ok, frame = self._capture.read()
            if ok and frame is not None and frame.size:
                return to_bgr(frame)
            if attempt + 1 < attempts:
                time.sleep(LIVE_RETRY_PAUSE_S)
        return None

    def frames(self) -> Iterator[Frame]:
        count = 0
        while (frame := self._read()) is not None:
            count += 1
            yield frame
        if count == 0:
            raise SourceError(
                f"{self.name}: no frame could be read (empty, corrupt or unsupported)"
            )

    def close(self) -> None:
        self._capture.release()


class Picamera2Source:
    """The Raspberry Pi camera through the picamera2 library (imported only when asked for)."""

    fps: float | None = None
    live = True

    def __init__(self, *, width: int | None = None, height: int | None = None) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise SourceError(PICAMERA2_HINT) from None
        except ValueError as error:
            # apt's picamera2 (its simplejpeg) is built for NumPy 1.x: under NumPy 2 it fails with
            # "numpy.dtype size changed" rather than an ImportError.
            raise SourceError(
                f"picamera2 cannot load with this NumPy ({error}); pip install 'numpy<2'"
            ) from None
        self.name = PICAMERA2
        try:
            self._camera: Any = Picamera2()
            # picamera2's "RGB888" is laid out B, G, R in memory: the order OpenCV expects.
            config = self._camera.create_video_configuration(
                main={"format": "RGB888", "size": (width or 640, height or 480)}
            )
            self._camera.configure(config)
            self._camera.start()
        except Exception as error:  # libcamera raises plain RuntimeErrors, IndexError for no camera
            raise SourceError(f"picamera2: cannot start the camera ({error})") from None

    def frames(self) -> Iterator[Frame]:
        while True:
            yield to_bgr(self._camera.capture_array("main"))

    def close(self) -> None:
        self._camera.stop()
        self._camera.close()


class ReopeningSource:
    """A live source that comes back: when it stops yielding frames (unplugged, stream dropped) it
    is reopened after a pause that doubles up to REOPEN_MAX_PAUSE_S, until it yields again or
    `stop` is set. `on_state(True/False)` says when it is lost and back."""

    live = True

    def __init__(
        self,
        first: FrameSource,
        reopen: Callable[[], FrameSource],
        stop: threading.Event,
        on_state: Callable[[bool], None] = lambda available: None,
        first_pause_s: float = REOPEN_FIRST_PAUSE_S,
    ) -> None:
        self.name, self.fps = first.name, first.fps
        self._current: FrameSource | None = first
        self._reopen, self._stop, self._on_state = reopen, stop, on_state
        self._first_pause_s = first_pause_s
        self.reopened = 0

    def frames(self) -> Iterator[Frame]:
        available, pause = True, self._first_pause_s
        while not self._stop.is_set():
            if self._current is None:
                if self._stop.wait(pause):
                    return
                pause = min(pause * 2, REOPEN_MAX_PAUSE_S)
                with contextlib.suppress(SourceError):  # still gone: wait longer
                    self._current = self._reopen()
                continue
            with contextlib.suppress(SourceError):  # a failed read is a loss, like the end
                for frame in self._current.frames():
                    if not available:
                        available, pause = True, self._first_pause_s
                        self.reopened += 1
                        self._on_state(True)
                    yield frame
            self._current.close()
            self._current = None
            if available and not self._stop.is_set():
                available = False
                self._on_state(False)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()


def open_source(
    devices: Sequence[str], *, width: int | None = None, height: int | None = None
) -> FrameSource:
    """The source one or more `--device` values name.

    "0", "1", ... a camera index; "picamera2" the Pi camera; a URL a stream; a folder, a glob, an
    image file or several of them the images; any other existing file a video.
    """
    if not devices:
        raise SourceError("no device given")
    first = devices[0]
    if len(devices) == 1:
        if first.isdigit():
            return VideoCapture(int(first), width=width, height=height)
        if first == PICAMERA2:
            return Picamera2Source(width=width, height=height)
        if "://" in first:
            return VideoCapture(first, width=width, height=height)
        path = Path(first)
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            return VideoCapture(str(path))
        if not path.exists() and not glob.has_magic(first):
            raise SourceError(f"{first}: no such camera index, file, folder or stream")
    return ImageFiles(expand_image_paths(devices))
