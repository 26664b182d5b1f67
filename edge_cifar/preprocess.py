"""Frame → model input: the one definition of what the model sees.

Training, evaluation and the camera loop all go through this module, so the accuracy in a model
card is measured on exactly the pixels the device feeds the model.

A model sees (pixel - mean) / std for each 0..255 pixel value (its `Normalization`, read from its
metadata or given with `--input-range`); a quantized input then maps that value to its integer
through the tensor's scale and zero point. Both steps fold into a 256-entry lookup table per
channel, built once per model. Our models take RGB pixels scaled by `PIXEL_SCALE` (0..1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import cv2
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from cv2.typing import MatLike

# Pixels are scaled to 0..1 outside the model: tfmot cannot quantize a Rescaling layer, and the
# int8 input's scale and zero point represent this scaling exactly (scale 1/255, zero point -128).
PIXEL_SCALE = 1.0 / 255.0
# What a frame's pixels may be: 8-bit, 16-bit (top 8 bits kept), or float in 0..1.
PIXEL_TYPES = (np.uint8, np.uint16, np.float32, np.float64)
# Input tensor types an image classifier may take.
INPUT_TYPES = ("float32", "int8", "uint8")


class FrameError(ValueError):
    """A frame that cannot be turned into a model input (wrong rank, channels or dtype)."""


@dataclass(frozen=True)
class Normalization:
    """What a pixel value means to the model: it sees (pixel - mean) / std, with one value for all
    channels or one per channel. TFLite metadata's NormalizationOptions say the same thing."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.mean or len(self.mean) != len(self.std) or 0.0 in self.std:
            raise FrameError(f"bad input normalization: mean {self.mean}, std {self.std}")

    def describe(self) -> str:
        low = [(0.0 - m) / s for m, s in zip(self.mean, self.std, strict=True)]
        high = [(255.0 - m) / s for m, s in zip(self.mean, self.std, strict=True)]
        span = ", ".join(f"{lo:g}..{hi:g}" for lo, hi in zip(low, high, strict=True))
        return f"pixels 0..255 -> {span} (mean {list(self.mean)}, std {list(self.std)})"


# `--input-range` for a model without normalization metadata: where pixels 0..255 land.
INPUT_RANGES: dict[str, Normalization] = {
    "0..1": Normalization((0.0,), (255.0,)),
    "0..255": Normalization((0.0,), (1.0,)),
    "-1..1": Normalization((127.5,), (127.5,)),
}
# Our models' convention (PIXEL_SCALE), and the stated default for a model that says nothing.
DEFAULT_INPUT_RANGE = "0..1"


@dataclass(frozen=True)
class InputSpec:
    """What the model's input tensor expects: size, channels, dtype, quantization, meaning."""

    height: int
    width: int
    dtype: np.dtype[np.generic]
    scale: float = 0.0
    zero_point: int = 0
    channels: int = 3
    normalization: Normalization = INPUT_RANGES[DEFAULT_INPUT_RANGE]
    lut: npt.NDArray[np.generic] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise FrameError(f"expected an input of 1 or 3 channels, got {self.channels}")
        if len(self.normalization.mean) not in (1, self.channels):
            raise FrameError(
                f"{len(self.normalization.mean)} normalization values for {self.channels} channels"
            )
        lut = _pixel_lut(self.dtype, self.scale, self.zero_point, self.normalization)
        object.__setattr__(self, "lut", lut)


def _pixel_lut(
    dtype: np.dtype[np.generic], scale: float, zero_point: int, normalization: Normalization
) -> npt.NDArray[np.generic]:
    """Model-input value of each pixel value 0..255: shape (256,) or (256, channels)."""
    pixels = np.arange(256, dtype=np.float64)[:, np.newaxis]
    mean = np.asarray(normalization.mean, dtype=np.float64)
    std = np.asarray(normalization.std, dtype=np.float64)
    values = (pixels - mean) / std
    values = values[:, 0] if values.shape[1] == 1 else values
    if dtype == np.float32:
        return values.astype(np.float32)
    if dtype not in (np.int8, np.uint8) or scale <= 0:
        raise FrameError(f"unsupported model input: dtype {dtype}, scale {scale}")
    low, high = (-128, 127) if dtype == np.int8 else (0, 255)
    quantized = np.round(values / scale) + zero_point
    return np.clip(quantized, low, high).astype(dtype)


def to_uint8(frame: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """8-bit copy of a frame: 16-bit images keep their top 8 bits, floats are taken as 0..1."""
    if frame.dtype == np.uint8:
        return frame.astype(np.uint8, copy=False)
    if frame.dtype == np.uint16:
        return (frame.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    if frame.dtype in PIXEL_TYPES:  # float32 or float64
        floats = frame.astype(np.float64, copy=False)
        return np.clip(np.round(floats * 255.0), 0, 255).astype(np.uint8)
    raise FrameError(f"unsupported pixel type {frame.dtype} (expected 8-bit, 16-bit or float)")


def center_square(frame: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """The largest centred square of a frame (a view, no copy)."""
    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return frame[top : top + side, left : left + side]


_TO_RGB = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
_TO_GRAY = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}


def _frame_channels(frame: npt.NDArray[np.generic]) -> int:
    if frame.ndim not in (2, 3) or frame.size == 0:
        raise FrameError(f"expected an image of shape HxW or HxWxC, got shape {frame.shape}")
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels not in _TO_RGB:
        raise FrameError(f"expected 1, 3 or 4 channels, got {channels}")
    if frame.dtype not in PIXEL_TYPES:
        raise FrameError(f"unsupported pixel type {frame.dtype} (expected 8-bit, 16-bit or float)")
    return int(channels)


def _model_sized(frame: npt.NDArray[np.generic], height: int, width: int) -> MatLike:
    square = cast("MatLike", center_square(frame))
    if square.shape[:2] != (height, width):
        # INTER_AREA averages the pixels a target pixel covers: no aliasing when shrinking a frame.
        # Enlarging, it repeats pixels in blocks, which an ImageNet backbone reads as texture:
        # a cubic kernel enlarges smoothly (train/NOTES.md, the linear probe).
        shrinking = square.shape[0] >= height and square.shape[1] >= width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        square = cv2.resize(square, (width, height), interpolation=interpolation)
    return square


def frame_to_rgb(frame: npt.NDArray[np.generic], height: int, width: int) -> npt.NDArray[np.uint8]:
    """An OpenCV frame (BGR, BGRA or gray; 8/16-bit) → centre-cropped RGB uint8, model-sized."""
    channels = _frame_channels(frame)
    # Colour conversion after the resize touches the model's pixels instead of a whole frame.
    return to_uint8(cv2.cvtColor(_model_sized(frame, height, width), _TO_RGB[channels]))


def frame_to_gray(frame: npt.NDArray[np.generic], height: int, width: int) -> npt.NDArray[np.uint8]:
    """An OpenCV frame → centre-cropped one-channel uint8 (HxWx1), model-sized."""
    channels = _frame_channels(frame)
    square = _model_sized(frame, height, width)
    gray = square if channels == 1 else cv2.cvtColor(square, _TO_GRAY[channels])
    return to_uint8(np.asarray(gray).reshape(height, width, 1))


def rgb_to_input(rgb: npt.NDArray[np.uint8], spec: InputSpec) -> npt.NDArray[np.generic]:
    """uint8 image(s) at the model size (RGB, or one channel) → model input values, with a
    leading batch axis."""
    batch = rgb if rgb.ndim == 4 else rgb[np.newaxis]
    if batch.shape[1:] != (spec.height, spec.width, spec.channels):
        raise FrameError(
            f"expected images of {spec.height}x{spec.width}x{spec.channels}, got {rgb.shape}"
        )
    if spec.lut.ndim == 1:
        return spec.lut[batch]
    return spec.lut[batch, np.arange(spec.channels)]


def frame_to_input(frame: npt.NDArray[np.generic], spec: InputSpec) -> npt.NDArray[np.generic]:
    """An OpenCV frame → the model's input tensor (batch of one)."""
    to_pixels = frame_to_rgb if spec.channels == 3 else frame_to_gray
    return rgb_to_input(to_pixels(frame, spec.height, spec.width), spec)
