"""Sample inputs for the runtime from the CIFAR-10 test set: a short video and a few image files.

`python -m train.samples` writes `samples/cifar_test.avi` and `samples/images/`, which `make
demo` feeds to `edge-cifar camera` and `edge-cifar classify`. NumPy and OpenCV only (no TensorFlow):
the runtime's tests build their own, larger video with `write_video` where TensorFlow is absent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from train import data
from train.labels import CLASS_NAMES, NUM_CLASSES

FRAME_SIZE = (640, 480)  # width, height: a VGA camera frame
IMAGE_SIDE = 480  # the frame's centre square, which is what the runtime crops and classifies
VIDEO_IMAGES = 40
HOLD_FRAMES = 3  # each image stays on screen this many frames, as an object would before a camera
VIDEO_FPS = 6.0
PNG_SIDE = 128
# Bicubic upscaling looks like a camera's view and compresses well: 40 images x 3 frames of MJPG are
# 1.4 MB (2.4 MB with blocky nearest-neighbour pixels), and area-averaging back to 32x32 is off by
# 2.4 levels per pixel on average. Nearest-neighbour gives the 32x32 pixels back exactly (before the
# codec), which is what a test comparing video frames with the original images wants.
SMOOTH = cv2.INTER_CUBIC
EXACT = cv2.INTER_NEAREST


def upscale(rgb: np.ndarray, side: int, interpolation: int = SMOOTH) -> np.ndarray:
    """A 32x32 RGB image → side x side BGR."""
    return cv2.resize(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (side, side), interpolation=interpolation
    )


def video_frame(rgb: np.ndarray, interpolation: int = SMOOTH) -> np.ndarray:
    """The image upscaled and centred on a black 640x480 frame (the runtime crops that square)."""
    width, height = FRAME_SIZE
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    left, top = (width - IMAGE_SIDE) // 2, (height - IMAGE_SIDE) // 2
    frame[top : top + IMAGE_SIDE, left : left + IMAGE_SIDE] = upscale(
        rgb, IMAGE_SIDE, interpolation
    )
    return frame


def write_video(
    images: np.ndarray,
    path: Path,
    *,
    hold: int = HOLD_FRAMES,
    fps: float = VIDEO_FPS,
    interpolation: int = SMOOTH,
    quality: int | None = None,
) -> int:
    """An MJPG .avi of RGB images, each held `hold` frames; returns the number of frames written.

    With a JPEG `quality` (0..100) OpenCV's own MJPEG writer is used, which honours it (the FFmpeg
    one does not); without, the default writer's smaller files.
    """
    fourcc = cv2.VideoWriter.fourcc(*"MJPG")
    if quality is None:
        writer = cv2.VideoWriter(str(path), fourcc, fps, FRAME_SIZE)
    else:
        writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, fourcc, fps, FRAME_SIZE)
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an MJPG video here")
    try:
        for rgb in images:
            frame = video_frame(rgb, interpolation)
            for _ in range(hold):
                writer.write(frame)
    finally:
        writer.release()
    return len(images) * hold


def one_per_class(labels: np.ndarray) -> list[int]:
    """The index of the first test image of each class, in class order."""
    return [int(np.flatnonzero(labels == c)[0]) for c in range(NUM_CLASSES)]


def write_images(split: data.Split, folder: Path) -> list[Path]:
    """One PNG per class, `<index>_<class>.png`, plus a grayscale and a 16-bit variant."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    indices = one_per_class(split.labels)
    for index in indices:
        path = folder / f"{index:04d}_{CLASS_NAMES[split.labels[index]]}.png"
        cv2.imwrite(str(path), upscale(split.images[index], PNG_SIDE))
        written.append(path)
    gray_index, deep_index = indices[1], indices[8]  # automobile and ship: shape, not colour
    gray = cv2.cvtColor(upscale(split.images[gray_index], PNG_SIDE), cv2.COLOR_BGR2GRAY)
    gray_path = folder / f"{gray_index:04d}_{CLASS_NAMES[split.labels[gray_index]]}_gray.png"
    cv2.imwrite(str(gray_path), gray)
    # 16 bits per channel, as a scientific or raw camera pipeline saves: value * 257 spans 0..65535.
    deep = upscale(split.images[deep_index], PNG_SIDE).astype(np.uint16) * 257
    deep_path = folder / f"{deep_index:04d}_{CLASS_NAMES[split.labels[deep_index]]}_16bit.png"
    cv2.imwrite(str(deep_path), deep)
    return [*written, gray_path, deep_path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 folder")
    parser.add_argument("--out", type=Path, default=Path("samples"), help="output folder")
    args = parser.parse_args()
    test = data.load(args.data_dir).test
    args.out.mkdir(parents=True, exist_ok=True)
    video = args.out / "cifar_test.avi"
    frames = write_video(test.images[:VIDEO_IMAGES], video)
    print(f"{video}: {frames} frames, {video.stat().st_size / 1e6:.2f} MB")
    for path in write_images(test, args.out / "images"):
        print(path)


if __name__ == "__main__":
    main()
