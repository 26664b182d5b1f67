"""Class scores of a TFLite model for RGB images, through `edge_cifar.Classifier`: the code the
camera runs, fed each image as the BGR frame OpenCV would deliver, one at a time as on the device.
The evaluation, the robustness benchmark and distillation all score models this way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_cifar.classifier import Classifier
from edge_cifar.interpreter import Model

Scorer = Callable[[np.ndarray], np.ndarray]  # uint8 RGB images -> class scores


def classifier_scores(classifier: Classifier, images: np.ndarray) -> np.ndarray:
    """Class scores for RGB images, each fed as the BGR frame OpenCV would deliver, one at a time
    as on the device."""
    scores = np.empty((len(images), classifier.model.output.shape[-1]), dtype=np.float32)
    for i, image in enumerate(images):
        scores[i] = classifier.classify(np.ascontiguousarray(image[..., ::-1])).scores
    return scores


def tflite_scorer(model_path: Path, input_range: str | None = None) -> Scorer:
    """Class scores of a TFLite model for RGB images, through the camera's code; the model is
    loaded (and checked against its card) once, here, however often the scorer runs."""
    classifier = Classifier(Model(model_path, threads=1), input_range=input_range)
    return functools.partial(classifier_scores, classifier)


def tflite_scores(model_path: Path, images: np.ndarray) -> np.ndarray:
    """Class scores of a TFLite model for RGB images, through the camera's code."""
    return tflite_scorer(model_path)(images)
