"""Quantization-aware fine-tuning of the trained float model with tfmot."""

from __future__ import annotations

import sys
from pathlib import Path

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from train.artifacts import RunFiles
from train.data import Split
from train.fit import run_phase, save_weights, seed_everything
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
    if files.qat_weights.exists():
        print(f"QAT model exists: {files.qat_weights}", file=sys.stderr)
        return files.qat_weights
    recipe = config.recipe
    seed_everything(recipe.seed)
    model = quantize_aware(load_float_model(config, files))
    run_phase(
        model,
        "qat",
        recipe=recipe,
        train=train,
        validation=validation,
        epochs=recipe.qat_epochs,
        peak_lr=recipe.qat_lr,
        warmup_epochs=0,
        files=files,
    )
    save_weights(model, files.qat_weights)
    return files.qat_weights
