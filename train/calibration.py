"""The recommended "uncertain" threshold, and how well a model's top score tells pictures of its
classes from photos of anything else (the open-set check its card reports).

A camera sees far more than its model's classes. The device calls a frame `uncertain` when the
top score is under the model's threshold, which travels in the model's metadata. It is chosen on
images the model never trained on: the validation split (its own classes) and half of a folder of
out-of-class photos; the other half and the test split measure what it does. The rule is Youden's
J (the ROC curve's point farthest above chance: the most correct in-class answers kept for the
fewest out-of-class photos let through) among the thresholds that keep all but `MAX_LOST_SHARE` of
the correct answers: a camera that names what it knows matters more than one that also refuses
what it does not, and real frames score lower than the images the threshold is chosen on.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score, roc_curve

from train.artifacts import RunFiles, write_atomic
from train.data import DataError, Split
from train.folders import image_paths, read_image
from train.scoring import tflite_scorer

# Out-of-class photos are split by content digest, so the split does not depend on file names.
CHOOSE, REPORT = "choose", "report"
# The largest share of correct in-class answers a threshold may call uncertain (train/NOTES.md,
# session 24: `pi`'s unbounded J point lost 13% of them).
MAX_LOST_SHARE = 0.05


@dataclass(frozen=True)
class OpenSetCheck:
    """What a threshold does to in-class images and out-of-class photos; shares of each."""

    threshold: float
    auroc: float  # in-class vs out-of-class, by top score: 1.0 separates them, 0.5 is chance
    in_class_images: int
    out_of_class_photos: int
    in_class_named_right: float  # correct and at or above the threshold
    in_class_accuracy: float  # correct, whatever the score (--min-score 0)
    out_of_class_uncertain: float  # under the threshold

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def out_of_class_photos(folder: Path, size: int) -> dict[str, npt.NDArray[np.uint8]]:
    """Every readable photo under `folder` (any depth), model-sized RGB, in two halves by content:
    `choose` picks the threshold and `report` measures it."""
    halves: dict[str, list[npt.NDArray[np.uint8]]] = {CHOOSE: [], REPORT: []}
    for path in image_paths(folder):
        digest, rgb = read_image(path, size)
        if rgb is not None:
            halves[CHOOSE if int(digest[:8], 16) % 2 == 0 else REPORT].append(rgb)
    empty = np.zeros((0, size, size, 3), np.uint8)
    return {half: np.stack(images) if images else empty for half, images in halves.items()}


def choose_threshold(
    in_scores: npt.NDArray[np.float32],
    in_labels: npt.NDArray[np.integer],
    out_scores: npt.NDArray[np.float32],
) -> float:
    """Youden's J between correct in-class answers and out-of-class photos, by top score, among
    the thresholds that keep at least 1 - `MAX_LOST_SHARE` of the correct answers."""
    correct = in_scores.argmax(axis=1) == in_labels
    top = np.concatenate([in_scores.max(axis=1)[correct], out_scores.max(axis=1)])
    positive = np.concatenate([np.ones(int(correct.sum())), np.zeros(len(out_scores))])
    false_positive, true_positive, thresholds = roc_curve(positive, top, drop_intermediate=False)
    kept_enough = true_positive >= 1 - MAX_LOST_SHARE  # the last point keeps all: never empty
    best = int(np.argmax(np.where(kept_enough, true_positive - false_positive, -np.inf)))
    # roc_curve's first threshold is +inf (nothing kept); the best point is never that one.
    return round(float(min(thresholds[best], 1.0)), 4)


def open_set_check(
    in_scores: npt.NDArray[np.float32],
    in_labels: npt.NDArray[np.integer],
    out_scores: npt.NDArray[np.float32],
    threshold: float,
) -> OpenSetCheck:
    predicted, in_top = in_scores.argmax(axis=1), in_scores.max(axis=1)
    out_top = out_scores.max(axis=1)
    correct = predicted == in_labels
    auroc = roc_auc_score(
        np.concatenate([np.ones(len(in_top)), np.zeros(len(out_top))]),
        np.concatenate([in_top, out_top]),
    )
    return OpenSetCheck(
        threshold=threshold,
        auroc=round(float(auroc), 4),
        in_class_images=len(in_top),
        out_of_class_photos=len(out_top),
        in_class_named_right=round(float(np.mean(correct & (in_top >= threshold))), 4),
        in_class_accuracy=round(float(np.mean(correct)), 4),
        out_of_class_uncertain=round(float(np.mean(out_top < threshold)), 4),
    )


def calibrate(files: RunFiles, validation: Split, test: Split, photos: Path) -> dict[str, Any]:
    """The INT8 model's threshold, chosen on the validation split and half the out-of-class
    photos, and its open-set check on the test split and the other half (open_set.json)."""
    size = validation.images.shape[1]
    halves = out_of_class_photos(photos, size)
    if not min(len(half) for half in halves.values()):
        raise DataError(f"{photos}: too few readable photos to choose a threshold")
    scores = tflite_scorer(files.int8_model)
    validation_scores, chosen_on = scores(validation.images), scores(halves[CHOOSE])
    threshold = choose_threshold(validation_scores, validation.labels, chosen_on)
    with np.load(files.predictions) as predictions:
        test_scores = predictions["int8_tflite_scores"]
    check = open_set_check(test_scores, test.labels, scores(halves[REPORT]), threshold)
    result = {
        "threshold": threshold,
        "rule": "Youden's J: correct validation answers against out-of-class photos, by top "
        f"score, losing at most {MAX_LOST_SHARE:.0%} of the correct answers",
        "out_of_class_folder": str(photos),
        "validation": open_set_check(
            validation_scores, validation.labels, chosen_on, threshold
        ).as_dict(),
        "test": check.as_dict(),
    }
    write_atomic(files.open_set, json.dumps(result, indent=1).encode())
    print(
        f"uncertain threshold {threshold}: on the test split and {check.out_of_class_photos} "
        f"held-out out-of-class photos, AUROC {check.auroc:.3f}, "
        f"{100 * check.out_of_class_uncertain:.1f}% of the photos uncertain, "
        f"{100 * check.in_class_named_right:.1f}% of the test images named right above it",
        file=sys.stderr,
    )
    return result
