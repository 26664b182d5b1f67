"""ImageNet transfer for a user's photo folders: EfficientNet-Lite0's frozen features, a new head.

The float step of `make quantize DATA=folder` (the default `--backbone lite0`). Lite0 with its
ImageNet weights (train/backbones.py) computes each training photo's pooled 1,280 features once,
for the photo itself and a few augmented views of it (random resized crop, mirror, the camera
effects), and keeps them on disk (train/feature_cache.py); a softmax head is fitted on them with
class weights against unbalanced folders and early stopping on the validation split, in seconds.
Its weights go into the full network, which converts to full INT8 by post-training quantization
like any other model. Why frozen (fine-tuning the top blocks on a few hundred photos cost up to a
point: train/experiments/photo_measure.py) and why these sizes: train/NOTES.md ("Photo folders").

A class folder named `_background` trains as "none of these": the device reports it as
`uncertain`, and its validation photos choose the recommended uncertain threshold.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tensorflow as tf
import tf_keras as keras
from sklearn.utils.class_weight import compute_class_weight

from edge_cifar.classifier import BACKGROUND_LABEL
from edge_cifar.preprocess import PIXEL_SCALE
from train.artifacts import RunFiles, write_atomic
from train.backbones import LITE0_PIN, LITE0_SHA256, block_output
from train.calibration import MAX_LOST_SHARE, choose_threshold
from train.camera_augment import camera_effects
from train.data import Split
from train.feature_cache import FeatureCache, pixel_digest
from train.fit import HistoryLog, LabelPrecision, LabelRecall, save_weights, seed_everything
from train.models import build
from train.recipe import PHOTO_HEAD_RECIPE, ModelConfig

# Augmented views of each training photo besides the photo itself; QUICK: the photos alone
# (train/NOTES.md, photo folders: more views did not pay).
VIEWS, QUICK_VIEWS = 1, 0
CROP_AREA = (0.5, 1.0)  # random resized crop: the share of the photo kept
CAMERA_EFFECTS = PHOTO_HEAD_RECIPE.camera_augment  # each camera effect's probability in a view
VIEW_RECIPE = "crop50-flip-camera10"  # names the three above in the feature cache's file name
HEAD_DROPOUT = 0.2  # lite0_classifier's head dropout, which the full network keeps
HEAD_LR, HEAD_BATCH = PHOTO_HEAD_RECIPE.peak_lr, PHOTO_HEAD_RECIPE.batch_size
HEAD_MAX_EPOCHS = PHOTO_HEAD_RECIPE.epochs
# Early stopping: validation loss that has not improved for this many epochs ends the fit, and
# the best epoch's weights are kept.
PATIENCE = 20
LABEL_SMOOTHING = PHOTO_HEAD_RECIPE.label_smoothing
TRANSFER_FILE = "photo_transfer.json"
# What a photo model's card says of its start (the `start` of train/ship.py's cards).
PHOTO_START = (
    f"EfficientNet-Lite0's ImageNet weights (`{LITE0_PIN}`, SHA-256 `{LITE0_SHA256}`), frozen, "
    "under a new head fitted on their cached features (train/NOTES.md, photo folders)"
)


def view_maker(size: int) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """(uint8 image, seed pair) -> uint8 augmented view: a random resized crop, a random mirror,
    the camera effects; stateless, so a view is the same in every run and can be cached."""
    camera = camera_effects(CAMERA_EFFECTS)

    def view(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(seed, 3)
        begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            tf.zeros([1, 0, 4]),
            seed=seeds[0],
            area_range=CROP_AREA,
            aspect_ratio_range=(3 / 4, 4 / 3),
            use_image_if_no_bounding_boxes=True,
        )
        crop = tf.slice(image, begin, crop_size)
        crop = tf.image.resize(tf.cast(crop, tf.float32), (size, size), antialias=True)
        crop = tf.image.stateless_random_flip_left_right(crop, seed=seeds[1])
        crop = tf.cast(tf.clip_by_value(tf.round(crop), 0, 255), tf.uint8)
        return camera(crop, seeds[2])

    return view


@dataclass
class Extractor:
    """What `backbone` makes of model-sized uint8 images (Lite0's pooled features, or a block's
    map), view 0 as they are, view v > 0 an augmented view seeded by the image's content and v."""

    backbone: keras.Model
    size: int

    def __post_init__(self) -> None:
        self._view = view_maker(self.size)

    def __call__(self, images: npt.NDArray[np.uint8], view: int) -> npt.NDArray[np.float32]:
        if view:
            images = np.stack(
                [
                    self._view(
                        image, tf.constant([int(pixel_digest(image)[:8], 16), view], tf.int64)
                    ).numpy()
                    for image in images
                ]
            )
        features: npt.NDArray[np.float32] = self.backbone(
            images.astype(np.float32) * PIXEL_SCALE, training=False
        ).numpy()
        return features


def backbone_of(model: keras.Model, block: int | None = None) -> keras.Model:
    """The frozen part of `model`: up to its pooled features, or up to the map entering `block`."""
    output = model.get_layer("pool").output if block is None else block_output(model, block - 1)
    return keras.Model(model.input, output, name="lite0_trunk")


def feature_cache(cache_dir: Path, size: int, block: int | None = None) -> FeatureCache:
    """The cache of Lite0's pooled features (or maps entering `block`) at `size` px; the file name
    changes with the weights, the view recipe (`VIEW_RECIPE`) and the block, so a changed one never
    mixes with old features."""
    at = "" if block is None else f"-block{block}in"
    return FeatureCache(cache_dir / f"lite0-{LITE0_SHA256[:12]}-{VIEW_RECIPE}{at}-{size}px.npz")


def head_model(features: int, classes: int) -> keras.Model:
    """The network's own head (`head_dropout`, `classes`) on pooled features."""
    inputs = keras.Input((features,), name="features")
    x = keras.layers.Dropout(HEAD_DROPOUT, name="head_dropout")(inputs)
    outputs = keras.layers.Dense(classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="head")


def class_weights(labels: npt.NDArray[np.int64], classes: int) -> dict[int, float]:
    """Weights that make each class count as much as the others in the loss ('balanced')."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(c): float(w) for c, w in zip(present, weights, strict=True)} | {
        c: 1.0 for c in range(classes) if c not in present
    }


def compiled(model: keras.Model, learning_rate: float) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
        # The metrics every phase's history has (the report plots them).
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            LabelPrecision(name="precision"),
            LabelRecall(name="recall"),
        ],
    )
    return model


Examples = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def fit_phase(
    model: keras.Model,
    train: Examples,
    validation: Examples,
    files: RunFiles | None,
    *,
    epochs: int,
    patience: int,
    first_epoch: int = 0,
) -> tuple[float, int]:
    """Fit class-weighted, stopped early on the validation loss (its best epoch kept), each epoch
    logged in the run's float history after `first_epoch`; returns (best validation loss, epochs
    run)."""
    eye = np.eye(model.output_shape[-1], dtype=np.float32)
    log = [] if files is None else [HistoryLog(files.history("float"), "float", "float32")]
    fitted = model.fit(
        train[0],
        eye[train[1]],
        batch_size=HEAD_BATCH,
        initial_epoch=first_epoch,
        epochs=first_epoch + epochs,
        shuffle=True,
        class_weight=class_weights(train[1], model.output_shape[-1]),
        validation_data=(validation[0], eye[validation[1]]),
        callbacks=[
            keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True),
            *log,
        ],
        verbose=0,
    )
    losses = fitted.history["val_loss"]
    return float(min(losses)), len(losses)


def fit_head(
    train: Examples, validation: Examples, classes: int, files: RunFiles | None
) -> tuple[keras.Model, float, int]:
    """The head fitted on (pooled features, labels): the model, its best validation loss and the
    epochs it ran."""
    head = compiled(head_model(train[0].shape[1], classes), HEAD_LR)
    loss, epochs = fit_phase(
        head, train, validation, files, epochs=HEAD_MAX_EPOCHS, patience=PATIENCE
    )
    return head, loss, epochs


def recommended_threshold(
    scores: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], class_names: tuple[str, ...]
) -> float:
    """The uncertain threshold from validation scores: Youden's J against the `_background`
    photos when the folder has them (scored on its real classes: a frame called background is
    uncertain whatever its score), else the top score under which `MAX_LOST_SHARE` of the correct
    answers fall: with nothing out-of-class to set it against, the share J may lose at most
    (such frames are the ones worth collecting for the next round)."""
    if BACKGROUND_LABEL in class_names:
        background = class_names.index(BACKGROUND_LABEL)
        real = scores.copy()
        real[:, background] = 0.0
        inside = labels != background
        if inside.any() and (~inside).any():
            return choose_threshold(real[inside], labels[inside], real[~inside])
    correct = scores.argmax(axis=1) == labels
    top = scores.max(axis=1)[correct] if correct.any() else scores.max(axis=1)
    return round(float(np.quantile(top, MAX_LOST_SHARE)), 4)


def train_photo_model(
    config: ModelConfig,
    train: Split,
    validation: Split,
    files: RunFiles,
    cache_dir: Path,
    *,
    views: int,
) -> Path:
    """Fit the head on cached frozen features; write the full network's float weights and the
    recommended threshold (`TRANSFER_FILE`). Returns the weights file."""
    if files.float_weights.exists():
        print(f"float: weights exist, not training: {files.float_weights}", file=sys.stderr)
        return files.float_weights
    seed_everything(config.recipe.seed)
    model = build(config)
    extract = Extractor(backbone_of(model), config.input_size)
    cache = feature_cache(cache_dir, config.input_size)
    started = time.monotonic()
    train_x = np.concatenate([cache.features(train.images, v, extract) for v in range(views + 1)])
    train_y = np.tile(train.labels, views + 1)
    validation_x = cache.features(validation.images, 0, extract)
    print(
        f"features: {len(train_x)} training rows ({views} augmented views a photo), "
        f"{len(validation_x)} validation, {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    validation_xy = (validation_x, validation.labels)
    head, _, _ = fit_head((train_x, train_y), validation_xy, config.classes, files)
    model.get_layer("classes").set_weights(head.get_layer("classes").get_weights())
    scores = head.predict(validation_x, verbose=0)
    threshold = recommended_threshold(scores, validation.labels, train.class_names)
    accuracy = float(np.mean(scores.argmax(axis=1) == validation.labels))
    print(
        f"head: validation accuracy {accuracy:.2%}, uncertain threshold {threshold}",
        file=sys.stderr,
    )
    record = {"uncertain_threshold": threshold, "validation_accuracy": accuracy, "views": views}
    write_atomic(files.root / TRANSFER_FILE, json.dumps(record).encode())
    save_weights(model, files.float_weights)
    return files.float_weights


def recorded_threshold(files: RunFiles) -> float | None:
    """The uncertain threshold the transfer step recommended for this run (None: not a photo
    transfer run)."""
    path = files.root / TRANSFER_FILE
    if not path.is_file():
        return None
    threshold = json.loads(path.read_text())["uncertain_threshold"]
    return float(threshold)
