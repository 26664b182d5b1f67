"""Model configs by name: an architecture (a function that builds it) and the recipe to train it.

Every block is Conv → BatchNorm → ReLU: tfmot folds that pattern into one quantized conv, and
rejects BatchNorm placed after an activation. Scaling of the pixels stays outside the model (see
`edge_cifar.preprocess.PIXEL_SCALE`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import tf_keras as keras

from train.airbench import airbench_net
from train.backbones import lite0_classifier
from train.labels import NUM_CLASSES

INPUT_SHAPE = (32, 32, 3)


@dataclass(frozen=True)
class Recipe:
    """How a config is trained; each default is the value the notes file justifies."""

    epochs: int = 40
    batch_size: int = 128
    peak_lr: float = 0.1  # SGD + Nesterov momentum, linear warm-up then cosine decay to zero
    warmup_epochs: int = 2
    # Decoupled (w -= lr * decay * w each step), not applied to BatchNorm or biases. Momentum 0.9
    # amplifies a coupled decay tenfold, so 5e-4 here is the coupled 5e-5.
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    cutout: int = 0  # side in pixels of the square cutout paints over each training image; 0: none
    camera_augment: float = 0.0  # probability of each camera effect (train/camera_augment.py)
    # The final run of a recipe chosen on validation runs: the validation images join the
    # training images (CIFAR-10: all 50,000), and the run reports no validation accuracy.
    all_train_images: bool = False
    qat_epochs: int = 2
    qat_lr: float = (
        2e-3  # QAT fine-tunes a trained model: a small, decaying step keeps its accuracy
    )
    # Knowledge distillation: the shipped float model (`firmware_models/<teacher>_float.tflite`)
    # whose class scores make up `distillation_weight` of every training target (train/distill.py).
    teacher: str | None = None
    distillation_weight: float = 0.5
    # Transfer: the shipped float model (`firmware_models/<pretrained>_float.tflite`) whose conv
    # weights the float model starts from, under a new head (train/transfer.py).
    pretrained: str | None = None
    seed: int = 0
    # The float phase's Keras precision policy; None picks it by the CPU (train/precision.py).
    precision: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# An architecture builds a model for an input shape (H, W, 3) and a number of classes.
Architecture = Callable[[tuple[int, int, int], int], keras.Model]


@dataclass(frozen=True)
class ModelConfig:
    name: str
    architecture: Architecture
    recipe: Recipe = field(default_factory=Recipe)
    description: str = ""
    int8_budget_kib: int | None = None  # the largest INT8 file the config's target device takes
    input_size: int = INPUT_SHAPE[0]  # square inputs: the side in pixels
    classes: int = NUM_CLASSES
    # A distillation teacher: never quantized or put on a device, so it ships its float file and
    # card only (train/teacher.py).
    float_only: bool = False
    # An ImageNet backbone (train/backbones.py) the architecture starts from; None: from scratch.
    backbone: str | None = None

    def build(self) -> keras.Model:
        return self.architecture((self.input_size, self.input_size, 3), self.classes)


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


# Lighter than the notebook's 0.2/0.3/0.4/0.5: with crop + flip, label smoothing and weight decay a
# short (18-epoch) schedule underfits rather than overfits.
def seed_cnn(
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
    classes: int = NUM_CLASSES,
    dropouts: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.3),
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
    return keras.Model(inputs, classifier_head(x, classes), name="seed")


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


def default_layout(name: str, se_reduction: int = 0) -> Architecture:
    """`default`'s net: widths 16/32/64/96, one residual pair in stages 1 and 3 and two in stage
    2, before its pool (58.5 M multiply-adds, 414k weights)."""

    def architecture(shape: tuple[int, int, int], classes: int) -> keras.Model:
        return residual_cnn(
            (16, 32, 64, 96),
            name,
            (1, 2, 1),
            shape,
            classes,
            pool_last=(False, True, False),
            se_reduction=se_reduction,
        )

    return architecture


# Weight decay 5e-3, not the Recipe's 5e-4: decoupled decay of 5e-4 at momentum 0.9 is the coupled
# 5e-5, a tenth of what CIFAR ResNet recipes use; 5e-3 (their coupled 5e-4) gained 0.84 pt on
# validation. 83 + 2 epochs on all 50,000 images fill the 1.5e15-FLOP budget (train/NOTES.md,
# session 21).
DEFAULT_RECIPE = Recipe(
    epochs=83,
    qat_epochs=2,
    weight_decay=5e-3,
    cutout=12,
    camera_augment=0.05,
    all_train_images=True,
)

CONFIGS: dict[str, ModelConfig] = {
    "seed": ModelConfig(
        name="seed",
        architecture=seed_cnn,
        recipe=Recipe(epochs=18, qat_epochs=1),
        description="The notebook's 6-conv CNN: 32/64/128 filters, BN, max-pool, dropout, dense.",
    ),
    "default": ModelConfig(
        name="default",
        # The 500 KiB file binds, compute does not: the weights sit in two residual pairs of
        # stage 2 before its pool, at 16 x 16 pixels, rather than in a 128-channel pair on 8 x 8
        # (+0.3 pt clean, +0.9 pt mCA on validation, a faster invoke); a 16-channel stem, as
        # oneDNN's bfloat16 kernels want (a 24-channel one trained at half the speed). Camera
        # augmentation 0.05 costs no clean accuracy and keeps most of 0.1's robustness; every
        # choice was made on validation runs, so the final run learns from all 50,000 images
        # (train/NOTES.md, sessions 11, 14, 19 and 21).
        architecture=default_layout("default"),
        recipe=DEFAULT_RECIPE,
        description="ResNet-9-style residual CNN, widths 16/32/64/96, two residual pairs in "
        "stage 2 before its pool (58.5 M multiply-adds), trained with camera augmentation; "
        "for Pi-class CPUs.",
        int8_budget_kib=500,
    ),
    "default-se": ModelConfig(
        name="default-se",
        # A candidate: `default` with a squeeze-and-excitation gate on each residual branch
        # (9.5k more weights, 453 KiB as INT8), not yet measured on validation against it.
        architecture=default_layout("default-se", se_reduction=4),
        recipe=DEFAULT_RECIPE,
        description="`default` with a squeeze-and-excitation gate on each residual branch.",
        int8_budget_kib=500,
    ),
    "tiny": ModelConfig(
        name="tiny",
        # No residual pair in the last stage: at 80 channels it alone would be 115k parameters.
        # 16-channel early stages, not 10/20: XNNPACK's int8 kernels work on channel blocks, so
        # 16/16/40/80 runs faster than 10/20/40/80 (train/NOTES.md, `make sketch`).
        architecture=lambda shape, classes: residual_cnn(
            (16, 16, 40, 80), "tiny", (1, 1, 0), shape, classes
        ),
        # 290 epochs, not 150: the 150-epoch run ended 0.26 pt short of 88%, and 290 + 2 epochs
        # on all 50,000 images is what the 0.8e15-FLOP budget allows. Two QAT epochs, not one:
        # after 290 float epochs one left INT8 0.49 pt under float, two 0.11 (train/NOTES.md,
        # sessions 18 and 20).
        recipe=Recipe(epochs=290, qat_epochs=2, camera_augment=0.05, all_train_images=True),
        description="ResNet-9-style residual CNN, widths 16/16/40/80, for microcontrollers; "
        "trained with camera augmentation.",
        int8_budget_kib=96,
    ),
    "pi": ModelConfig(
        name="pi",
        # ImageNet features for real frames: EfficientNet-Lite0 fine-tuned on CIFAR-10, which it
        # enlarges to 160 x 160 inside the graph. The stem and stages 1-3 stay frozen (twice the
        # training speed); float32, since its depthwise convs gain nothing from bfloat16.
        architecture=lambda shape, classes: lite0_classifier(
            classes, image_size=shape[0], backbone_size=160, frozen_blocks=5
        ),
        recipe=Recipe(
            epochs=8,
            batch_size=64,
            peak_lr=0.02,
            warmup_epochs=1,
            camera_augment=0.05,
            qat_epochs=0,
            precision="float32",
        ),
        description="EfficientNet-Lite0 (ImageNet weights) fine-tuned on CIFAR-10 at 160 x 160 "
        "(the 32 x 32 input enlarged in the graph): for Raspberry Pi 4/5 cameras.",
        backbone="efficientnet-lite0",
    ),
    "teacher": ModelConfig(
        name="teacher",
        architecture=lambda shape, classes: airbench_net((64, 256, 256), "teacher", shape, classes),
        # airbench94's schedule in this module's terms: batch 1024, label smoothing 0.2, about ten
        # epochs. Its step (lr 11.5 per 1024 examples at Nesterov momentum 0.85) is peak lr 1.0 at
        # momentum 0.9, the same step per unit gradient; its coupled decay, which momentum
        # amplifies by 1 / (1 - 0.9), is decoupled decay 0.0133 at that rate.
        recipe=Recipe(
            epochs=10, batch_size=1024, peak_lr=1.0, weight_decay=0.0133, label_smoothing=0.2
        ),
        description="airbench94's net and methods (patch-whitening layer, identity init, 64x "
        "BatchNorm offset steps; 2.0 M parameters, 118 M multiply-adds): a float teacher for "
        "`default` and `tiny`, never a device model.",
        float_only=True,
    ),
}


def get_config(name: str, *, quick: bool = False) -> ModelConfig:
    """The named config; `quick` keeps the architecture and shortens the schedule to minutes."""
    if name not in CONFIGS:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(CONFIGS)}")
    config = CONFIGS[name]
    return replace(config, recipe=quick_schedule(config.recipe)) if quick else config


def quick_schedule(recipe: Recipe) -> Recipe:
    # Small batches give the few thousand QUICK images enough steps for BatchNorm's statistics.
    qat_epochs = min(recipe.qat_epochs, 1)  # a post-training-quantized recipe stays so
    return replace(recipe, epochs=3, warmup_epochs=1, qat_epochs=qat_epochs, batch_size=64)


# An image folder's recipe, from the transfer measurement in train/NOTES.md (500 training images,
# five classes): small batches give a few hundred images enough steps per epoch.
FOLDER_SCHEDULE: dict[str, Any] = {"epochs": 40, "batch_size": 32, "warmup_epochs": 2}
FINE_TUNE_PEAK_LR = 0.02  # a fifth of the from-scratch peak (train/NOTES.md, transfer)


def folder_config(
    config: ModelConfig,
    name: str,
    class_names: tuple[str, ...],
    size: int,
    pretrained: str | None,
    *,
    quick: bool = False,
) -> ModelConfig:
    """`config`'s architecture for an image folder: its classes, an input `size` pixels square,
    and, with `pretrained`, the conv weights of that shipped model as the starting point."""
    recipe = replace(
        config.recipe,
        **FOLDER_SCHEDULE,
        # Cutout and the crop padding cover the same share of a larger input as of a 32 x 32 one.
        cutout=config.recipe.cutout * size // INPUT_SHAPE[0],
        teacher=None,
        # A folder's recipe was not chosen on that folder's validation images: keep them out.
        all_train_images=False,
        pretrained=pretrained,
        peak_lr=FINE_TUNE_PEAK_LR if pretrained else config.recipe.peak_lr,
    )
    if quick:  # the QUICK epochs, at the folder's small batch
        recipe = replace(quick_schedule(recipe), batch_size=recipe.batch_size)
    start = (
        f"fine-tuned from `{pretrained}`'s conv weights" if pretrained else "trained from scratch"
    )
    return replace(
        config,
        name=name,
        recipe=recipe,
        classes=len(class_names),
        input_size=size,
        description=f"`{config.name}` architecture at {size} x {size} px for "
        f"{len(class_names)} classes ({', '.join(class_names)}), {start}.",
        int8_budget_kib=None,
    )
