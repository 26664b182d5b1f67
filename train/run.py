"""What every step of a run works on: the data and its splits, the model config and the run
folder, opened once (`open_run`) in the order that fails fastest: the data first, so bad data is
one line before any training starts; then the config; then the run folder is claimed for the
recipe (train/artifacts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train import data, folders
from train.artifacts import RunFiles, claim_run, recorded_recipe, shipped_float_model
from train.card import DataSource
from train.data import DataError, Split
from train.folders import FolderData
from train.recipe import ModelConfig, Recipe, folder_config, get_config, photo_config

QUICK_TRAIN, QUICK_VALIDATION, QUICK_TEST = 4000, 1000, 2000
ROBUSTNESS_QUICK_IMAGES = 200
FOLDER_SIZES = (32, 64, 96)
BACKBONES = ("lite0", "cifar")
# Lite0's input sides for photos; the default is the measured best (train/NOTES.md, photo folders).
PHOTO_SIZES, PHOTO_DEFAULT_SIZE = (96, 128, 160, 192, 224), 224
# Lite0 at 224 px scores a few photos a second here: a photo run's QUICK test and its robustness
# benchmark take subsets.
PHOTO_QUICK_TEST, PHOTO_ROBUSTNESS_IMAGES, PHOTO_QUICK_ROBUSTNESS_IMAGES = 200, 40, 12
INITS = ("auto", "pretrained", "scratch")
# `--init auto` fine-tunes when the smallest class has fewer training images than this. Measured
# at 100 per class (train/NOTES.md); 1,000 is a judgement: a few hundred per class is where
# MediaPipe Model Maker and Edge Impulse also default to transfer.
AUTO_PRETRAINED_BELOW = 1000


class Int8DropError(RuntimeError):
    """INT8 accuracy fell further below float than allowed: nothing is shipped (exit 1)."""


class FloatOnlyError(DataError):
    """A step a float teacher does not have (QAT, INT8, report): one line, exit 2."""


@dataclass(frozen=True)
class Provenance:
    """Where a model came from: the command that trains and ships it again, the data, and how
    many images trained and validated it (the card quotes them)."""

    command: str
    data: DataSource
    train_images: int
    validation_images: int


@dataclass(frozen=True)
class FolderSource:
    """A user's image folder to train on instead of CIFAR-10 (the options before the step)."""

    images: Path
    test_images: Path | None
    name: str
    size: int
    skip_bad: bool
    init: str
    backbone: str = "lite0"  # ImageNet transfer (train/photo_transfer.py), or "cifar"

    @property
    def photo_transfer(self) -> bool:
        return self.backbone == "lite0"


@dataclass(frozen=True)
class Run:
    """What every step works on: the data, its splits, the model config and the run's files."""

    dataset: data.Cifar10 | FolderData
    train: Split
    validation: Split
    config: ModelConfig
    files: RunFiles
    quick: bool
    devices: int
    source: FolderSource | None
    data_dir: Path | None
    robustness_subset: int | None = None  # --robustness-images: fewer test images than all

    @property
    def test(self) -> Split:
        """The test images the run is evaluated on (a class-balanced subset when QUICK)."""
        test = self.dataset.test
        return (
            data.subset(test, PHOTO_QUICK_TEST if self.photos else QUICK_TEST)
            if self.quick
            else test
        )

    @property
    def photos(self) -> bool:
        """A photo folder on Lite0's ImageNet features (train/photo_transfer.py)."""
        return self.source is not None and self.source.photo_transfer

    @property
    def robustness_images(self) -> int | None:
        """How many test images the robustness benchmark takes; None: all of them."""
        if self.photos:
            return PHOTO_QUICK_ROBUSTNESS_IMAGES if self.quick else PHOTO_ROBUSTNESS_IMAGES
        return ROBUSTNESS_QUICK_IMAGES if self.quick else self.robustness_subset

    def provenance(self) -> Provenance:
        source = self.source
        return Provenance(
            command=reproduce_command(self),
            data=DataSource(
                f"image folder {source.images}" if source else "CIFAR-10", self.dataset.sha256
            ),
            train_images=len(self.train),
            validation_images=len(self.validation),
        )


def run_files(model: str, quick: bool, runs_dir: Path, source: FolderSource | None) -> RunFiles:
    name = source.name if source else model
    return RunFiles(runs_dir / (f"{name}-quick" if quick else name), name)


def default_firmware_dir(files: RunFiles, quick: bool) -> Path:
    """firmware_models/; a QUICK run's own folder, so a QUICK model never replaces a shipped one."""
    return files.root / "firmware_models" if quick else Path("firmware_models")


def load_splits(data_dir: Path | None, quick: bool) -> tuple[data.Cifar10, Split, Split]:
    dataset = data.load(data_dir)
    return (dataset, *quick_subsets(*data.stratified_split(dataset.train), quick))


def quick_subsets(train: Split, validation: Split, quick: bool) -> tuple[Split, Split]:
    if not quick:
        return train, validation
    return data.subset(train, QUICK_TRAIN), data.subset(validation, QUICK_VALIDATION)


def load_data(
    data_dir: Path | None, quick: bool, files: RunFiles, source: FolderSource | None
) -> tuple[data.Cifar10 | FolderData, Split, Split]:
    """CIFAR-10's splits, or the image folder's (its split recorded in the run folder)."""
    if source is None:
        return load_splits(data_dir, quick)
    dataset = folders.load(
        source.images,
        source.size,
        files.root / "split.json",
        test_root=source.test_images,
        skip_bad=source.skip_bad,
    )
    return (dataset, *quick_subsets(dataset.train, dataset.validation, quick))


def joined_as_recorded(files: RunFiles, train: Split, validation: Split) -> tuple[Split, Split]:
    """The splits as the run trained on them, from its folder (the config may have changed)."""
    if recorded_recipe(files).get("all_train_images", False):
        return data.with_validation_joined(train, validation)
    return train, validation


def pretrained_source(init: str, model: str, train: Split) -> str | None:
    """The shipped model whose conv weights a folder model starts from, or None: from scratch."""
    if init == "scratch":
        return None
    available = shipped_float_model(model).is_file()
    if init == "pretrained" and not available:
        raise DataError(
            f"--init pretrained: no shipped {shipped_float_model(model)} to start from "
            "(use --init scratch, or another --model)"
        )
    smallest = int(np.bincount(train.labels, minlength=train.classes).min())
    return (
        model if available and (init == "pretrained" or smallest < AUTO_PRETRAINED_BELOW) else None
    )


def folder_run_config(model: str, quick: bool, train: Split, source: FolderSource) -> ModelConfig:
    """`model`'s architecture for the folder's classes and input size, from scratch or from the
    shipped `model`'s conv weights (`--init`); on Lite0, its frozen features under a new head."""
    if source.photo_transfer:
        return photo_config(source.name, train.class_names, source.size)
    pretrained = pretrained_source(source.init, model, train)
    return folder_config(
        get_config(model, quick=False),
        source.name,
        train.class_names,
        source.size,
        pretrained,
        quick=quick,
    )


def open_run(
    model: str,
    *,
    data_dir: Path | None,
    quick: bool,
    runs_dir: Path,
    source: FolderSource | None = None,
    devices: int = 1,
    float_only_ok: bool = False,
    robustness_subset: int | None = None,
) -> Run:
    """Load the data, choose the config and claim the run folder for the recipe; no TensorFlow.
    Raises DataError (bad data, a changed recipe, a teacher asked for an INT8 step) and
    UnknownModelError."""
    # The data first: bad data fails in one line before anything else.
    files = run_files(model, quick, runs_dir, source)
    dataset, train, validation = load_data(data_dir, quick, files, source)
    config = (
        folder_run_config(model, quick, train, source) if source else get_config(model, quick=quick)
    )
    if config.float_only and not float_only_ok:
        raise FloatOnlyError(
            f"{model} is a float teacher (no QAT, INT8 file or report); "
            f"`make quantize MODEL={model}` trains and ships it"
        )
    if config.recipe.all_train_images:
        train, validation = data.with_validation_joined(train, validation)
    claim_run(files, config.recipe.as_dict(), Recipe().as_dict())
    return Run(
        dataset,
        train,
        validation,
        config,
        files,
        quick,
        devices,
        source,
        data_dir,
        robustness_subset,
    )


def reproduce_command(run: Run) -> str:
    """The one command that trains and ships this run's model again (its card quotes it)."""
    source = run.source
    return (
        (
            f"make quantize DATA={source.images} NAME={source.name} SIZE={source.size}"
            + (f" TEST_DATA={source.test_images}" if source.test_images else "")
            + ("" if source.photo_transfer else " BACKBONE=cifar")
            if source
            else f"make quantize MODEL={run.config.name}"
        )
        + (" QUICK=1" if run.quick else "")
        + (f" ROBUSTNESS_IMAGES={run.robustness_subset}" if run.robustness_subset else "")
        + (f" DEVICES={run.devices}" if run.devices > 1 else "")
    )
