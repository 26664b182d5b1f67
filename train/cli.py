"""The training command line: `python -m train <step>`; it parses, calls a step and prints.

The steps and their order live in train/pipeline.py; `quantize` runs them all. Options and error
lines shared by the commands: train/options.py; the measurement commands (compare, sketch,
throughput): train/experiments/commands.py.

What this module imports at the top runs without TensorFlow. The modules that train, convert or
score with Keras are imported inside the commands that use them, after the inputs are read:
TensorFlow takes seconds to load and writes log lines to stderr, which `--help` and a one-line
input error should not wait for. Those imports are the heavy dependency this rule allows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from train import data
from train.corruptions import by_name
from train.experiments import commands
from train.firmware import DEFAULT_IMAGES, check_model, write_firmware
from train.options import (
    DataDirOption,
    DevicesOption,
    FirmwareOption,
    MaxDropOption,
    ModelOption,
    OutDirOption,
    OutOfClassOption,
    QuickOption,
    ReferenceOption,
    RobustnessImagesOption,
    RunsOption,
    fail,
    reported,
    say,
)
from train.recipe import DEFAULT_CONFIG
from train.report import report_run
from train.robustness import ModelUnderTest, benchmark, markdown_table, write_result
from train.run import (
    BACKBONES,
    FOLDER_SIZES,
    INITS,
    PHOTO_DEFAULT_SIZE,
    PHOTO_SIZES,
    ROBUSTNESS_QUICK_IMAGES,
    FolderSource,
    Run,
    default_firmware_dir,
    open_run,
    run_files,
)
from train.scoring import Scorer, tflite_scorer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


def opened(
    ctx: typer.Context,
    model: str,
    data_dir: Path | None,
    quick: bool,
    runs_dir: Path,
    devices: int = 1,
    *,
    float_only_ok: bool = False,
    robustness_subset: int | None = None,
) -> Run:
    with reported():
        return open_run(
            model,
            data_dir=data_dir,
            quick=quick,
            runs_dir=runs_dir,
            source=ctx.obj if isinstance(ctx.obj, FolderSource) else None,
            devices=devices,
            float_only_ok=float_only_ok,
            robustness_subset=robustness_subset,
        )


def scorers(references: list[Path] | None, input_range: str | None = None) -> dict[str, Scorer]:
    """A scorer per reference model, by file stem (a bad file: one line before any work)."""
    with reported():
        return {path.stem: tflite_scorer(path, input_range) for path in references or []}


@app.callback()
def source(
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
            f"{PHOTO_SIZES} (default {PHOTO_DEFAULT_SIZE}), cifar one of {FOLDER_SIZES} "
            "(default 64).",
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
    TFLite Micro → firmware_models/ and a report."""
    if images is None:
        return
    if backbone not in BACKBONES:
        raise typer.BadParameter(f"--backbone must be one of {BACKBONES}, got {backbone!r}")
    photos = backbone == "lite0"
    sizes = PHOTO_SIZES if photos else FOLDER_SIZES
    size = (PHOTO_DEFAULT_SIZE if photos else 64) if size is None else size
    if size not in sizes:
        raise typer.BadParameter(f"--size must be one of {sizes} with {backbone}, got {size}")
    if init not in INITS:
        raise typer.BadParameter(f"--init must be auto, pretrained or scratch, got {init!r}")
    ctx.obj = FolderSource(
        images, test_images, name or images.resolve().name, size, skip_bad, init, backbone
    )


@app.command()
def fit(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_CONFIG,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    devices: DevicesOption = 1,
) -> None:
    """Train the float model (resumes from its last checkpoint)."""

    run = opened(ctx, model, data_dir, quick, runs_dir, devices, float_only_ok=True)
    from train import pipeline  # TensorFlow, after the inputs are read (module docstring)

    with reported():
        say([pipeline.fit(run)])


@app.command()
def qat(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_CONFIG,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    devices: DevicesOption = 1,
) -> None:
    """Quantization-aware fine-tuning of the float model (resumes from its last checkpoint)."""

    run = opened(ctx, model, data_dir, quick, runs_dir, devices)
    from train import pipeline  # TensorFlow, after the inputs are read (module docstring)

    with reported():
        say([pipeline.qat(run)])


@app.command()
def convert(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_CONFIG,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
) -> None:
    """Write the float32 TFLite model and the full-integer INT8 TFLite model."""

    run = opened(ctx, model, data_dir, quick, runs_dir)
    from train import pipeline  # TensorFlow, after the inputs are read (module docstring)

    with reported():
        say(pipeline.convert(run))


@app.command()
def evaluate(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_CONFIG,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    max_drop: MaxDropOption = 1.0,
    reference: ReferenceOption = None,
    out_of_class: OutOfClassOption = None,
    robustness_images: RobustnessImagesOption = None,
) -> None:
    """Float Keras vs float TFLite vs INT8 TFLite on the test set, the uncertain threshold (with
    --out-of-class) and the robustness benchmark; exit 1 if INT8 drops too much."""

    run = opened(ctx, model, data_dir, quick, runs_dir, robustness_subset=robustness_images)
    from train import pipeline  # TensorFlow, after the inputs are read (module docstring)

    references = scorers(reference, "0..255")
    with reported():
        pipeline.evaluate_models(
            run, max_drop=max_drop, references=references, out_of_class=out_of_class
        )


@app.command()
def quantize(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_CONFIG,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    max_drop: MaxDropOption = 1.0,
    firmware_dir: FirmwareOption = None,
    devices: DevicesOption = 1,
    reference: ReferenceOption = None,
    out_of_class: OutOfClassOption = None,
    robustness_images: RobustnessImagesOption = None,
) -> None:
    """The whole pipeline: float training (if no float model yet), QAT, conversion, the accuracy
    check, TFLite Micro, shipping to firmware_models/ and the report (a float teacher: float
    training and shipping)."""

    run = opened(
        ctx,
        model,
        data_dir,
        quick,
        runs_dir,
        devices,
        float_only_ok=True,
        robustness_subset=robustness_images,
    )
    from train import pipeline  # TensorFlow, after the inputs are read (module docstring)

    references = scorers(reference, "0..255")
    with reported():
        written = pipeline.quantize(
            run,
            max_drop=max_drop,
            firmware_dir=firmware_dir or default_firmware_dir(run.files, quick),
            report_dir=report_dir(run.files.root, run.files.model_name, quick, None),
            references=references,
            out_of_class=out_of_class,
        )
    say(written[:-1], "shipped")
    print(f"wrote the report: {written[-1]}", file=sys.stderr)


def report_dir(run_root: Path, model: str, quick: bool, out_dir: Path | None) -> Path:
    if out_dir is not None:
        return out_dir / run_root.name
    return run_root / "report" if quick else Path("reports") / model


@app.command()
def report(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_CONFIG,
    data_dir: DataDirOption = None,
    quick: QuickOption = False,
    runs_dir: RunsOption = Path("runs"),
    out_dir: OutDirOption = None,
    firmware_dir: FirmwareOption = None,
) -> None:
    """Plots and Markdown from a run's saved histories and predictions (runs no model)."""
    source = ctx.obj if isinstance(ctx.obj, FolderSource) else None
    files = run_files(model, quick, runs_dir, source)
    firmware_dir = firmware_dir or default_firmware_dir(files, quick)
    with reported():
        index = report_run(
            files,
            firmware_dir / f"{files.model_name}.card.json",
            report_dir(files.root, files.model_name, quick, out_dir),
            data_dir=data_dir,
            quick=quick,
            source=source,
        )
    print(f"wrote the report: {index}", file=sys.stderr)


@app.command()
def firmware(
    models: Annotated[
        list[Path] | None,
        typer.Argument(help="INT8 .tflite models [default: every *_int8.tflite in the folder]."),
    ] = None,
    firmware_dir: Annotated[
        Path, typer.Option("--firmware-dir", help="Where the shipped models are.")
    ] = Path("firmware_models"),
    images: Annotated[
        int, typer.Option(min=1, max=10000, help="CIFAR-10 test images to compare on.")
    ] = DEFAULT_IMAGES,
    data_dir: DataDirOption = None,
) -> None:
    """Check each INT8 model in TFLite Micro; write its C++ source, header and card figures."""
    paths = models or sorted(firmware_dir.glob("*_int8.tflite"))
    if not paths:
        print(
            f"error: no *_int8.tflite in {firmware_dir}/ (make quantize ships one)", file=sys.stderr
        )
        raise typer.Exit(2)
    with reported():
        test = data.load(data_dir).test
        for path in paths:
            check = check_model(path, test.images[:images], test.labels[:images])
            written = write_firmware(check)
            print(
                f"{path.name}: arena {check.arena_bytes:,} bytes, same class on {check.images} "
                f"images, max output difference {check.max_output_diff_steps} step(s), "
                f"ops {', '.join(sorted(check.ops))}"
            )
            print("  wrote " + ", ".join(str(p) for p in written))


@app.command("stamp")
def stamp_shipped(
    firmware_dir: Annotated[
        Path, typer.Option("--firmware-dir", help="Where the shipped models and cards are.")
    ] = Path("firmware_models"),
) -> None:
    """Write TFLite metadata into every shipped model (weights and graph unchanged), add its
    uint8-interface file, and record the new files' sizes and SHA-256s in its card."""
    from train.ship import ShipError, restamp  # TensorFlow (module docstring)

    cards = sorted(firmware_dir.glob("*.card.json"))
    if not cards:
        print(f"error: no model cards in {firmware_dir}", file=sys.stderr)
        raise typer.Exit(2)
    for card in cards:
        try:
            say(restamp(card), "stamped")
        except ShipError as error:
            fail(error, 2)


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
    try:
        chosen = by_name(corruption)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0])) from None
    with reported():
        under_test = [ModelUnderTest(p.stem, tflite_scorer(p, input_range)) for p in models]
        dataset = data.load(data_dir)
    count = ROBUSTNESS_QUICK_IMAGES if quick else images
    test = data.subset(dataset.test, count) if count < len(dataset.test) else dataset.test
    result = benchmark(under_test, test, chosen)
    say(write_result(result, out_dir))
    print(markdown_table(result))


# The measurements behind recipes (train/experiments/commands.py), listed after the steps.
app.command()(commands.compare)
app.command()(commands.sketch)
app.command()(commands.throughput)


def main() -> None:
    app()
