"""Training throughput: images per second through `fit` on synthetic batches, per config and
precision. The figure training budgets are planned with on a given CPU (train/NOTES.md)."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from train.labels import NUM_CLASSES
from train.models import build
from train.precision import FLOAT32, use_precision
from train.recipe import ModelConfig

WARMUP_STEPS, TIMED_STEPS = 8, 20


def images_per_second(config: ModelConfig, precision: str, batch_size: int = 128) -> float:
    """SGD steps of `config`'s model on random images in `precision`, after warm-up steps that
    build and compile the graph."""
    use_precision(precision)
    try:
        model = build(config)
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
            keras.losses.CategoricalCrossentropy(),
        )
        rng = np.random.default_rng(0)
        images = rng.random((batch_size * 4, *config.input_shape), dtype=np.float32)
        labels = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, len(images))]
        batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
        batches = batches.cache().repeat()
        model.fit(batches, steps_per_epoch=WARMUP_STEPS, epochs=1, verbose=0)
        started = time.perf_counter()
        model.fit(batches, steps_per_epoch=TIMED_STEPS, epochs=1, verbose=0)
        return TIMED_STEPS * batch_size / (time.perf_counter() - started)
    finally:
        use_precision(FLOAT32)
