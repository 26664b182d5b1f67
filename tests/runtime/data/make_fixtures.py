"""Rebuild the tiny foreign models the runtime's tests load (needs TensorFlow).

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


def two_outputs(input_shape: tuple[int, int, int]) -> tf.keras.Model:
    """Not an image classifier: two outputs (a feature map and a vector)."""
    inputs = tf.keras.Input(input_shape)
    features = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    vector = tf.keras.layers.Dense(3)(tf.keras.layers.GlobalAveragePooling2D()(features))
    return tf.keras.Model(inputs, [features, vector])


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
    for name, shape, model in [
        ("five_classes.tflite", (32, 32, 3), tiny_model((32, 32, 3), 5)),  # a 5-class output
        ("gray_input.tflite", (32, 32, 1), tiny_model((32, 32, 1), 10)),  # a one-channel input
        ("two_outputs.tflite", (16, 16, 3), two_outputs((16, 16, 3))),  # no classifier
    ]:
        (HERE / name).write_bytes(to_int8(model, shape))
        print(HERE / name)
