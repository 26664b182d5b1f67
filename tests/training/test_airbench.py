"""airbench's methods for the teacher: the whitening layer whitens, identity init passes its input
through, and BatchNorm offsets step 64 times further than the same net's plain training would."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from train.airbench import (
    BIAS_LR_SCALE,
    DiracInit,
    PatchWhitening,
    ScaledBiasModel,
    whiten_from,
)
from train.data import Split
from train.models import build
from train.recipe import CONFIGS


def correlated_images(count: int, seed: int = 0) -> np.ndarray:
    """Smooth colour images: neighbouring pixels and the three channels are strongly correlated,
    as in photographs, so unwhitened patches are far from unit covariance."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, (count, 8, 8, 1))
    smooth = np.repeat(np.repeat(base, 2, axis=1), 2, axis=2)
    tint = rng.uniform(0.5, 1.0, (count, 1, 1, 3))
    return (smooth * tint + 0.05 * rng.normal(size=(count, 16, 16, 3))).astype(np.float32)


def test_the_whitening_layer_outputs_decorrelated_unit_variance_patches():
    images = correlated_images(400)
    layer = PatchWhitening(2)
    layer.build(tf.TensorShape((None, 16, 16, 3)))
    layer.adapt(images)
    outputs = layer(images).numpy().reshape(-1, 24)
    half = outputs[:, :12]  # the other 12 filters are their negatives
    np.testing.assert_allclose(outputs[:, 12:], -half, atol=1e-4)
    np.testing.assert_allclose(half.mean(axis=0), 0, atol=1e-3)
    covariance = np.cov(half, rowvar=False)
    np.testing.assert_allclose(covariance, np.eye(12), atol=0.02)
    assert [w.name for w in layer.trainable_weights] == [layer.bias.name]  # the filters stay fixed


def test_identity_init_passes_each_input_channel_through():
    images = tf.random.uniform((2, 8, 8, 5))

    def conv(filters: int) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_initializer=DiracInit()
        )

    np.testing.assert_allclose(conv(5)(images).numpy(), images.numpy(), atol=1e-6)
    out = conv(9)(images).numpy()
    np.testing.assert_allclose(out[..., :5], images.numpy(), atol=1e-6)
    assert np.abs(out[..., 5:]).max() > 0.01  # the extra filters are drawn, not zero


def one_step_changes(model_class: type[keras.Model]) -> tuple[np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="a_conv")(inputs)
    x = keras.layers.BatchNormalization(scale=False, name="norm")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = model_class(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="categorical_crossentropy")
    conv, beta = model.get_layer("a_conv").kernel, model.get_layer("norm").beta
    before = conv.numpy(), beta.numpy()
    images = np.random.default_rng(1).uniform(size=(8, 4, 4, 3)).astype(np.float32)
    targets = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    model.train_on_batch(images, targets)
    return conv.numpy() - before[0], beta.numpy() - before[1]


def test_batchnorm_offsets_step_64_times_further_and_weights_as_usual():
    plain_conv, plain_beta = one_step_changes(keras.Model)
    scaled_conv, scaled_beta = one_step_changes(ScaledBiasModel)
    assert np.abs(plain_beta).max() > 0
    np.testing.assert_allclose(scaled_beta, BIAS_LR_SCALE * plain_beta, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(scaled_conv, plain_conv, rtol=1e-4, atol=1e-9)


def test_the_teacher_is_airbench94s_net_and_trains_from_whitened_patches():
    teacher = CONFIGS["teacher"]
    model = build(teacher)
    assert isinstance(model, ScaledBiasModel)
    assert 1.9e6 < model.count_params() < 2.1e6
    images = (correlated_images(64, seed=2) * 255).clip(0, 255).astype(np.uint8)
    images = np.tile(images, (1, 2, 2, 1))  # 32 x 32
    split = Split(images, (np.arange(64) % 10).astype(np.uint8))
    whitening = whiten_from(model, split).get_layer("whitening")
    assert np.abs(whitening.kernel.numpy()).max() > 1  # set from the data, not the zero init
    assert model(images[:2].astype(np.float32) / 255).shape == (2, 10)


def test_a_device_model_is_left_as_built():
    model = build(CONFIGS["tiny"])
    split = Split(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.uint8))
    weights = [w.copy() for w in model.get_weights()]
    whiten_from(model, split)
    for before, after in zip(weights, model.get_weights(), strict=True):
        assert np.array_equal(before, after)
