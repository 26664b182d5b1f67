"""The training pipeline's command line: one command per step, `quantize` chains them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from edge_cifar.model_files import DEFAULT_MODEL
from train import data
from train.artifacts import RunFiles, claim_run, recorded_recipe

if TYPE_CHECKING:
    from train.folders import FolderData
    from train.models import ModelConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)

QUICK_TRAIN, QUICK_VALIDATION, QUICK_TEST = 4000, 1000, 2000
PHOTO_QUICK_TEST, PHOTO_ROBUSTNESS_IMAGES, PHOTO_QUICK_ROBUSTNESS_IMAGES = 200, 40, 12

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Model config name.")]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="CIFAR-10 folder (binary or python layout); else $CIFAR10_DIR."
    ),
]
QuickOption = Annotated[
    bool, typer.Option("--quick", help="A small subset and a short schedule: minutes, not hours.")
]
DevicesOption = Annotated[
    int,
    typer.Option(
        "--devices",
        min=1,
        help="Split the CPU into this many logical devices and train on all of them with "
        "MirroredStrategy (several GPUs are used that way without asking).",
    ),
]
RunsOption = Annotated[
    Path, typer.Option("--runs-dir", help="Where training runs keep their files.")
]


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


def folder_source(ctx: typer.Context) -> FolderSource | None:
    """The image folder the options before the step named, if any."""
    return ctx.obj if isinstance(ctx.obj, FolderSource) else None


def run_files(model: str, quick: bool, runs_dir: Path, source: FolderSource | None) -> RunFiles:
    name = source.name if source else model
    return RunFiles(runs_dir / (f"{name}-quick" if quick else name), name)


def load_splits(data_dir: Path | None, quick: bool) -> tuple[data.Cifar10, data.Split, data.Split]:
    dataset = data.load(data_dir)
    return (dataset, *quick_subsets(*data.stratified_split(dataset.train), quick))


def quick_subsets(
    train: data.Split, validation: data.Split, quick: bool
) -> tuple[data.Split, data.Split]:
    if not quick:
        return train, validation
    return data.subset(train, QUICK_TRAIN), data.subset(validation, QUICK_VALIDATION)


def load_data(
    data_dir: Path | None, quick: bool, files: RunFiles, source: FolderSource | None
) -> tuple[data.Cifar10 | FolderData, data.Split, data.Split]:
    """CIFAR-10's splits, or the image folder's (its split recorded in the run folder)."""
    if source is None:
        return load_splits(data_dir, quick)
    from train import folders

    dataset = folders.load(
        source.images,
        source.size,
        files.root / "split.json",
        test_root=source.test_images,
        skip_bad=source.skip_bad,
    )
    return (dataset, *quick_subsets(dataset.train, dataset.validation, quick))


def default_firmware_dir(files: RunFiles, quick: bool) -> Path:
    return files.root / "firmware_models" if quick else Path("firmware_models")


def config_for(model: str, quick: bool) -> ModelConfig:
    # Imported here: the model builders load TensorFlow, which a data error should not wait for.
    from train.models import get_config

    try:
        return get_config(model, quick=quick)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0])) from None


def folder_run_config(
    model: str, quick: bool, train: data.Split, source: FolderSource
) -> ModelConfig:
    """`model`'s architecture for the folder's classes and input size, from scratch or from the
    shipped `model`'s conv weights (`--init`)."""
    if source.photo_transfer:
        from train.photo_transfer import photo_config

        return photo_config(source.name, train.class_names, source.size, quick)
    from train.models import folder_config
    from train.transfer import pretrained_source

    pretrained = pretrained_source(source.init, model, train)
    return folder_config(
        config_for(model, quick=False),
        source.name,
        train.class_names,
        source.size,
        pretrained,
        quick=quick,
    )


@dataclass(frozen=True)
class Run:
    """What every step works on: the data, its splits, the model config and the run's files."""

    dataset: data.Cifar10 | FolderData
    train: data.Split
    validation: data.Split
    config: ModelConfig
    files: RunFiles
    quick: bool
    devices: int
    source: FolderSource | None


def prepare(
    ctx: typer.Context,
    model: str,
    data_dir: Path | None,
    quick: bool,
    runs_dir: Path,
    devices: int = 1,
    *,
    float_only_ok: bool = False,
) -> Run:
    # The data first: bad data fails in one line before TensorFlow starts and prints its own logs.
    source = folder_source(ctx)
    files = run_files(model, quick, runs_dir, source)
    dataset, train, validation = load_data(data_dir, quick, files, source)
    config = folder_run_config(model, quick, train, source) if source else config_for(model, quick)
    if config.float_only and not float_only_ok:
        # A float teacher is trained by `fit` and shipped by `quantize`; it has no QAT or INT8.
        print(
            f"error: {model} is a float teacher (no QAT, INT8 file or report); "
            f"`make quantize MODEL={model}` trains and ships it",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    if config.recipe.all_train_images:
        train, validation = data.with_validation_joined(train, validation)
    from train.devices import split_cpu

    split_cpu(devices)
    from train.models import Recipe

    claim_run(files, config.recipe.as_dict(), Recipe().as_dict())
    return Run(dataset, train, validation, config, files, quick, devices, source)


SIZES = (32, 64, 96)
BACKBONES = ("lite0", "cifar")
# Lite0's input sides for photos; the default is the measured best (train/NOTES.md, photo folders).
PHOTO_SIZES, PHOTO_DEFAULT_SIZE = (96, 128, 160, 192, 224), 224


@app.callback()
def pipeline(
    ctx: typer.Context,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Train on this folder (one subfolder of images per class) instead of CIFAR-10; "
            "--model then names the architecture.",
        ),
    ] = None,
    test_images: Annotated[
        Path | None,
        typer.Option(
            "--test-images",
            help="A separate test folder with the same class subfolders (else 15% of --images).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The shipped model's name (default: the folder's name)."),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="Input side in pixels: --backbone lite0 one of "
            f"{PHOTO_SIZES} (default {PHOTO_DEFAULT_SIZE}), cifar one of {SIZES} (default 64).",
        ),
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Leave unreadable image files out (and count them)."),
    ] = False,
    init: Annotated[
        str,
        typer.Option(
            "--init",
            help="Start from the shipped CIFAR-10 model's conv weights ('pretrained'), from "
            "random weights ('scratch'), or 'auto': pretrained for small data sets "
            "(--backbone cifar).",
        ),
    ] = "auto",
    backbone: Annotated[
        str,
        typer.Option(
            "--backbone",
            help="'lite0': EfficientNet-Lite0's ImageNet features under a new head (photos); "
            "'cifar': --model's CIFAR-10 net, microcontroller-sized.",
        ),
    ] = "lite0",
) -> None:
    """CIFAR-10 (or an image folder) → float model → QAT → full-INT8 TFLite → evaluation →
    firmware_models/."""
    if images is None:
        return
    if backbone not in BACKBONES:
        raise typer.BadParameter(f"--backbone must be one of {BACKBONES}, got {backbone!r}")
    sizes, default = (PHOTO_SIZES, PHOTO_DEFAULT_SIZE) if backbone == "lite0" else (SIZES, 64)
    size = default if size is None else size
    if size not in sizes:
        raise typer.BadParameter(f"--size must be one of {sizes} with {backbone}, got {size}")
    if init not in ("auto", "pretrained", "scratch"):
        raise typer.BadParameter(f"--init must be auto, pretrained or scratch, got {init!r}")
    ctx.obj = FolderSource(
        images, test_images, name or images.resolve().name, size, skip_bad, init, backbone
    )


@app.command()
def fit(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_MODEL,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    devices: DevicesOption = 1,
) -> None:
    """Train the float model (resumes from its last checkpoint)."""
    run = prepare(ctx, model, data_dir, quick, runs_dir, devices, float_only_ok=True)
    from train.fit import train_float

    train_float(run.config, run.train, run.validation, run.files)


@app.command()
def qat(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_MODEL,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    devices: DevicesOption = 1,
) -> None:
    """Quantization-aware fine-tuning of the float model (resumes from its last checkpoint)."""
    run = prepare(ctx, model, data_dir, quick, runs_dir, devices)
    from train.qat import train_qat

    train_qat(run.config, run.train, run.validation, run.files)


@app.command()
def convert(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_MODEL,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
) -> None:
    """Write the float32 TFLite model and the full-integer INT8 TFLite model."""
    convert_models(prepare(ctx, model, data_dir, quick, runs_dir))


def convert_models(run: Run) -> None:
    from train.convert import (
        POST_TRAINING_IMAGES,
        to_float_tflite,
        to_int8_tflite,
        write_uint8_model,
    )
    from train.photo_transfer import recorded_threshold
    from train.qat import load_float_model, load_qat_model

    files = run.files
    float_model = load_float_model(run.config, files)
    to_float_tflite(float_model, files.float_model)
    if run.config.recipe.qat_epochs:
        to_int8_tflite(load_qat_model(run.config, files), run.train, files.int8_model)
    else:
        to_int8_tflite(float_model, run.train, files.int8_model, POST_TRAINING_IMAGES)
    write_uint8_model(files.int8_model, files.uint8_model)
    # A photo model's threshold, from its transfer step (else none until evaluation's).
    stamp_models(run, recorded_threshold(files))
    print(f"wrote {files.float_model}, {files.int8_model} and {files.uint8_model}", file=sys.stderr)


def stamp_models(run: Run, uncertain_threshold: float | None = None) -> None:
    """The metadata into the run's three model files: the labels travel in the model (the training
    split's class names, CIFAR-10's or the folder's), and the uncertain threshold once chosen."""
    from train.metadata import ModelDescription, stamp

    about = ModelDescription(
        run.config.name,
        run.config.description,
        run.train.class_names,
        uncertain_threshold=uncertain_threshold,
    )
    for path in (run.files.float_model, run.files.int8_model, run.files.uint8_model):
        stamp(path, about)


ReferenceOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--reference",
        help="A reference .tflite (the MLPerf Tiny models: raw 0..255 pixels) run beside the "
        "float and INT8 models in the robustness benchmark; repeatable.",
    ),
]
OutOfClassOption = Annotated[
    Path | None,
    typer.Option(
        "--out-of-class",
        help="A folder of photos of none of the model's classes (any layout): with the validation "
        "split, it chooses the recommended uncertain threshold the model carries.",
    ),
]
MaxDropOption = Annotated[
    float,
    typer.Option("--max-drop", help="Fail when INT8 accuracy is this many points below float."),
]
FirmwareOption = Annotated[
    Path | None,
    typer.Option(
        "--firmware-dir",
        help="Where shipped models and their cards go (default: firmware_models/; with --quick, "
        "the run's own folder, so a QUICK model never replaces a shipped one).",
    ),
]


def evaluate_and_ship(
    run: Run,
    *,
    max_drop: float,
    firmware_dir: Path | None,
    references: list[Path] | None = None,
    out_of_class: Path | None = None,
) -> None:
    """Evaluate the three models; ship them when the INT8 drop is within `max_drop` points. With
    `out_of_class` photos and a validation split, choose the uncertain threshold first."""
    from train.calibration import calibrate
    from train.evaluate import evaluate, evaluate_robustness
    from train.qat import load_float_model
    from train.ship import build_card, ship

    config, files = run.config, run.files
    photos = run.source is not None and run.source.photo_transfer
    # Lite0 at 224 px scores a few images a second here: a photo run's QUICK test and its
    # robustness benchmark (14 corruptions x 5 severities) take subsets.
    quick_test = PHOTO_QUICK_TEST if photos else QUICK_TEST
    test = data.subset(run.dataset.test, quick_test) if run.quick else run.dataset.test
    float_model = load_float_model(config, files)
    result = evaluate(float_model, files, test)
    if out_of_class is not None and len(run.validation):
        threshold = calibrate(files, run.validation, test, out_of_class)["threshold"]
        stamp_models(run, threshold)
    if result["int8_drop_pt"] > max_drop:
        print(
            f"error: INT8 accuracy is {result['int8_drop_pt']:.2f} pt below float "
            f"(allowed: {max_drop:.2f}); nothing shipped",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    # The robustness benchmark on the same test images (a small subset when QUICK: seconds).
    robustness_images = (
        (PHOTO_QUICK_ROBUSTNESS_IMAGES if run.quick else PHOTO_ROBUSTNESS_IMAGES)
        if photos
        else ROBUSTNESS_QUICK_IMAGES
    )
    robustness_test = data.subset(test, robustness_images) if run.quick or photos else test
    robustness = evaluate_robustness(
        files,
        robustness_test,
        {path.stem: tflite_scorer(path, "0..255") for path in references or []},
        # A backbone's float file runs ~4x slower than its INT8 one: hours on 70 x 10,000 images.
        kinds=("int8",) if config.backbone else ("float", "int8"),
    )
    if firmware_dir is None:
        return
    card = build_card(
        config,
        files,
        result,
        robustness,
        parameters=int(float_model.count_params()),
        data_name=data_name(run),
        data_sha256=run.dataset.sha256,
        train_images=len(run.train),
        validation_images=len(run.validation),
        command=reproduce_command(run),
    )
    if photos:
        from train.photo_transfer import START

        card["start"] = START
    for path in ship(card, files, firmware_dir):
        print(f"shipped {path}", file=sys.stderr)


def data_name(run: Run) -> str:
    return f"image folder {run.source.images}" if run.source else "CIFAR-10"


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
        + (f" DEVICES={run.devices}" if run.devices > 1 else "")
    )


def ship_float_teacher(run: Run, firmware_dir: Path) -> None:
    """A float-only config's last steps: its float file, accuracy and card (train/teacher.py)."""
    from train.teacher import ship_teacher, teacher_card

    card = teacher_card(
        run.config,
        run.files,
        data.subset(run.dataset.test, QUICK_TEST) if run.quick else run.dataset.test,
        command=reproduce_command(run),
        train_images=len(run.train),
        validation_images=len(run.validation),
        data_name=data_name(run),
        data_sha256=run.dataset.sha256,
    )
    for path in ship_teacher(card, run.files, firmware_dir):
        print(f"shipped {path}", file=sys.stderr)


@app.command()
def evaluate(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_MODEL,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    max_drop: MaxDropOption = 1.0,
    reference: ReferenceOption = None,
    out_of_class: OutOfClassOption = None,
) -> None:
    """Float Keras vs float TFLite vs INT8 TFLite on the test set, and the robustness benchmark;
    exit 1 if INT8 drops too much."""
    evaluate_and_ship(
        prepare(ctx, model, data_dir, quick, runs_dir),
        max_drop=max_drop,
        firmware_dir=None,
        references=reference,
        out_of_class=out_of_class,
    )


@app.command()
def quantize(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_MODEL,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    max_drop: MaxDropOption = 1.0,
    firmware_dir: FirmwareOption = None,
    devices: DevicesOption = 1,
    reference: ReferenceOption = None,
    out_of_class: OutOfClassOption = None,
) -> None:
    """The whole pipeline: float training (if no float model yet), QAT, conversion, the accuracy
    check, and shipping to firmware_models/ (a float teacher: float training and shipping)."""
    run = prepare(ctx, model, data_dir, quick, runs_dir, devices, float_only_ok=True)
    firmware_dir = firmware_dir or default_firmware_dir(run.files, quick)
    from train.fit import train_float
    from train.qat import train_qat

    if run.source and run.source.photo_transfer:
        from train.photo_transfer import QUICK_VIEWS, VIEWS, train_photo_model

        views = QUICK_VIEWS if quick else VIEWS
        train_photo_model(
            run.config, run.train, run.validation, run.files, runs_dir / ".cache", views=views
        )
    else:
        train_float(run.config, run.train, run.validation, run.files)
    if run.config.float_only:
        ship_float_teacher(run, firmware_dir)
        return
    if run.config.recipe.qat_epochs:
        train_qat(run.config, run.train, run.validation, run.files)
    convert_models(run)
    evaluate_and_ship(
        run,
        max_drop=max_drop,
        firmware_dir=firmware_dir,
        references=reference,
        out_of_class=out_of_class,
    )
    report(
        ctx,
        model=model,
        data_dir=data_dir,
        quick=quick,
        runs_dir=runs_dir,
        firmware_dir=firmware_dir,
    )


OutDirOption = Annotated[
    Path | None,
    typer.Option(
        "--out-dir",
        help="Write the report into <out-dir>/<run folder name>/ (default: reports/<model>/; "
        "with --quick, the run's own report/ folder, so a QUICK report never replaces a real one).",
    ),
]


@app.command()
def report(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_MODEL,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    out_dir: OutDirOption = None,
    firmware_dir: FirmwareOption = None,
) -> None:
    """Plots and Markdown from a run's saved histories and predictions (runs no model)."""
    from train.report import ReportError, load_run, write_report

    source = folder_source(ctx)
    files = run_files(model, quick, runs_dir, source)
    firmware_dir = firmware_dir or default_firmware_dir(files, quick)
    if out_dir is None:
        out_dir = files.root / "report" if quick else Path("reports") / files.model_name
    else:
        out_dir = out_dir / files.root.name
    try:
        # The artefacts first: a run that never finished fails before the data set is read.
        run = load_run(files, firmware_dir / f"{files.model_name}.card.json")
        dataset, train, validation = load_data(data_dir, quick, files, source)
        # How the run trained, from its folder: the config may have changed since.
        if recorded_recipe(files).get("all_train_images", False):
            train, validation = data.with_validation_joined(train, validation)
        index = write_report(run, dataset.test, train, validation, out_dir)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(f"wrote the report: {index}", file=sys.stderr)


@app.command()
def compare(
    variants: Annotated[
        list[str],
        typer.Argument(
            help="Recipe variants as name:field=value,...  ('base' alone: the config's recipe)."
        ),
    ],
    model: ModelOption = DEFAULT_MODEL,
    data_dir: DataDirOption = None,
    train_images: Annotated[
        int, typer.Option("--train-images", min=500, help="Class-balanced training subset.")
    ] = 15_000,
    validation_images: Annotated[
        int, typer.Option("--validation-images", min=100, help="Class-balanced validation subset.")
    ] = 5_000,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Every variant's epochs (a short run).")
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where each variant's run folder goes.")
    ] = Path("runs/compare"),
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Where <model>.json and <model>.md accumulate.")
    ] = Path("reports/compare"),
) -> None:
    """Train recipe variants of a config on a training subset and score each on the validation
    images, clean and under the robustness benchmark's corruptions (never the test set)."""
    from train.compare import parse_variant, record, run_variant

    try:
        parsed = [parse_variant(text) for text in variants]
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    _, train, validation = load_splits(data_dir, quick=False)
    train = data.subset(train, train_images)
    if validation_images < len(validation):
        validation = data.subset(validation, validation_images)
    config = config_for(model, quick=False)
    for name, changes in parsed:
        if epochs is not None:
            changes = {"epochs": epochs, **changes}
        result = run_variant(
            config, name, changes, train=train, validation=validation, runs_dir=runs_dir
        )
        print(f"wrote {record(out_dir, model, name, result)}", file=sys.stderr)


@app.command()
def sketch(
    models: Annotated[list[str], typer.Argument(help="Config names (train/models.py).")],
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Where <model>_sketch_int8.tflite files go.")
    ] = Path("runs/sketch"),
) -> None:
    """Each config's untrained net as a full-INT8 file, for `edge-cifar bench` beside the
    references: size, multiply-adds and latency before any training."""
    from train.sketch import sketch_int8

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in models:
        path = sketch_int8(config_for(name, quick=False), out_dir / f"{name}_sketch_int8.tflite")
        print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)


@app.command()
def throughput(
    models: Annotated[list[str], typer.Argument(help="Config names (train/models.py).")],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 128,
) -> None:
    """Training images per second of each config on synthetic batches, in float32 and in mixed
    bfloat16, on this CPU (which the line names)."""
    from train.precision import FLOAT32, MIXED_BFLOAT16, cpu_description
    from train.throughput import images_per_second

    configs = [config_for(name, quick=False) for name in models]
    print(f"{cpu_description()}; batch {batch_size}; images/s through fit")
    for config in configs:
        rates = {p: images_per_second(config, p, batch_size) for p in (FLOAT32, MIXED_BFLOAT16)}
        print(
            f"{config.name}: {rates[FLOAT32]:.0f} float32, {rates[MIXED_BFLOAT16]:.0f} mixed "
            f"bfloat16 ({rates[MIXED_BFLOAT16] / rates[FLOAT32]:.2f}x)"
        )


ROBUSTNESS_QUICK_IMAGES = 200


@app.command()
def robustness(
    models: Annotated[
        list[Path], typer.Argument(help="CIFAR-10 .tflite models, side by side in one table.")
    ],
    data_dir: DataDirOption = None,
    images: Annotated[
        int, typer.Option("--images", min=10, help="Test images (a class-balanced subset).")
    ] = 10_000,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help=f"{ROBUSTNESS_QUICK_IMAGES} test images: seconds, for the tests."
        ),
    ] = False,
    corruption: Annotated[
        list[str] | None,
        typer.Option("--corruption", help="Only this corruption (repeatable); default: all."),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Where robustness.json/.md/.png go.")
    ] = Path("reports/robustness"),
    input_range: Annotated[
        str | None,
        typer.Option(
            "--input-range",
            help="What pixels mean to models without metadata (0..1, 0..255, -1..1); the MLPerf "
            "references take 0..255.",
        ),
    ] = None,
) -> None:
    """Accuracy under CIFAR-10-C-style corruptions at five severities, every model through
    edge_cifar as the camera runs it; mCA over all corruptions and over the held-out ones."""
    from train.corruptions import by_name
    from train.robustness import ModelUnderTest, benchmark, markdown_table, write_result

    try:
        chosen = by_name(corruption)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0])) from None
    dataset = data.load(data_dir)
    count = ROBUSTNESS_QUICK_IMAGES if quick else images
    test = data.subset(dataset.test, count) if count < len(dataset.test) else dataset.test
    under_test = [ModelUnderTest(path.stem, tflite_scorer(path, input_range)) for path in models]
    result = benchmark(under_test, test, chosen)
    for path in write_result(result, out_dir):
        print(f"wrote {path}", file=sys.stderr)
    print(markdown_table(result))


def tflite_scorer(
    model_path: Path, input_range: str | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """`train.evaluate.tflite_scorer`; a bad model file is one line and exit 2, before any
    corrupted image is made."""
    from edge_cifar.interpreter import ModelError
    from train.evaluate import tflite_scorer as load_scorer

    try:
        return load_scorer(model_path, input_range)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None


@app.command("stamp")
def stamp_shipped(
    firmware_dir: Annotated[
        Path, typer.Option("--firmware-dir", help="Where the shipped models and cards are.")
    ] = Path("firmware_models"),
) -> None:
    """Write TFLite metadata into every shipped model (weights and graph unchanged), add its
    uint8-interface file, and record the new files' sizes and SHA-256s in its card."""
    from train.ship import ShipError, restamp

    cards = sorted(firmware_dir.glob("*.card.json"))
    if not cards:
        print(f"error: no model cards in {firmware_dir}", file=sys.stderr)
        raise typer.Exit(2)
    for card in cards:
        try:
            written = restamp(card)
        except ShipError as error:
            print(f"error: {error}", file=sys.stderr)
            raise typer.Exit(2) from None
        print(f"stamped {', '.join(str(p) for p in written)}", file=sys.stderr)


def main() -> None:
    try:
        app()
    except data.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
