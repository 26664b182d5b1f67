"""airbench's methods (Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024) for the
float teacher: a frozen patch-whitening first layer, identity ("dirac") init of the convs, and
BatchNorm offsets that learn 64 times faster than the weights.

They make a wide net reach its accuracy in about ten epochs, which is what lets one teacher fit
inside both shipped models' training budgets (train/NOTES.md). The teacher is never quantized, so
none of this has to survive QAT: the device models keep Conv -> BN -> ReLU (train/models.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from edge_cifar.preprocess import PIXEL_SCALE
from train.data import Split

# airbench's eps for data normalised to unit variance per pixel; scaled here by the data's own
# variance, since the teacher sees the runtime's 0..1 pixels, not normalised ones.
WHITENING_EPS = 5e-4
# Patches from this many training images estimate the covariance (airbench: 5,000).
WHITENING_IMAGES = 5000
BIAS_LR_SCALE = 64.0


@keras.utils.register_keras_serializable(package="edge_cifar")
class PatchWhitening(keras.layers.Layer):  # type: ignore[misc]
    """A `size` x `size` valid conv whose filters are the eigenvectors of the training images'
    patch covariance, each scaled to unit variance, and their negatives (2 x 3 x size^2 filters):
    its outputs are whitened, decorrelated patches. The filters stay frozen; the bias, which
    starts by centring the patches, trains."""

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = size

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = int(input_shape[-1])
        filters = 2 * channels * self.size**2
        shape = (self.size, self.size, channels, filters)
        self.kernel = self.add_weight(name="kernel", shape=shape, trainable=False)
        self.bias = self.add_weight(name="bias", shape=(filters,), initializer="zeros")
        super().build(input_shape)

    def adapt(self, images: np.ndarray) -> None:
        """Set the filters from `images` (N, H, W, C, model-input scale)."""
        patches = np.lib.stride_tricks.sliding_window_view(
            images.astype(np.float64), (self.size, self.size), axis=(1, 2)
        )  # (N, H', W', C, size, size)
        patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, self.size**2 * images.shape[-1])
        mean = patches.mean(axis=0)
        covariance = np.cov(patches, rowvar=False)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        eps = WHITENING_EPS * float(np.trace(covariance)) / len(covariance)
        scaled = eigenvectors / np.sqrt(eigenvalues + eps)  # columns: one filter each
        filters = np.concatenate([scaled, -scaled], axis=1)
        self.kernel.assign(filters.reshape(self.kernel.shape).astype(np.float32))
        self.bias.assign((-mean @ filters).astype(np.float32))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.conv2d(inputs, self.kernel, strides=1, padding="VALID") + self.bias

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size}


@keras.utils.register_keras_serializable(package="edge_cifar")
class DiracInit(keras.initializers.Initializer):  # type: ignore[misc]
    """A conv kernel whose first min(in, out) filters pass their input channel through unchanged
    (identity init); the other filters are drawn as PyTorch's default conv init draws them."""

    def __call__(self, shape: tuple[int, ...], dtype: Any = None, **kwargs: Any) -> tf.Tensor:
        height, width, channels_in, channels_out = shape
        random = keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")(shape, dtype)
        identity = np.zeros(shape, np.float32)
        passed = min(channels_in, channels_out)
        identity[height // 2, width // 2, np.arange(passed), np.arange(passed)] = 1.0
        keep_random = np.arange(channels_out) >= passed  # per output filter
        return tf.where(keep_random, random, tf.constant(identity, dtype=random.dtype))


class ScaledBiasModel(keras.Model):  # type: ignore[misc]
    """A model whose BatchNorm offsets step BIAS_LR_SCALE times further than its weights: with
    the BatchNorm scales fixed at one, the offsets alone move the activations' thresholds, and a
    larger step lets them keep up within a short schedule."""

    def train_step(self, data: Any) -> dict[str, Any]:
        images, targets = data
        with tf.GradientTape() as tape:
            predictions = self(images, training=True)
            loss = self.compute_loss(images, targets, predictions)
        variables = self.trainable_variables
        gradients = tape.gradient(loss, variables)
        offsets = {
            id(layer.beta)
            for layer in self.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.center
        }
        scaled = [
            gradient * BIAS_LR_SCALE if id(variable) in offsets else gradient
            for gradient, variable in zip(gradients, variables, strict=True)
        ]
        self.optimizer.apply_gradients(zip(scaled, variables, strict=True))
        return self.compute_metrics(images, targets, predictions, None)  # type: ignore[no-any-return]


def whiten_from(model: keras.Model, train: Split) -> keras.Model:
    """`model` with every PatchWhitening layer's filters set from `train`'s first images."""
    images = train.images[:WHITENING_IMAGES].astype(np.float32) * PIXEL_SCALE
    for layer in model.layers:
        if isinstance(layer, PatchWhitening):
            layer.adapt(images)
    return model


def conv_group(x: Any, filters: int, name: str) -> Any:
    """airbench's block: conv, max-pool, BN, GELU, conv, BN, GELU; BatchNorm with a fixed scale
    and fast statistics (momentum 0.6)."""
    for part in ("a", "b"):
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=DiracInit(),
            name=f"{name}{part}_conv",
        )(x)
        if part == "a":
            x = keras.layers.MaxPooling2D(name=f"{name}_pool")(x)
        x = keras.layers.BatchNormalization(
            momentum=0.6, epsilon=1e-12, scale=False, name=f"{name}{part}_bn"
        )(x)
        x = keras.layers.Activation("gelu", name=f"{name}{part}_gelu")(x)
    return x


def airbench_net(
    widths: tuple[int, int, int],
    name: str,
    input_shape: tuple[int, int, int],
    classes: int,
) -> keras.Model:
    """airbench94's net: a 2 x 2 whitening layer and GELU, three conv groups, a global max-pool
    and a bias-free linear classifier whose logits are scaled by 1/9."""
    inputs = keras.Input(input_shape, name="image")
    x = PatchWhitening(2, name="whitening")(inputs)
    x = keras.layers.Activation("gelu", name="whitening_gelu")(x)
    for stage, filters in enumerate(widths, start=1):
        x = conv_group(x, filters, f"stage{stage}")
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    x = keras.layers.Dense(classes, use_bias=False, name="logits_unscaled")(x)
    x = keras.layers.Rescaling(1 / 9, name="logits")(x)
    # float32 scores under mixed precision too: the loss of bfloat16 probabilities is coarse.
    outputs = keras.layers.Softmax(name="probabilities", dtype="float32")(x)
    return ScaledBiasModel(inputs, outputs, name=name)
