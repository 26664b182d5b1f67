"""The photo-transfer measurement in train/NOTES.md: the frozen Lite0 + head recipe of
train/photo_transfer.py at one input size and number of augmented views, scored in float on a
separate test folder. Features go through the same cache as training, so a second run at the
same size costs only the head's fit.

    python -m train.experiments.photo_measure TRAIN_DIR TEST_DIR --size 224 --views 4
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from train import folders
from train.models import build
from train.photo_transfer import Extractor, backbone_of, feature_cache, fit_head
from train.recipe import photo_config

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def measure(
    train_dir: Path,
    test_dir: Path,
    size: Annotated[int, typer.Option(help="Input side in pixels.")] = 224,
    views: Annotated[
        list[int] | None,
        typer.Option("--views", help="Augmented views a training photo; repeatable, a head each."),
    ] = None,
    cache_dir: Annotated[Path, typer.Option(help="The feature cache.")] = Path("runs/.cache"),
) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        data = folders.load(train_dir, size, Path(scratch) / "split.json", test_root=test_dir)
    config = photo_config("measure", data.class_names, size)
    extract = Extractor(backbone_of(build(config)), size)
    cache = feature_cache(cache_dir, size)
    arms = sorted(views or [0])
    train_x = [cache.features(data.train.images, v, extract) for v in range(arms[-1] + 1)]
    validation = (cache.features(data.validation.images, 0, extract), data.validation.labels)
    test_x = cache.features(data.test.images, 0, extract)
    print(f"size {size}: features {time.monotonic() - started:.0f} s", file=sys.stderr)
    for count in arms:
        fitted = time.monotonic()
        train = (np.concatenate(train_x[: count + 1]), np.tile(data.train.labels, count + 1))
        head = fit_head(train, validation, config.classes, None)
        scores = head.predict(test_x, verbose=0)
        accuracy = float(np.mean(scores.argmax(axis=1) == data.test.labels))
        print(
            f"size {size}, views {count}: float test accuracy {accuracy:.2%} on {len(test_x)} "
            f"photos ({len(data.train)} training, {len(data.validation)} validation); head "
            f"{time.monotonic() - fitted:.0f} s",
            file=sys.stderr,
        )


if __name__ == "__main__":
    app()
