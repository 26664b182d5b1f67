"""Model configs: each fits its INT8 budget as a full-integer model, and each shipped model's card
matches the architecture its config builds today."""

import json
from pathlib import Path

import numpy as np
import pytest

from train.convert import non_integer_tensors, to_int8_tflite
from train.data import Split
from train.models import CONFIGS
from train.qat import quantize_aware

REPO_ROOT = Path(__file__).resolve().parents[2]
BUDGETED = [name for name, config in CONFIGS.items() if config.int8_budget_kib is not None]


def test_tiny_and_default_have_budgets() -> None:
    assert {"tiny", "default"} <= set(BUDGETED)
    assert CONFIGS["tiny"].int8_budget_kib == 96


@pytest.mark.parametrize("name", BUDGETED)
def test_config_converts_to_full_int8_within_its_budget(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    path = to_int8_tflite(
        quantize_aware(config.build()), Split(images, np.zeros(8, np.int64)), tmp_path / "m.tflite"
    )
    assert non_integer_tensors(path) == []
    assert path.stat().st_size <= config.int8_budget_kib * 1024


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shipped_card_matches_the_config_architecture(name: str) -> None:
    card = REPO_ROOT / "firmware_models" / f"{name}.card.json"
    if not card.exists():
        pytest.skip(f"{name} is not shipped")
    # A changed architecture would no longer load the shipped model's weights: retrain it.
    assert CONFIGS[name].build().count_params() == json.loads(card.read_text())["parameters"]
