"""The Keras nets a model config names (train/recipe.py), and `build`, which makes one.

Every block is Conv → BatchNorm → ReLU: tfmot folds that pattern into one quantized conv, and
rejects BatchNorm placed after an activation. Scaling of the pixels stays outside the model (see
`edge_cifar.preprocess.PIXEL_SCALE`).
"""

from __future__ import annotations

from typing import Any

import tf_keras as keras

from train.airbench import airbench_net
from train.backbones import LITE0_BLOCKS, lite0_classifier
from train.labels import NUM_CLASSES
from train.recipe import (
    INPUT_SHAPE,
    AirbenchNet,
    Lite0Net,
    ModelConfig,
    Net,
    ResidualNet,
    SeedNet,
)


def conv_bn_relu(x: Any, filters: int, name: str, strides: int = 1) -> Any:
    x = keras.layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def classifier_head(x: Any, classes: int) -> Any:
    x = keras.layers.Dense(classes, name="logits")(x)
    # float32 scores under mixed precision too: the loss of bfloat16 probabilities is coarse.
    return keras.layers.Softmax(name="probabilities", dtype="float32")(x)


def seed_cnn(
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
    classes: int = NUM_CLASSES,
    dropouts: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.3),
    name: str = "seed",
) -> keras.Model:
    """The notebook's CNN: three blocks of two 3x3 convs (32, 64, 128), max-pool and dropout each,
    then Dense 128 and the classifier."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for block, filters in enumerate((32, 64, 128), start=1):
        x = conv_bn_relu(x, filters, f"block{block}a")
        x = conv_bn_relu(x, filters, f"block{block}b")
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
        x = keras.layers.Dropout(dropouts[block - 1], name=f"block{block}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropouts[3], name="dense_dropout")(x)
    return keras.Model(inputs, classifier_head(x, classes), name=name)


def squeeze_excite(x: Any, filters: int, reduction: int, name: str) -> Any:
    """Hu et al.'s squeeze-and-excitation: each channel scaled by a gate computed from the means
    of all channels, a few hundred weights per block. 1 x 1 convs on the pooled map, not Dense
    layers, so the gate keeps the map's rank and the multiply broadcasts over the pixels."""
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    gate = keras.layers.Conv2D(
        max(filters // reduction, 1), 1, activation="relu", name=f"{name}_reduce"
    )(gate)
    gate = keras.layers.Conv2D(filters, 1, activation="sigmoid", name=f"{name}_expand")(gate)
    return keras.layers.Multiply(name=f"{name}_scale")([x, gate])


def residual_cnn(
    widths: tuple[int, int, int, int],
    name: str,
    residual: tuple[int, int, int] = (1, 0, 1),
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
    classes: int = NUM_CLASSES,
    pool_last: tuple[bool, bool, bool] = (False, False, False),
    se_reduction: int = 0,
) -> keras.Model:
    """A ResNet-9-style net (Page's DAWNBench layout): a stem conv, then three stages of conv +
    max-pool, each followed by `residual` pairs of convs (Page's: one after the first and last);
    global average pooling.

    Wide late stages on small feature maps buy capacity cheaply in multiply-adds, and few convs
    keep a CPU training step short. A stage in `pool_last` runs its residual pairs before the
    pool, at four times the pixels: four times their multiply-adds for the same weights, which is
    how a file-size budget buys accuracy with spare compute. With `se_reduction` > 0 each
    residual branch ends in a squeeze-and-excitation gate of that channel reduction."""
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_relu(inputs, widths[0], "stem")
    stages = zip(widths[1:], residual, pool_last, strict=True)
    for stage, (filters, pairs, pools_last) in enumerate(stages, start=1):
        x = conv_bn_relu(x, filters, f"stage{stage}")
        if not pools_last:
            x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
        for pair in range(pairs):
            # The first pair keeps its one-pair names, so shipped weights still load by name.
            add = f"stage{stage}_add" + (f"{pair + 1}" if pair else "")
            branch = conv_bn_relu(x, filters, f"stage{stage}_res{2 * pair + 1}")
            branch = conv_bn_relu(branch, filters, f"stage{stage}_res{2 * pair + 2}")
            if se_reduction:
                branch = squeeze_excite(branch, filters, se_reduction, f"{add}_se")
            x = keras.layers.Add(name=add)([x, branch])
        if pools_last:
            x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, classifier_head(x, classes), name=name)


def build_net(net: Net, input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """The Keras model `net` describes, for this input shape and number of classes."""
    if isinstance(net, SeedNet):
        return seed_cnn(input_shape, classes, net.dropouts, net.name)
    if isinstance(net, ResidualNet):
        return residual_cnn(
            net.widths,
            net.name,
            net.residual,
            input_shape,
            classes,
            pool_last=net.pool_last,
            se_reduction=net.se_reduction,
        )
    if isinstance(net, AirbenchNet):
        return airbench_net(net.widths, net.name, input_shape, classes)
    if isinstance(net, Lite0Net):
        return lite0_classifier(
            classes,
            image_size=input_shape[0],
            backbone_size=net.backbone_size,
            frozen_blocks=LITE0_BLOCKS if net.frozen_blocks is None else net.frozen_blocks,
            name=net.name,
        )
    raise TypeError(f"no builder for {type(net).__name__}")


def build(config: ModelConfig) -> keras.Model:
    """`config`'s untrained Keras model."""
    return build_net(config.net, config.input_shape, config.classes)
