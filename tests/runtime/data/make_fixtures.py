"""Rebuild the tiny wrong-shape models the runtime's error tests load (needs TensorFlow).

    .venv/bin/python tests/runtime/data/make_fixtures.py

The tests themselves run where TensorFlow is not installed, so the files are committed (a few KiB).
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent


def tiny_model(input_shape: tuple[int, int, int], classes: int) -> tf.keras.Model:
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(classes, activation="softmax")(x))


def to_int8(model: tf.keras.Model, input_shape: tuple[int, int, int]) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: (
        [rng.random((1, *input_shape), dtype=np.float32)] for _ in range(8)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


if __name__ == "__main__":
    for name, shape, classes in [
        ("five_classes.tflite", (32, 32, 3), 5),  # the right input, a 5-class output
        ("gray_input.tflite", (32, 32, 1), 10),  # 10 classes, but a one-channel input
    ]:
        (HERE / name).write_bytes(to_int8(tiny_model(shape, classes), shape))
        print(HERE / name)
