"""Knowledge distillation: training targets that mix the labels with a shipped float teacher's
class scores.

The teacher scores each training image once, unaugmented, through `edge_cifar` (the device's
path); a crop shifted by a few pixels or a mirror image keeps nearly the same class distribution,
so the scores serve every epoch's augmentations and distillation costs one pass over the data
instead of a teacher forward pass per step. Each image's score is the mean of the image's and its
mirror's: the student sees both at random, and the airbench teacher is more accurate that way
(train/NOTES.md).
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from train.artifacts import RunFiles, shipped_float_model, write_npz
from train.data import DataError, Split
from train.inputs import one_hot
from train.recipe import Recipe
from train.scoring import tflite_scores


class TeacherError(DataError):
    """The teacher model is missing: an input the run cannot start without, reported like data."""


def teacher_path(teacher: str) -> Path:
    return shipped_float_model(teacher)


def _fingerprint(model_bytes: bytes, split: Split) -> str:
    digest = hashlib.sha256(model_bytes)
    digest.update(np.ascontiguousarray(split.images).data)
    # Caches of single-view scores (before the mirror joined) do not match.
    digest.update(b"image and mirror")
    return digest.hexdigest()


def two_view_scores(model_path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A teacher's class scores for RGB images: each image's own, and the mean over each image
    and its mirror (the targets distillation uses)."""
    plain = tflite_scores(model_path, images)
    mirrored = tflite_scores(model_path, np.ascontiguousarray(images[:, :, ::-1]))
    return plain, (plain + mirrored) / 2


def recorded_teacher_sha256(cache: Path) -> str | None:
    """The SHA-256 of the teacher file whose scores `cache` holds (the card names the exact teacher
    a student learned from, which a later reshipped teacher would not be); None without a cache."""
    if not cache.is_file():
        return None
    with np.load(cache, allow_pickle=False) as stored:
        return str(stored["teacher_sha256"]) if "teacher_sha256" in stored.files else None


def teacher_scores(model_path: Path, split: Split, cache: Path) -> np.ndarray:
    """The teacher's class scores for every image of `split`, cached in `cache` for as long as
    neither the teacher file nor the images change."""
    if not model_path.is_file():
        raise TeacherError(
            f"teacher model {model_path} not found; train and ship it first "
            f"(make quantize MODEL={model_path.stem.removesuffix('_float')})"
        )
    model_bytes = model_path.read_bytes()
    fingerprint = _fingerprint(model_bytes, split)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            # A cache from before the teacher's digest was recorded is scored again.
            if "teacher_sha256" in stored.files and str(stored["fingerprint"]) == fingerprint:
                return np.asarray(stored["scores"])
    started = time.monotonic()
    print(
        f"distillation: scoring {len(split)} images and their mirrors with {model_path}",
        file=sys.stderr,
    )
    _, scores = two_view_scores(model_path, split.images)
    print(f"distillation: teacher done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    write_npz(
        cache,
        scores=scores,
        fingerprint=np.array(fingerprint),
        teacher_sha256=np.array(hashlib.sha256(model_bytes).hexdigest()),
    )
    return scores


def mix_targets(
    labels: np.ndarray, classes: int, scores: np.ndarray | None, weight: float
) -> np.ndarray:
    """(1 - weight) x one-hot labels + weight x the teacher's scores; one-hot without a teacher."""
    hard = one_hot(labels, classes)
    if scores is None:
        return hard
    return ((1.0 - weight) * hard + weight * scores).astype(np.float32)


def training_targets(recipe: Recipe, train: Split, files: RunFiles) -> np.ndarray:
    """The target distributions the recipe trains `train` on."""
    if recipe.teacher is None:
        return mix_targets(train.labels, train.classes, None, 0.0)
    scores = teacher_scores(
        teacher_path(recipe.teacher), train, files.teacher_scores(recipe.teacher)
    )
    return mix_targets(train.labels, train.classes, scores, recipe.distillation_weight)
