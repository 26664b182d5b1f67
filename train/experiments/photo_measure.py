"""The photo-transfer measurement in train/NOTES.md: the Lite0 recipe of train/photo_transfer.py
at one input size and number of augmented views, scored in float on a separate test folder: its
head alone, then (the same head) with the last block fine-tuned. The maps entering that block go
through a feature cache like training's, so a second run at the same size costs only the fits.

    python -m train.experiments.photo_measure TRAIN_DIR TEST_DIR --size 224 --views 4
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import tf_keras as keras
import typer

from train import folders
from train.backbones import LITE0_BLOCKS, copy_weights, lite0_top
from train.models import build
from train.photo_transfer import (
    HEAD_DROPOUT,
    Extractor,
    backbone_of,
    compiled,
    feature_cache,
    fit_head,
    fit_phase,
)
from train.recipe import photo_config

# The fine-tuning arm: the last block, head conv and head trained together on the cached map
# entering that block (7 x 7 x 192 at 224 px), after the head alone, at a small rate with the
# BatchNorms frozen; kept only when it lowers the validation loss.
FIRST_TUNED = LITE0_BLOCKS - 1
TUNE_LR, TUNE_MAX_EPOCHS, TUNE_PATIENCE = 1e-4, 40, 8

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
    model = build(config)
    extract = Extractor(backbone_of(model, FIRST_TUNED), size)
    cache = feature_cache(cache_dir, size, FIRST_TUNED)
    arms = sorted(views or [0])
    train_x = [cache.features(data.train.images, v, extract) for v in range(arms[-1] + 1)]
    validation = (cache.features(data.validation.images, 0, extract), data.validation.labels)
    test_x = cache.features(data.test.images, 0, extract)
    print(f"size {size}: maps {time.monotonic() - started:.0f} s", file=sys.stderr)

    def score(top: keras.Model, arm: str, loss: float) -> None:
        accuracy = float(np.mean(top.predict(test_x, verbose=0).argmax(axis=1) == data.test.labels))
        print(
            f"size {size}, {arm}: float test accuracy {accuracy:.2%} on {len(test_x)} photos "
            f"({len(data.train)} training, {len(data.validation)} validation; validation loss "
            f"{loss:.4f})",
            file=sys.stderr,
        )

    for count in arms:
        train = (np.concatenate(train_x[: count + 1]), np.tile(data.train.labels, count + 1))
        top = lite0_top(test_x.shape[1:], FIRST_TUNED, config.classes, HEAD_DROPOUT)
        copy_weights(model, top)
        pool = keras.Model(top.input, top.get_layer("pool").output)
        pooled = [pool.predict(x, verbose=0) for x in (train[0], validation[0])]
        head, head_loss, head_epochs = fit_head(
            (pooled[0], train[1]), (pooled[1], validation[1]), config.classes, None
        )
        top.get_layer("classes").set_weights(head.get_layer("classes").get_weights())
        score(top, f"views {count}, head only", head_loss)
        before = top.get_weights()
        tuned_loss, _ = fit_phase(
            compiled(top, TUNE_LR),
            train,
            validation,
            None,
            epochs=TUNE_MAX_EPOCHS,
            patience=TUNE_PATIENCE,
            first_epoch=head_epochs,
        )
        kept = tuned_loss < head_loss
        if not kept:
            top.set_weights(before)
        score(top, f"views {count}, top fine-tuned ({'kept' if kept else 'not kept'})", tuned_loss)


if __name__ == "__main__":
    app()
