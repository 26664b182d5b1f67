"""Keras → TFLite: a float32 model and a full-integer INT8 model (int8 input and output)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from edge_cifar.interpreter import Model
from edge_cifar.preprocess import PIXEL_SCALE
from train.artifacts import write_atomic
from train.data import Split

REPRESENTATIVE_IMAGES = 200
# Integer types a full-integer model may hold: int8 activations/weights, int32 biases.
INTEGER_TYPES = {"int8", "int32"}


class ConversionError(RuntimeError):
    pass


def to_float_tflite(model: keras.Model, path: Path) -> Path:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    write_atomic(path, converter.convert())
    return path


def to_int8_tflite(qat_model: keras.Model, calibration: Split, path: Path) -> Path:
    """Full-integer conversion: every op int8, input and output int8, no float tensor left."""
    converter = tf.lite.TFLiteConverter.from_keras_model(qat_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8

    def representative() -> Iterator[list[np.ndarray]]:
        # QAT already fixed every range; these samples only satisfy the converter's input check.
        for image in calibration.images[:REPRESENTATIVE_IMAGES]:
            yield [(image[np.newaxis].astype(np.float32) * PIXEL_SCALE)]

    converter.representative_dataset = representative
    content = converter.convert()
    write_atomic(path, content)
    float_tensors = non_integer_tensors(path)
    if float_tensors:
        path.unlink()
        raise ConversionError(f"{path}: not full-integer, float tensors left: {float_tensors[:5]}")
    return path


def non_integer_tensors(path: Path) -> list[str]:
    """Names of the tensors of a TFLite model that are neither int8 nor int32."""
    return [t.name for t in Model(path).tensors() if t.dtype not in INTEGER_TYPES]
