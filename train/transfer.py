"""Transfer: start an image-folder model from a shipped CIFAR-10 float model's conv weights.

Only the .tflite files ship, so the weights come from `firmware_models/<model>_float.tflite`. The
converter folded each BatchNorm into its conv (kernel W' and bias b'), so the file holds the
function z -> W' * z + b' and not the BatchNorm statistics. The Keras conv gets W'; its BatchNorm
gets the statistics of W' * z over the user's training images (mean m, variance v) and
gamma = sqrt(v + eps), beta = b' + m, which computes exactly W' * z + b' at inference and nearly so
on a training batch: the imported net starts as the shipped one.

The head is new. Fitting it alone on the frozen features first (linear probing, then
fine-tuning: Kumar et al., 2022) was measured and did not help at this budget (train/NOTES.md):
it stays an arm of the measurement (train/experiments/transfer.py), not a step of the pipeline.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tf_keras as keras

from edge_cifar.interpreter import ModelError, load_backend
from edge_cifar.preprocess import PIXEL_SCALE
from train.artifacts import shipped_float_model
from train.data import Split

STATISTICS_IMAGES = 512  # training images whose conv outputs set the imported BatchNorms


def float_tflite_convs(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(kernel HWIO, bias) of every conv of a float TFLite model, by Keras layer name: a conv
    followed by a BatchNorm holds it folded in, a conv with a bias of its own (a
    squeeze-and-excitation gate) holds its own."""
    try:
        interpreter = load_backend().interpreter_class(model_path=str(path))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ModelError(f"{path}: not a loadable TFLite model ({error})") from None
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    convs = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] != "CONV_2D" or len(op["inputs"]) < 3 or op["inputs"][2] < 0:
            continue
        _, kernel, bias = op["inputs"][:3]
        # The converter keeps the Keras path in a kernel's name: "<model>/<layer>/Conv2D".
        parts = names[kernel].split("/")
        if len(parts) != 3 or parts[2] != "Conv2D":
            continue
        # TFLite stores conv kernels OHWI; Keras wants HWIO.
        weights = np.transpose(interpreter.get_tensor(kernel), (1, 2, 3, 0))
        convs[parts[1]] = (weights, np.asarray(interpreter.get_tensor(bias)))
    return convs


def import_convs(model: keras.Model, path: Path, images: np.ndarray) -> int:
    """Load the conv weights of the float TFLite `path` into `model` (see the module
    docstring); returns how many convs were imported. `images`: uint8 RGB training images."""
    convs = float_tflite_convs(path)
    pairs, imported = [], 0
    for layer in model.layers:
        if not (isinstance(layer, keras.layers.Conv2D) and layer.name in convs):
            continue
        kernel, bias = convs[layer.name]
        if tuple(layer.kernel.shape) != kernel.shape:
            raise ModelError(
                f"{path}: {layer.name} has a {kernel.shape} kernel, "
                f"the model a {tuple(layer.kernel.shape)} one"
            )
        layer.kernel.assign(kernel)
        imported += 1
        if layer.use_bias:
            layer.bias.assign(bias)
            continue
        norm = model.get_layer(layer.name.removesuffix("_conv") + "_bn")
        # First the folded function itself (mean 0, variance 1, scale 1, offset b').
        ones = np.ones_like(bias)
        norm.set_weights([np.sqrt(ones + norm.epsilon), bias, 0 * ones, ones])
        pairs.append((layer, norm, bias))
    if not imported:
        raise ModelError(f"{path}: no conv weights named like {model.name}'s layers")
    # The net now computes exactly what the file does: one pass gives every conv's output
    # statistics, which the re-parametrised BatchNorms below leave unchanged at inference.
    probe = keras.Model(model.input, [conv.output for conv, _, _ in pairs])
    sample = images[:STATISTICS_IMAGES].astype(np.float32) * PIXEL_SCALE
    outputs = probe.predict(sample, batch_size=64, verbose=0)
    for (_, norm, bias), raw in zip(pairs, outputs, strict=True):
        output = np.asarray(raw, dtype=np.float32)  # bfloat16 under mixed precision
        mean = output.mean(axis=(0, 1, 2))
        variance = output.var(axis=(0, 1, 2))
        norm.set_weights([np.sqrt(variance + norm.epsilon), bias + mean, mean, variance])
    return imported


def pretrained_model(
    build: Callable[[], keras.Model], model_name: str, train: Split
) -> keras.Model:
    """`build()`, its convs started from the shipped `<model_name>_float.tflite`, a new head."""
    model = build()
    path = shipped_float_model(model_name)
    count = import_convs(model, path, train.images)
    print(f"transfer: {count} conv layers from {path}, a new head", file=sys.stderr)
    return model
