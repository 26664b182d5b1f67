"""Frame → model input: the one definition of what the model sees.

Training, evaluation and the camera loop all go through this module, so the accuracy in a model
card is measured on exactly the pixels the device feeds the model.

The float model takes RGB pixels scaled by `PIXEL_SCALE` (0..1). Quantized models carry that scaling
in their input tensor's scale and zero point, so a uint8 pixel maps to its quantized value through a
256-entry lookup table built once per model.
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


class FrameError(ValueError):
    """A frame that cannot be turned into a model input (wrong rank, channels or dtype)."""


@dataclass(frozen=True)
class InputSpec:
    """What the model's input tensor expects: size, dtype and quantization."""

    height: int
    width: int
    dtype: np.dtype[np.generic]
    scale: float = 0.0
    zero_point: int = 0
    lut: npt.NDArray[np.generic] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lut", _pixel_lut(self.dtype, self.scale, self.zero_point))


def _pixel_lut(
    dtype: np.dtype[np.generic], scale: float, zero_point: int
) -> npt.NDArray[np.generic]:
    """Model-input value of each uint8 pixel value 0..255."""
    pixels = np.arange(256, dtype=np.float64) * PIXEL_SCALE
    if dtype == np.float32:
        return pixels.astype(np.float32)
    if dtype not in (np.int8, np.uint8) or scale <= 0:
        raise FrameError(f"unsupported model input: dtype {dtype}, scale {scale}")
    low, high = (-128, 127) if dtype == np.int8 else (0, 255)
    quantized = np.round(pixels / scale) + zero_point
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


def frame_to_rgb(frame: npt.NDArray[np.generic], height: int, width: int) -> npt.NDArray[np.uint8]:
    """An OpenCV frame (BGR, BGRA or gray; 8/16-bit) → centre-cropped RGB uint8, model-sized."""
    if frame.ndim not in (2, 3) or frame.size == 0:
        raise FrameError(f"expected an image of shape HxW or HxWxC, got shape {frame.shape}")
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels not in _TO_RGB:
        raise FrameError(f"expected 1, 3 or 4 channels, got {channels}")
    if frame.dtype not in PIXEL_TYPES:
        raise FrameError(f"unsupported pixel type {frame.dtype} (expected 8-bit, 16-bit or float)")
    square = cast("MatLike", center_square(frame))
    if square.shape[:2] != (height, width):
        # INTER_AREA averages the pixels a target pixel covers: no aliasing when shrinking a frame.
        square = cv2.resize(square, (width, height), interpolation=cv2.INTER_AREA)
    # Colour conversion after the resize touches 32x32 pixels instead of a whole camera frame.
    return to_uint8(cv2.cvtColor(square, _TO_RGB[channels]))


def rgb_to_input(rgb: npt.NDArray[np.uint8], spec: InputSpec) -> npt.NDArray[np.generic]:
    """RGB uint8 image(s) at the model size → model input values, with a leading batch axis."""
    batch = rgb if rgb.ndim == 4 else rgb[np.newaxis]
    if batch.shape[1:] != (spec.height, spec.width, 3):
        raise FrameError(f"expected RGB images of {spec.height}x{spec.width}x3, got {rgb.shape}")
    return spec.lut[batch]


def frame_to_input(frame: npt.NDArray[np.generic], spec: InputSpec) -> npt.NDArray[np.generic]:
    """An OpenCV frame → the model's input tensor (batch of one)."""
    return rgb_to_input(frame_to_rgb(frame, spec.height, spec.width), spec)
