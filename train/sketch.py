"""A config's untrained net as a full-INT8 file: its size, multiply-adds and invoke latency are
those of the trained model (training changes the weights' values, not the graph), so an
architecture is judged against a device budget before any compute goes into training it.

The net goes through the same QAT wrapper and converter as a trained one; random pixels stand in
for the calibration images, which change the ranges, not the ops or their shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.convert import to_int8_tflite
from train.data import Split
from train.models import build
from train.qat import quantize_aware
from train.recipe import ModelConfig

CALIBRATION_IMAGES = 8


def sketch_int8(config: ModelConfig, path: Path, seed: int = 0) -> Path:
    """Write `config`'s untrained net, converted to full INT8 (int8 input and output), to `path`."""
    side = config.input_size
    images = np.random.default_rng(seed).integers(
        0, 256, (CALIBRATION_IMAGES, side, side, 3), dtype=np.uint8
    )
    calibration = Split(images, np.zeros(CALIBRATION_IMAGES, np.int64))
    return to_int8_tflite(quantize_aware(build(config)), calibration, path)
