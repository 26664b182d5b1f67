"""Model configs by name: which net, at what input size, for which device, trained how.

Pure data, no Keras: the command line reads a config (and refuses an unknown name) before
TensorFlow loads, and a config is compared, recorded and printed like any value. `train/models.py`
builds the Keras model a config's `net` describes; `train/NOTES.md` has the measurement behind
each number here.

A new model config is one entry in `CONFIGS`: a net (one of the `*Net` descriptions below, or a
new one with its builder in train/models.py), a `Recipe`, a description and a size budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from train.labels import NUM_CLASSES

INPUT_SIDE = 32  # CIFAR-10's images: 32 x 32 pixels
INPUT_SHAPE = (INPUT_SIDE, INPUT_SIDE, 3)
# What `Recipe.camera_augment` applies, in order (train/camera_augment.py); cards name them.
CAMERA_EFFECTS = ("blur", "exposure and contrast", "sensor noise", "JPEG")


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


# --- nets: what train/models.py builds; `name` is the Keras model's name ---------------------


@dataclass(frozen=True)
class SeedNet:
    """The notebook's CNN: three blocks of two 3x3 convs (32, 64, 128), max-pool and dropout
    each, then Dense 128 and the classifier."""

    name: str
    # Lighter than the notebook's 0.2/0.3/0.4/0.5: with crop + flip, label smoothing and weight
    # decay a short schedule underfits rather than overfits.
    dropouts: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.3)


@dataclass(frozen=True)
class ResidualNet:
    """A ResNet-9-style net (Page's DAWNBench layout): a stem conv, then three stages of conv +
    max-pool, each followed by `residual` pairs of convs; global average pooling. A stage in
    `pool_last` runs its residual pairs before its pool; `se_reduction` > 0 ends each residual
    branch in a squeeze-and-excitation gate of that channel reduction."""

    name: str
    widths: tuple[int, int, int, int]
    residual: tuple[int, int, int] = (1, 0, 1)
    pool_last: tuple[bool, bool, bool] = (False, False, False)
    se_reduction: int = 0


@dataclass(frozen=True)
class AirbenchNet:
    """airbench94's net (train/airbench.py): whitening layer, three conv groups, max-pool."""

    name: str
    widths: tuple[int, int, int]


@dataclass(frozen=True)
class Lite0Net:
    """EfficientNet-Lite0 with its ImageNet weights and a new head (train/backbones.py). The
    input is enlarged in the graph to `backbone_size`; the stem and the first `frozen_blocks`
    blocks keep their ImageNet weights."""

    name: str
    backbone_size: int
    frozen_blocks: int | None = 0  # None: the whole backbone (a head on its features)


Net = SeedNet | ResidualNet | AirbenchNet | Lite0Net


@dataclass(frozen=True)
class ModelConfig:
    name: str
    net: Net
    recipe: Recipe = field(default_factory=Recipe)
    description: str = ""
    int8_budget_kib: int | None = None  # the largest INT8 file the config's target device takes
    input_size: int = INPUT_SIDE  # square inputs: the side in pixels
    classes: int = NUM_CLASSES
    # A distillation teacher: never quantized or put on a device, so it ships its float file and
    # card only (train/teacher.py).
    float_only: bool = False

    @property
    def backbone(self) -> bool:
        """An ImageNet backbone's model: post-training INT8, too large for a microcontroller."""
        return isinstance(self.net, Lite0Net)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_size, self.input_size, 3)


class UnknownModelError(KeyError):
    """No config of that name; the message lists the names there are."""


# `default`'s net: widths 16/32/64/96, one residual pair in stages 1 and 3 and two in stage 2,
# before its pool, where the 500 KiB file budget buys accuracy with spare compute; a 16-channel
# stem, as oneDNN's bfloat16 kernels want.
def default_net(name: str, se_reduction: int = 0) -> ResidualNet:
    return ResidualNet(name, (16, 32, 64, 96), (1, 2, 1), (False, True, False), se_reduction)


# Decoupled weight decay 5e-3 is the coupled 5e-4 CIFAR ResNet recipes use; 83 + 2 epochs on all
# 50,000 images fill the 1.5e15-FLOP training budget (train/NOTES.md).
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
        net=SeedNet("seed"),
        recipe=Recipe(epochs=18, qat_epochs=1),
        description="The notebook's 6-conv CNN: 32/64/128 filters, BN, max-pool, dropout, dense.",
    ),
    "default": ModelConfig(
        name="default",
        # Every choice was made on validation runs, so the final run learns from all 50,000
        # images; camera augmentation at 0.05 keeps most of 0.1's robustness at no clean cost.
        net=default_net("default"),
        recipe=DEFAULT_RECIPE,
        description="ResNet-9-style residual CNN, widths 16/32/64/96, two residual pairs in "
        "stage 2 before its pool (58.5 M multiply-adds), trained with camera augmentation; "
        "for Pi-class CPUs.",
        int8_budget_kib=500,
    ),
    "default-se": ModelConfig(
        name="default-se",
        # A candidate: `default` with a squeeze-and-excitation gate on each residual branch,
        # not yet measured on validation against it.
        net=default_net("default-se", se_reduction=4),
        recipe=DEFAULT_RECIPE,
        description="`default` with a squeeze-and-excitation gate on each residual branch.",
        int8_budget_kib=500,
    ),
    "tiny": ModelConfig(
        name="tiny",
        # No residual pair in the last stage: at 80 channels it alone would be 115k parameters.
        # 16-channel early stages, not 10/20: XNNPACK's int8 kernels work on channel blocks.
        net=ResidualNet("tiny", (16, 16, 40, 80), (1, 1, 0)),
        # The epochs the 0.8e15-FLOP budget allows on all 50,000 images; two QAT epochs keep
        # INT8 within a tenth of a point of float after a long float phase.
        recipe=Recipe(epochs=290, qat_epochs=2, camera_augment=0.05, all_train_images=True),
        description="ResNet-9-style residual CNN, widths 16/16/40/80, for microcontrollers; "
        "trained with camera augmentation.",
        int8_budget_kib=96,
    ),
    "pi": ModelConfig(
        name="pi",
        # ImageNet features for real frames: Lite0 sees the 32 x 32 input enlarged to 160 x 160
        # in the graph. The stem and stages 1-2 stay frozen (the costliest backward pass, at
        # 80 x 80); float32, as depthwise convs gain nothing from bfloat16. Post-training INT8.
        net=Lite0Net("pi", backbone_size=160, frozen_blocks=3),
        recipe=Recipe(
            epochs=12,
            batch_size=64,
            peak_lr=0.02,
            warmup_epochs=1,
            camera_augment=0.05,
            qat_epochs=0,
            precision="float32",
        ),
        description="EfficientNet-Lite0 (ImageNet weights) fine-tuned on CIFAR-10 at 160 x 160 "
        "(the 32 x 32 input enlarged in the graph): for Raspberry Pi 4/5 cameras.",
    ),
    "teacher": ModelConfig(
        name="teacher",
        net=AirbenchNet("teacher", (64, 256, 256)),
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


# What `python -m train` and `make quantize` build without `--model`: the microcontroller model,
# shipped with its C files. The runtime's packaged default is `pi` (edge_cifar/model_files.py), a
# run of hours on two cores: `--model pi`.
DEFAULT_CONFIG = "default"


def get_config(name: str, *, quick: bool = False) -> ModelConfig:
    """The named config; `quick` keeps the architecture and shortens the schedule to minutes."""
    if name not in CONFIGS:
        raise UnknownModelError(f"unknown model {name!r}; choose one of {', '.join(CONFIGS)}")
    config = CONFIGS[name]
    return replace(config, recipe=quick_schedule(config.recipe)) if quick else config


def quick_schedule(recipe: Recipe) -> Recipe:
    # Small batches give the few thousand QUICK images enough steps for BatchNorm's statistics.
    qat_epochs = min(recipe.qat_epochs, 1)  # a post-training-quantized recipe stays so
    return replace(recipe, epochs=3, warmup_epochs=1, qat_epochs=qat_epochs, batch_size=64)


# An image folder's recipe, from the transfer measurement in train/NOTES.md (500 training images,
# five classes): small batches give a few hundred images enough steps per epoch.
FOLDER_SCHEDULE = {"epochs": 40, "batch_size": 32, "warmup_epochs": 2}
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
        epochs=FOLDER_SCHEDULE["epochs"],
        batch_size=FOLDER_SCHEDULE["batch_size"],
        warmup_epochs=FOLDER_SCHEDULE["warmup_epochs"],
        # Cutout and the crop padding cover the same share of a larger input as of a 32 x 32 one.
        cutout=config.recipe.cutout * size // INPUT_SIDE,
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


# An image folder on Lite0 (train/photo_transfer.py): the backbone frozen, its pooled features
# cached, a new softmax head fitted on them (Adam, early stopping on the validation loss: `epochs`
# is the most it may run), post-training INT8 (train/NOTES.md, photo folders).
PHOTO_HEAD_RECIPE = Recipe(
    epochs=300,
    batch_size=32,
    peak_lr=1e-3,
    warmup_epochs=0,
    label_smoothing=0.1,
    camera_augment=0.1,  # in the augmented views whose features are cached
    qat_epochs=0,
    precision="float32",
)


def photo_config(name: str, class_names: tuple[str, ...], size: int) -> ModelConfig:
    """The config of a Lite0 photo model: frozen ImageNet backbone at `size` px, new head."""
    return ModelConfig(
        name=name,
        net=Lite0Net(name, backbone_size=size, frozen_blocks=None),
        recipe=PHOTO_HEAD_RECIPE,
        description=f"EfficientNet-Lite0 (ImageNet weights, frozen) with a new head at {size} x "
        f"{size} px for {len(class_names)} classes ({', '.join(class_names)}).",
        input_size=size,
        classes=len(class_names),
    )
