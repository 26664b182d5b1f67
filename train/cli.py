"""The training pipeline's command line: one command per step, `quantize` chains them."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge_cifar.model_files import DEFAULT_MODEL
from train import data
from train.artifacts import RunFiles, claim_run

if TYPE_CHECKING:
    from train.folders import FolderData
    from train.models import ModelConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)

QUICK_TRAIN, QUICK_VALIDATION, QUICK_TEST = 4000, 1000, 2000

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


def folder_source(ctx: typer.Context) -> FolderSource | None:
    """The image folder the options before the step named, if any."""
    return ctx.obj if isinstance(ctx.obj, FolderSource) else None


def run_files(model: str, quick: bool, runs_dir: Path, source: FolderSource | None) -> RunFiles:
    name = source.name if source else model
    return RunFiles(runs_dir / (f"{name}-quick" if quick else name), name)


def load_splits(
    data_dir: Path | None, quick: bool, files: RunFiles, source: FolderSource | None
) -> tuple[data.Cifar10 | FolderData, data.Split, data.Split]:
    dataset: data.Cifar10 | FolderData
    if source is not None:
        from train import folders

        dataset = folders.load(
            source.images,
            source.size,
            files.root / "split.json",
            test_root=source.test_images,
            skip_bad=source.skip_bad,
        )
        train, validation = dataset.train, dataset.validation
    else:
        dataset = data.load(data_dir)
        train, validation = data.stratified_split(dataset.train)
    if quick:
        train = data.subset(train, QUICK_TRAIN)
        validation = data.subset(validation, QUICK_VALIDATION)
    return dataset, train, validation


def default_firmware_dir(files: RunFiles, quick: bool) -> Path:
    return files.root / "firmware_models" if quick else Path("firmware_models")


def config_for(
    model: str, quick: bool, train: data.Split, source: FolderSource | None
) -> ModelConfig:
    # Imported here: the model builders load TensorFlow, which a data error should not wait for.
    from train.models import folder_config, get_config

    try:
        config = get_config(model, quick=quick and source is None)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0])) from None
    if source is None:
        return config
    from train.transfer import pretrained_source

    pretrained = pretrained_source(source.init, model, train)
    return folder_config(
        config, source.name, train.class_names, source.size, pretrained, quick=quick
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
) -> Run:
    # The data first: bad data fails in one line before TensorFlow starts and prints its own logs.
    source = folder_source(ctx)
    files = run_files(model, quick, runs_dir, source)
    dataset, train, validation = load_splits(data_dir, quick, files, source)
    config = config_for(model, quick, train, source)
    from train.devices import split_cpu

    split_cpu(devices)
    claim_run(files, config.recipe.as_dict())
    return Run(dataset, train, validation, config, files, quick, devices, source)


SIZES = (32, 64, 96)


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
        int, typer.Option("--size", help=f"Input side in pixels, one of {SIZES}.")
    ] = 64,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Leave unreadable image files out (and count them)."),
    ] = False,
    init: Annotated[
        str,
        typer.Option(
            "--init",
            help="Start from the shipped CIFAR-10 model's conv weights ('pretrained'), from "
            "random weights ('scratch'), or 'auto': pretrained for small data sets.",
        ),
    ] = "auto",
) -> None:
    """CIFAR-10 (or an image folder) → float model → QAT → full-INT8 TFLite → evaluation →
    firmware_models/."""
    if images is None:
        return
    if size not in SIZES:
        raise typer.BadParameter(f"--size must be one of {SIZES}, got {size}")
    if init not in ("auto", "pretrained", "scratch"):
        raise typer.BadParameter(f"--init must be auto, pretrained or scratch, got {init!r}")
    ctx.obj = FolderSource(images, test_images, name or images.resolve().name, size, skip_bad, init)


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
    run = prepare(ctx, model, data_dir, quick, runs_dir, devices)
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
    from train.convert import to_float_tflite, to_int8_tflite, write_uint8_model
    from train.metadata import ModelDescription, stamp
    from train.qat import load_float_model, load_qat_model

    files = run.files
    to_float_tflite(load_float_model(run.config, files), files.float_model)
    to_int8_tflite(load_qat_model(run.config, files), run.train, files.int8_model)
    write_uint8_model(files.int8_model, files.uint8_model)
    # The labels travel in the model: the training split's class names (CIFAR-10's or the folder's).
    about = ModelDescription(run.config.name, run.config.description, run.train.class_names)
    for path in (files.float_model, files.int8_model, files.uint8_model):
        stamp(path, about)
    print(f"wrote {files.float_model}, {files.int8_model} and {files.uint8_model}", file=sys.stderr)


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


def evaluate_and_ship(run: Run, *, max_drop: float, firmware_dir: Path | None) -> None:
    """Evaluate the three models; ship them when the INT8 drop is within `max_drop` points."""
    from train.evaluate import evaluate
    from train.qat import load_float_model
    from train.ship import build_card, ship

    config, files = run.config, run.files
    test = data.subset(run.dataset.test, QUICK_TEST) if run.quick else run.dataset.test
    float_model = load_float_model(config, files)
    result = evaluate(float_model, files, test)
    if result["int8_drop_pt"] > max_drop:
        print(
            f"error: INT8 accuracy is {result['int8_drop_pt']:.2f} pt below float "
            f"(allowed: {max_drop:.2f}); nothing shipped",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    if firmware_dir is None:
        return
    source = run.source
    card = build_card(
        config,
        files,
        result,
        parameters=int(float_model.count_params()),
        data_name=f"image folder {source.images}" if source else "CIFAR-10",
        data_sha256=run.dataset.sha256,
        train_images=len(run.train),
        validation_images=len(run.validation),
        command=(
            f"make quantize DATA={source.images} NAME={source.name} SIZE={source.size}"
            if source
            else f"make quantize MODEL={config.name}"
        )
        + (" QUICK=1" if run.quick else "")
        + (f" DEVICES={run.devices}" if run.devices > 1 else ""),
    )
    for path in ship(card, files, firmware_dir):
        print(f"shipped {path}", file=sys.stderr)


@app.command()
def evaluate(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_MODEL,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    max_drop: MaxDropOption = 1.0,
) -> None:
    """Float Keras vs float TFLite vs INT8 TFLite on the test set; exit 1 if INT8 drops too much."""
    evaluate_and_ship(
        prepare(ctx, model, data_dir, quick, runs_dir), max_drop=max_drop, firmware_dir=None
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
) -> None:
    """The whole pipeline: float training (if no float model yet), QAT, conversion, the accuracy
    check, and shipping to firmware_models/."""
    run = prepare(ctx, model, data_dir, quick, runs_dir, devices)
    firmware_dir = firmware_dir or default_firmware_dir(run.files, quick)
    from train.fit import train_float
    from train.qat import train_qat

    train_float(run.config, run.train, run.validation, run.files)
    train_qat(run.config, run.train, run.validation, run.files)
    convert_models(run)
    evaluate_and_ship(run, max_drop=max_drop, firmware_dir=firmware_dir)
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
        dataset, train, validation = load_splits(data_dir, quick, files, source)
        index = write_report(run, dataset.test, train, validation, out_dir)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(f"wrote the report: {index}", file=sys.stderr)


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
