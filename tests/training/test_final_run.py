"""A final run (`Recipe.all_train_images`): every training image trains, none is held out, and
the run, its card and `compare` say so."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from train import data
from train.artifacts import RunFiles
from train.card import ModelCard, card_markdown
from train.experiments.compare import parse_variant
from train.fit import Phase, train_phase
from train.models import build
from train.recipe import get_config
from train.records import from_json

SHIPPED_CARD = Path(__file__).resolve().parents[2] / "firmware_models" / "default.card.json"


def image_label_keys(split: data.Split) -> np.ndarray:
    rows = np.concatenate([split.images.reshape(len(split), -1), split.labels[:, None]], axis=1)
    return np.ascontiguousarray(rows).view(f"V{rows.shape[1]}").ravel()


def test_the_validation_images_join_the_training_images(cifar10_dir: Path) -> None:
    dataset = data.load(cifar10_dir)
    train, validation = data.with_validation_joined(*data.stratified_split(dataset.train))
    assert (len(train), len(validation)) == (50000, 0)
    assert train.class_names == validation.class_names == dataset.train.class_names
    # The same (image, label) pairs in another order: nothing lost, nothing twice.
    assert np.array_equal(
        np.sort(image_label_keys(train)), np.sort(image_label_keys(dataset.train))
    )


@pytest.mark.parametrize("final", [True, False], ids=["final run", "validation held out"])
def test_a_phase_logs_validation_metrics_only_when_images_are_held_out(
    cifar10_dir: Path, tmp_path: Path, final: bool
) -> None:
    train, validation = data.stratified_split(
        data.subset(data.load(cifar10_dir).train, 300), validation_size=100
    )
    if final:
        train, validation = data.with_validation_joined(train, validation)
    config = get_config("tiny", quick=True)
    recipe = dataclasses.replace(config.recipe, epochs=1, warmup_epochs=1, teacher=None)
    files = RunFiles(tmp_path / "run", "tiny")
    phase = Phase("float", 1, recipe.peak_lr, 1, files.float_weights)
    train_phase(
        phase, lambda: build(config), recipe=recipe, train=train, validation=validation, files=files
    )
    assert files.float_weights.is_file()
    (entry,) = json.loads(files.history("float").read_text())
    assert "accuracy" in entry
    assert any(key.startswith("val_") for key in entry) != final


def test_the_card_says_no_image_was_held_out() -> None:
    card = json.loads(SHIPPED_CARD.read_text())
    card["training"].update(train_images=45000, validation_images=5000)
    assert "validation held out" in card_markdown(from_json(ModelCard, card, "card"))
    card["training"].update(train_images=50000, validation_images=0)
    text = card_markdown(from_json(ModelCard, card, "card"))
    assert "all 50,000 training images" in text and "validation held out" not in text


def test_compare_never_trains_on_the_images_it_scores() -> None:
    with pytest.raises(ValueError, match="not a recipe field"):
        parse_variant("final:all_train_images=1")
