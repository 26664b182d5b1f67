"""The photo-transfer measurement in train/NOTES.md: the frozen Lite0 + head recipe of
train/photo_transfer.py at one input size and number of augmented views, scored in float on a
separate test folder. Features go through the same cache as training, so a second run at the
same size costs only the head's fit.

    python -m train.photo_measure TRAIN_DIR TEST_DIR --size 224 --views 4
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
from train.photo_transfer import (
    Extractor,
    backbone_of,
    feature_cache,
    fit_head,
    photo_config,
)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def measure(
    train_dir: Path,
    test_dir: Path,
    size: Annotated[int, typer.Option(help="Input side in pixels.")] = 224,
    views: Annotated[int, typer.Option(help="Augmented views a training photo.")] = 4,
    cache_dir: Annotated[Path, typer.Option(help="The feature cache.")] = Path("runs/.cache"),
) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        data = folders.load(train_dir, size, Path(scratch) / "split.json", test_root=test_dir)
    read = time.monotonic() - started
    config = photo_config("measure", data.class_names, size, quick=False)
    model = config.build()
    extract = Extractor(backbone_of(model), size)
    cache = feature_cache(cache_dir, size)
    train_x = np.concatenate(
        [cache.features(data.train.images, v, extract) for v in range(views + 1)]
    )
    train_y = np.tile(data.train.labels, views + 1)
    validation = (cache.features(data.validation.images, 0, extract), data.validation.labels)
    test_x = cache.features(data.test.images, 0, extract)
    featured = time.monotonic() - started
    head = fit_head((train_x, train_y), validation, config.classes, None)
    accuracy = float(np.mean(head.predict(test_x, verbose=0).argmax(axis=1) == data.test.labels))
    print(
        f"size {size}, views {views}: float test accuracy {accuracy:.2%} on {len(test_x)} "
        f"photos ({len(data.train)} training, {len(data.validation)} validation); read "
        f"{read:.0f} s, features {featured - read:.0f} s, head "
        f"{time.monotonic() - featured:.0f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    app()
