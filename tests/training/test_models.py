"""Model configs: each fits its INT8 budget as a full-integer model, and each shipped model's card
matches the architecture its config builds today."""

import json
from pathlib import Path

import pytest
import tf_keras as keras
from train_command import run_train

from edge_cifar.interpreter import Model
from train.convert import non_integer_tensors
from train.models import build
from train.recipe import CONFIGS
from train.sketch import sketch_int8

REPO_ROOT = Path(__file__).resolve().parents[2]
BUDGETED = [name for name, config in CONFIGS.items() if config.int8_budget_kib is not None]


def test_tiny_and_default_have_budgets() -> None:
    assert {"tiny", "default"} <= set(BUDGETED)
    assert CONFIGS["tiny"].int8_budget_kib == 96


@pytest.mark.parametrize("name", BUDGETED)
def test_config_converts_to_full_int8_within_its_budget(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]
    path = sketch_int8(config, tmp_path / "m.tflite")
    assert non_integer_tensors(path) == []
    assert path.stat().st_size <= config.int8_budget_kib * 1024
    # The sketch holds the graph the trained model will: the multiply-adds the card will state.
    assert Model(path).multiply_adds() == keras_multiply_adds(build(config))


def keras_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of the convs and dense layers, counted from the Keras layer shapes."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            height, width, filters = layer.output.shape[1:]
            rows, cols = layer.kernel_size
            total += height * width * filters * rows * cols * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shipped_card_matches_the_config_architecture(name: str) -> None:
    card = REPO_ROOT / "firmware_models" / f"{name}.card.json"
    if not card.exists():
        pytest.skip(f"{name} is not shipped")
    # A changed architecture would no longer load the shipped model's weights: retrain it.
    assert build(CONFIGS[name]).count_params() == json.loads(card.read_text())["parameters"]


def test_sketch_command_writes_a_full_int8_file_per_config(tmp_path: Path) -> None:
    result = run_train("sketch", "tiny", "seed", "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in ("tiny", "seed"):
        path = tmp_path / f"{name}_sketch_int8.tflite"
        assert non_integer_tensors(path) == []
        assert Model(path).multiply_adds() == keras_multiply_adds(build(CONFIGS[name]))
