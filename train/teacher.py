"""Ship a float teacher (a config with `float_only`): its float TFLite file and its card go into
firmware_models/, where a student's recipe finds it by name (train/distill.py).

A teacher never runs on a device, so it has no QAT, no INT8 file, no robustness benchmark and no
report. Its card states what a student needs to know: how accurate the scores it gives are (the
mean over each image and its mirror, as distillation scores them) and what training it cost,
which every student's card then counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_cifar.interpreter import Model
from train.artifacts import RunFiles
from train.card import ModelCard, card_files, laid_out
from train.convert import to_float_tflite
from train.data import Split
from train.distill import two_view_scores
from train.evaluate import keras_scores
from train.metadata import ModelDescription, stamp
from train.qat import load_float_model
from train.recipe import ModelConfig
from train.run import Provenance
from train.ship import shared_facts, write_all


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(scores.argmax(axis=1) == labels))


def teacher_card(
    config: ModelConfig, files: RunFiles, test: Split, provenance: Provenance
) -> ModelCard:
    """Convert the trained float model, score it on `test` (Keras; the TFLite file alone and over
    image and mirror, from one pass over each view), and describe it."""
    model = load_float_model(config, files)
    stamp(
        to_float_tflite(model, files.float_model),
        ModelDescription(config.name, config.description, test.class_names),
    )
    shared = shared_facts(
        config,
        files,
        provenance,
        labels=list(test.class_names),
        parameters=int(model.count_params()),
        multiply_adds=Model(files.float_model).multiply_adds(),
    )
    plain, two_view = two_view_scores(files.float_model, test.images)
    card = ModelCard(
        **shared,
        float_only=True,
        test_images=len(test),
        float_accuracy=_accuracy(keras_scores(model, test.images), test.labels),
        float_tflite_accuracy=_accuracy(plain, test.labels),
        two_view_accuracy=_accuracy(two_view, test.labels),
    )
    return laid_out(card)


def ship_teacher(card: ModelCard, files: RunFiles, firmware_dir: Path) -> list[Path]:
    """Write the teacher's float file and its card into `firmware_dir`, each renamed into place."""
    return write_all(
        firmware_dir, {card.float_model.file: files.float_model.read_bytes(), **card_files(card)}
    )
