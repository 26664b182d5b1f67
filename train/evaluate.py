"""Float Keras, float TFLite and INT8 TFLite on the test set, side by side.

The TFLite models run through `edge_cifar.Classifier`, the code the camera runs, fed each test image
as the BGR frame OpenCV would deliver.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import tf_keras as keras

from edge_cifar.preprocess import PIXEL_SCALE
from train.artifacts import RunFiles, write_atomic, write_npz
from train.data import Split
from train.metrics import classification_report
from train.robustness import ModelUnderTest, benchmark
from train.scoring import Scorer, tflite_scorer, tflite_scores

MODEL_KINDS = ("float_keras", "float_tflite", "int8_tflite")


# Pixels a Keras scoring batch holds: 500 CIFAR-10 images, 10 photos at 224 px (a fixed 500
# photos at 224 px held gigabytes of activations: train/NOTES.md, photo folders).
BATCH_PIXELS = 500 * 32 * 32


def keras_scores(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Class scores of the float Keras model, a batch at a time (converted to its 0..1 pixels
    batch by batch, so a test set of large photos is never all float at once)."""
    batch = max(1, BATCH_PIXELS // (images.shape[1] * images.shape[2]))
    return np.concatenate(
        [
            np.asarray(
                model.predict_on_batch(images[i : i + batch].astype(np.float32) * PIXEL_SCALE)
            )
            for i in range(0, len(images), batch)
        ]
    )


def evaluate(float_model: keras.Model, files: RunFiles, test: Split) -> dict[str, Any]:
    """Score the three models, save their scores (predictions.npz) and metrics (evaluation.json)."""
    scores = {
        "float_keras": keras_scores(float_model, test.images),
        "float_tflite": tflite_scores(files.float_model, test.images),
        "int8_tflite": tflite_scores(files.int8_model, test.images),
    }
    predictions = {kind: s.argmax(axis=1) for kind, s in scores.items()}
    reports = {
        kind: classification_report(test.labels, p, test.class_names)
        for kind, p in predictions.items()
    }
    int8_drop = reports["float_keras"]["accuracy"] - reports["int8_tflite"]["accuracy"]
    result = {
        "test_images": len(test),
        "class_names": list(test.class_names),
        "accuracy": {kind: reports[kind]["accuracy"] for kind in MODEL_KINDS},
        "int8_drop_pt": round(100 * int8_drop, 4),
        "int8_agreement_with_float_keras": float(
            np.mean(predictions["int8_tflite"] == predictions["float_keras"])
        ),
        "int8_agreement_with_float_tflite": float(
            np.mean(predictions["int8_tflite"] == predictions["float_tflite"])
        ),
        "reports": reports,
    }
    write_npz(
        files.predictions, labels=test.labels, **{f"{k}_scores": v for k, v in scores.items()}
    )
    write_atomic(files.evaluation, json.dumps(result, indent=1).encode())
    print(summary_line(result), file=sys.stderr)
    return result


def summary_line(result: dict[str, Any]) -> str:
    accuracy = result["accuracy"]
    percent = {kind: f"{100 * value:.2f}%" for kind, value in accuracy.items()}
    return (
        f"test accuracy on {result['test_images']} images: float Keras {percent['float_keras']}, "
        f"float TFLite {percent['float_tflite']}, INT8 {percent['int8_tflite']} "
        f"(drop {result['int8_drop_pt']:.2f} pt, INT8/float agreement "
        f"{100 * result['int8_agreement_with_float_keras']:.2f}%)"
    )


def evaluate_robustness(
    files: RunFiles,
    test: Split,
    references: Mapping[str, Scorer],
    kinds: tuple[str, ...] = ("float", "int8"),
) -> dict[str, Any]:
    """The run's TFLite models (`kinds` of them), and any reference models beside them, under the
    robustness benchmark's corruptions, through the camera's code (robustness.json)."""
    paths = {"float": files.float_model, "int8": files.int8_model}
    models = [ModelUnderTest(kind, tflite_scorer(paths[kind])) for kind in kinds]
    models += [ModelUnderTest(name, scorer) for name, scorer in references.items()]
    result = benchmark(models, test)
    write_atomic(files.robustness, json.dumps(result, indent=1).encode())
    mca = ", ".join(f"{kind} {100 * result['models'][kind]['mca']:.2f}%" for kind in kinds)
    print(
        f"mean accuracy under {len(result['corruptions'])} corruptions x 5 severities on "
        f"{result['test_images']} images: {mca}",
        file=sys.stderr,
    )
    return result
