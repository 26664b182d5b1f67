"""Quantization-aware fine-tuning of the trained float model with tfmot."""

from __future__ import annotations

from pathlib import Path

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from train.artifacts import RunFiles
from train.data import Split
from train.fit import Phase, train_phase
from train.models import ModelConfig


def load_float_model(config: ModelConfig, files: RunFiles) -> keras.Model:
    model = config.build()
    model.load_weights(str(files.float_weights))
    return model


def quantize_aware(model: keras.Model) -> keras.Model:
    """The model with fake-quantization of weights and activations inserted (Conv+BN folded)."""
    return tfmot.quantization.keras.quantize_model(model)


def load_qat_model(config: ModelConfig, files: RunFiles) -> keras.Model:
    with tfmot.quantization.keras.quantize_scope():
        model = quantize_aware(config.build())
        model.load_weights(str(files.qat_weights))
    return model


def train_qat(config: ModelConfig, train: Split, validation: Split, files: RunFiles) -> Path:
    """Fine-tune with fake quantization unless the QAT weights exist; returns the weights file."""
    recipe = config.recipe
    # No warm-up: QAT starts from a trained model, at a small step that only decays.
    phase = Phase("qat", recipe.qat_epochs, recipe.qat_lr, 0, files.qat_weights)
    return train_phase(
        phase,
        lambda: quantize_aware(load_float_model(config, files)),
        recipe=recipe,
        train=train,
        validation=validation,
        files=files,
    )
