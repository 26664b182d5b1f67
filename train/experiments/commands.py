"""The command line's measurements (`python -m train compare | sketch | throughput`): functions
train/cli.py registers as commands. Each imports what trains or converts (TensorFlow) inside the
command, as train/cli.py does, so `--help` stays instant.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from train import data
from train.options import DataDirOption, ModelOption, fail, reported, say
from train.recipe import DEFAULT_CONFIG, Lite0Net, ModelConfig, get_config
from train.run import load_splits


def compare(
    variants: Annotated[
        list[str],
        typer.Argument(
            help="Recipe variants as name:field=value,...  ('base' alone: the config's recipe)."
        ),
    ],
    model: ModelOption = DEFAULT_CONFIG,
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
    # TensorFlow (module docstring)
    from train.experiments.compare import parse_variant, record, run_variant

    try:
        parsed = [parse_variant(text) for text in variants]
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with reported():
        config = get_config(model)
        _, train, validation = load_splits(data_dir, quick=False)
    train = data.subset(train, train_images)
    if validation_images < len(validation):
        validation = data.subset(validation, validation_images)
    for name, changes in parsed:
        if epochs is not None:
            changes = {"epochs": epochs, **changes}
        with reported():
            result = run_variant(
                config, name, changes, train=train, validation=validation, runs_dir=runs_dir
            )
        say([record(out_dir, model, name, result)])


def sketch(
    models: Annotated[list[str], typer.Argument(help="Config names (train/recipe.py).")],
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Where <model>_sketch_int8.tflite files go.")
    ] = Path("runs/sketch"),
) -> None:
    """Each config's untrained net as a full-INT8 file, for `edge-cifar bench` beside the
    references: size, multiply-adds and latency before any training."""
    from train.sketch import sketch_int8  # TensorFlow (module docstring)

    with reported():
        configs = [get_config(name) for name in models]
    out_dir.mkdir(parents=True, exist_ok=True)
    for config in configs:
        path = sketch_int8(config, out_dir / f"{config.name}_sketch_int8.tflite")
        print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)


def lite0_variant(
    config: ModelConfig, backbone_size: int | None, frozen_blocks: int | None
) -> ModelConfig:
    net = config.net
    if not isinstance(net, Lite0Net):
        fail(
            ValueError(f"{config.name} is not a Lite0 config: no backbone size or frozen blocks"), 2
        )
    size = net.backbone_size if backbone_size is None else backbone_size
    frozen = net.frozen_blocks if frozen_blocks is None else frozen_blocks
    name = f"{config.name} ({size} px, {frozen} blocks frozen)"
    return replace(config, name=name, net=Lite0Net(net.name, size, frozen))


def throughput(
    models: Annotated[list[str], typer.Argument(help="Config names (train/recipe.py).")],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 128,
    backbone_size: Annotated[
        int | None, typer.Option(min=32, help="A Lite0 config's variant: this backbone side.")
    ] = None,
    frozen_blocks: Annotated[
        int | None, typer.Option(min=0, help="A Lite0 config's variant: this many blocks frozen.")
    ] = None,
) -> None:
    """Training images per second of each config (or a Lite0 config's variant) on synthetic
    batches, in float32 and in mixed bfloat16, on this CPU (which the line names)."""
    with reported():
        configs = [get_config(name) for name in models]
    if backbone_size is not None or frozen_blocks is not None:
        configs = [lite0_variant(c, backbone_size, frozen_blocks) for c in configs]
    # TensorFlow (module docstring)
    from train.experiments.throughput import images_per_second
    from train.precision import FLOAT32, MIXED_BFLOAT16, cpu_description

    print(f"{cpu_description()}; batch {batch_size}; images/s through fit")
    for config in configs:
        rates = {p: images_per_second(config, p, batch_size) for p in (FLOAT32, MIXED_BFLOAT16)}
        print(
            f"{config.name}: {rates[FLOAT32]:.0f} float32, {rates[MIXED_BFLOAT16]:.0f} mixed "
            f"bfloat16 ({rates[MIXED_BFLOAT16] / rates[FLOAT32]:.2f}x)"
        )
