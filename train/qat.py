"""Quantization-aware fine-tuning of the trained float model with tfmot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from train.artifacts import RunFiles
from train.data import Split
from train.fit import Phase, train_phase
from train.models import build
from train.recipe import ModelConfig


def load_float_model(config: ModelConfig, files: RunFiles) -> keras.Model:
    model = build(config)
    model.load_weights(str(files.float_weights))
    return model


class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):  # type: ignore[misc]
    """Fake-quantizes a weightless layer's output, per tensor: how TFLite's int8 MUL stores its
    result. tfmot's registry has no entry for `Multiply` (a squeeze-and-excitation gate)."""

    def get_weights_and_quantizers(self, layer: Any) -> list[Any]:
        return []

    def get_activations_and_quantizers(self, layer: Any) -> list[Any]:
        return []

    def set_quantize_weights(self, layer: Any, quantize_weights: list[Any]) -> None:
        pass

    def set_quantize_activations(self, layer: Any, quantize_activations: list[Any]) -> None:
        pass

    def get_output_quantizers(self, layer: Any) -> list[Any]:
        return [
            tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]

    def get_config(self) -> dict[str, Any]:
        return {}


def _annotated(layer: keras.layers.Layer) -> keras.layers.Layer:
    config = OutputQuantizeConfig() if isinstance(layer, keras.layers.Multiply) else None
    return tfmot.quantization.keras.quantize_annotate_layer(layer, config)


def _scope() -> Any:
    return tfmot.quantization.keras.quantize_scope({"OutputQuantizeConfig": OutputQuantizeConfig})


def quantize_aware(model: keras.Model) -> keras.Model:
    """The model with fake-quantization of weights and activations inserted (Conv+BN folded):
    tfmot's `quantize_model`, with `OutputQuantizeConfig` for the layers its registry lacks."""
    annotated = keras.models.clone_model(model, clone_function=_annotated)
    with _scope():
        return tfmot.quantization.keras.quantize_apply(annotated)


def load_qat_model(config: ModelConfig, files: RunFiles) -> keras.Model:
    with _scope():
        model = quantize_aware(build(config))
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
