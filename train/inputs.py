"""tf.data input pipelines: augmentation for training, plain batches for evaluation.

Images stay uint8 until the last step, which scales them with the runtime's own `PIXEL_SCALE`, so
training sees exactly what `edge_cifar.preprocess` gives the float model on the device.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edge_cifar.preprocess import PIXEL_SCALE
from train.camera_augment import camera_effects
from train.data import Split

# Random crops from an image reflect-padded by an eighth of its side: shifts of up to 4 pixels
# for a 32x32 CIFAR-10 image (a 40x40 padded one), the same share of a larger input.
PAD_FRACTION = 8


def _crop_and_flip(image: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    pad = image.shape[0] // PAD_FRACTION
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    cropped = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(cropped, seed=seeds[1])


def _cut_out(image: tf.Tensor, seed: tf.Tensor, size: int, fill: tf.Tensor) -> tf.Tensor:
    """Cutout (DeVries & Taylor, 2017): a `size` x `size` square painted `fill`, centred anywhere
    in the image, so near an edge only part of it lands inside."""
    height, width = image.shape[0], image.shape[1]
    unit = tf.random.stateless_uniform([2], seed=seed)
    centre = tf.cast(unit * [height, width], tf.int32)
    top, left = centre[0] - size // 2, centre[1] - size // 2
    rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return tf.where(inside[:, :, None], fill, image)


def _to_model_input(images: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32) * PIXEL_SCALE, targets


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    targets: np.ndarray = np.eye(classes, dtype=np.float32)[labels]
    return targets


def training_dataset(
    split: Split,
    targets: np.ndarray,
    batch_size: int,
    seed: int,
    cutout: int = 0,
    camera_augment: float = 0.0,
) -> tf.data.Dataset:
    """Shuffled, augmented batches of the images and their target distributions (one-hot labels,
    or soft targets from a teacher), reshuffled and re-augmented every epoch: a random crop of the
    reflect-padded image, a random mirror, with `camera_augment` > 0 each camera effect
    (train/camera_augment.py) with that probability, and with `cutout` > 0 a square of that side
    painted the mean colour of the split."""
    examples = tf.data.Dataset.from_tensor_slices((split.images, targets)).shuffle(
        len(split), seed=seed, reshuffle_each_iteration=True
    )
    # Stateless ops keyed by per-element seeds: the same run gives the same augmentation, however
    # many threads the map uses. A seed pair per random op; without cutout and camera effects the
    # stream is the two-op one every run before them used.
    ops = 2 + bool(cutout) + bool(camera_augment)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2 * ops)
    seeds = seeds.map(lambda s: tf.reshape(s, (ops, 2)))
    if cutout:
        fill = tf.constant(np.round(split.images.mean(axis=(0, 1, 2))).astype(np.uint8))
    if camera_augment:
        camera = camera_effects(camera_augment)

    def augment(
        example: tuple[tf.Tensor, tf.Tensor], seeds: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        image, target = example
        image = _crop_and_flip(image, seeds)
        if camera_augment:
            image = camera(image, seeds[-1])
        if cutout:
            image = _cut_out(image, seeds[2], cutout, fill)
        return image, target

    return (
        tf.data.Dataset.zip((examples, seeds))
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .map(_to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_dataset(split: Split, batch_size: int = 500) -> tf.data.Dataset:
    return (
        tf.data.Dataset.from_tensor_slices((split.images, one_hot(split.labels, split.classes)))
        .batch(batch_size)
        .map(_to_model_input)
        .prefetch(tf.data.AUTOTUNE)
    )
