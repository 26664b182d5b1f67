"""The command line's shared parts: its options, and how a step's failure becomes one line.

A bad input (data, model file, card, a changed recipe, an unknown config) is one `error:` line
and exit 2; a failed check (the INT8 accuracy gate, TFLite Micro) is one line and exit 1.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from edge_cifar.interpreter import ModelError
from train.card import CardError
from train.data import DataError
from train.firmware import FirmwareError
from train.recipe import UnknownModelError
from train.report import ReportError
from train.run import Int8DropError

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
RobustnessImagesOption = Annotated[
    int | None,
    typer.Option(
        "--robustness-images",
        min=1,
        help="The robustness benchmark on this many test images (class-balanced), not all.",
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
OutDirOption = Annotated[
    Path | None,
    typer.Option(
        "--out-dir",
        help="Write the report into <out-dir>/<run folder name>/ (default: reports/<model>/; "
        "with --quick, the run's own report/ folder, so a QUICK report never replaces a real one).",
    ),
]


def fail(error: Exception, code: int) -> NoReturn:
    print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
    raise typer.Exit(code)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """A step's known failures as one `error:` line: bad input exits 2, a failed check 1."""
    try:
        yield
    except (Int8DropError, FirmwareError) as error:
        fail(error, 1)
    except (DataError, UnknownModelError, ModelError, CardError, ReportError) as error:
        fail(error, 2)


def say(paths: list[Path], verb: str = "wrote") -> None:
    for path in paths:
        print(f"{verb} {path}", file=sys.stderr)
