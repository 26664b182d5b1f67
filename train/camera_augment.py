"""Training augmentations that imitate what a camera does to a frame, in the order it happens:
optics and movement blur it, exposure and the sensor's tone curve move its brightness and
contrast, the sensor adds noise, the encoder compresses it.

Each effect strikes an image independently with the recipe's probability `camera_augment`, with a
strength drawn up to about CIFAR-10-C's middle-to-high severities. Kinds the benchmark holds out
(train/robustness.py `HELD_OUT`: impulse and speckle noise, zoom blur, fog, saturation, pixelation)
are never imitated, so their mCA says how far the robustness carries.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import tensorflow as tf

from train.corruptions import disk_kernel, motion_kernel
from train.recipe import CAMERA_EFFECTS

MAX_NOISE_SIGMA = 0.10  # Gaussian sensor noise, in 0..1 pixel units (CIFAR-10-C: 0.04-0.10)
GAIN_RANGE = (0.6, 1.4)  # exposure: pixel values scaled by this much
CONTRAST_RANGE = (0.3, 1.0)  # pulled towards the image mean (CIFAR-10-C: 0.75-0.15)
JPEG_QUALITY_RANGE = (30, 90)  # CIFAR-10-C: 80-40
EFFECTS = len(CAMERA_EFFECTS)


def _padded(kernel: np.ndarray, side: int) -> np.ndarray:
    margin = (side - kernel.shape[0]) // 2
    return np.pad(kernel, margin)


def blur_kernels() -> np.ndarray:
    """The bank a blurred image draws its kernel from, (K, side, side): Gaussian (focus and
    optics), disk (defocus) and one-sided line kernels in 8 directions (motion)."""
    gaussians = [
        cv2.getGaussianKernel(7, sigma) @ cv2.getGaussianKernel(7, sigma).T
        for sigma in (0.5, 0.75, 1.0, 1.25)
    ]
    disks = [disk_kernel(radius, 0.3) for radius in (1.0, 1.5, 2.0)]
    motions = [
        motion_kernel(3, sigma, angle) for sigma in (1.0, 2.0) for angle in range(0, 360, 45)
    ]
    kernels = [np.asarray(k, np.float32) for k in (*gaussians, *disks, *motions)]
    side = max(k.shape[0] for k in kernels)
    return np.stack([_padded(k, side) for k in kernels])


def _maybe(
    strike: tf.Tensor,
    effect: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    image: tf.Tensor,
    seed: tf.Tensor,
) -> tf.Tensor:
    return tf.cond(strike, lambda: effect(image, seed), lambda: image)


def camera_effects(probability: float) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A function (uint8 image, seed pair) -> uint8 image that applies each camera effect with
    `probability`, keyed by the seed alone (stateless, so a run is reproducible)."""
    bank = tf.constant(blur_kernels()[..., None, None])  # (K, side, side, 1, 1)

    def blur(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        index = tf.random.stateless_uniform([], seed, 0, bank.shape[0], tf.int32)
        kernel = tf.tile(bank[index], [1, 1, 3, 1])  # the same kernel on each channel
        # Edges mirrored, not zero-padded: a blur must not darken the border.
        margin = bank.shape[1] // 2
        padded = tf.pad(image, [[margin, margin], [margin, margin], [0, 0]], mode="REFLECT")
        return tf.nn.depthwise_conv2d(padded[None], kernel, [1, 1, 1, 1], "VALID")[0]

    def exposure(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        gain, factor = tf.unstack(tf.random.stateless_uniform([2], seed))
        gain = GAIN_RANGE[0] + gain * (GAIN_RANGE[1] - GAIN_RANGE[0])
        factor = CONTRAST_RANGE[0] + factor * (CONTRAST_RANGE[1] - CONTRAST_RANGE[0])
        mean = tf.reduce_mean(image)
        return ((image - mean) * factor + mean) * gain

    def noise(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        sigma_seed, field_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        sigma = tf.random.stateless_uniform([], sigma_seed, 0.0, MAX_NOISE_SIGMA)
        return image + sigma * tf.random.stateless_normal(tf.shape(image), field_seed)

    def jpeg(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.image.stateless_random_jpeg_quality(image, *JPEG_QUALITY_RANGE, seed)

    def apply(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        shape = image.shape
        seeds = tf.random.experimental.stateless_split(seed, EFFECTS + 1)
        strikes = tf.random.stateless_uniform([EFFECTS], seeds[0]) < probability
        pixels = tf.cast(image, tf.float32) / 255.0
        for number, effect in enumerate((blur, exposure, noise)):
            pixels = _maybe(strikes[number], effect, pixels, seeds[number + 1])
        image = tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 1.0) * 255.0), tf.uint8)
        # JPEG's and the conds' outputs lose the static shape; what follows (cutout) needs it.
        return tf.ensure_shape(_maybe(strikes[3], jpeg, image, seeds[EFFECTS]), shape)

    return apply
