"""tf.data input pipelines: augmentation for training, plain batches for evaluation.

Images stay uint8 until the last step, which scales them with the runtime's own `PIXEL_SCALE`, so
training sees exactly what `edge_cifar.preprocess` gives the float model on the device.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edge_cifar.labels import NUM_CLASSES
from edge_cifar.preprocess import PIXEL_SCALE
from train.data import Split

PAD = 4  # random 32x32 crops from a 40x40 reflect-padded image: shifts of up to 4 pixels


def _augment(example: tuple[tf.Tensor, tf.Tensor], seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # Stateless ops keyed by a per-element seed: the same run gives the same augmentation,
    # however many threads the map uses.
    image, target = example
    padded = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]], mode="REFLECT")
    cropped = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(cropped, seed=seeds[1]), target


def _to_model_input(images: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32) * PIXEL_SCALE, targets


def one_hot(labels: np.ndarray) -> np.ndarray:
    targets: np.ndarray = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    return targets


def training_dataset(
    split: Split, targets: np.ndarray, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Shuffled, augmented batches of the images and their target distributions (one-hot labels,
    or soft targets from a teacher), reshuffled and re-augmented every epoch."""
    examples = tf.data.Dataset.from_tensor_slices((split.images, targets)).shuffle(
        len(split), seed=seed, reshuffle_each_iteration=True
    )
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)
    seeds = seeds.map(lambda s: tf.reshape(s, (2, 2)))
    return (
        tf.data.Dataset.zip((examples, seeds))
        .map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .map(_to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_dataset(split: Split, batch_size: int = 500) -> tf.data.Dataset:
    return (
        tf.data.Dataset.from_tensor_slices((split.images, one_hot(split.labels)))
        .batch(batch_size)
        .map(_to_model_input)
        .prefetch(tf.data.AUTOTUNE)
    )
