"""A float teacher (`ModelConfig.float_only`): it ships a float file and a card, nothing INT8; the
scores it gives a student's images average each image with its mirror, and every student's card
counts both views in its cost."""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from train_command import run_train

from edge_cifar.interpreter import Model
from edge_cifar.model_files import CHECKOUT_MODELS_DIR
from train import data
from train.artifacts import RunFiles
from train.card import DataSource, ModelCard, card_json, card_markdown
from train.cost import teacher_cost
from train.data import Split
from train.distill import teacher_path, teacher_scores
from train.fit import Phase, train_phase
from train.models import build
from train.recipe import CONFIGS, get_config
from train.run import Provenance
from train.ship import restamp
from train.teacher import ship_teacher, teacher_card


@pytest.fixture(scope="module")
def dataset(cifar10_dir: Path) -> data.Cifar10:
    return data.load(cifar10_dir)


@pytest.fixture(scope="module")
def shipped_teacher(
    dataset: data.Cifar10, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModelCard, Path]:
    """`tiny`'s net as a float-only config, one epoch on 300 images, shipped into a folder."""
    root = tmp_path_factory.mktemp("teacher")
    train, validation = data.stratified_split(data.subset(dataset.train, 300), validation_size=100)
    config = dataclasses.replace(get_config("tiny", quick=True), name="mini", float_only=True)
    recipe = dataclasses.replace(config.recipe, epochs=1, warmup_epochs=1)
    config = dataclasses.replace(config, recipe=recipe)
    files = RunFiles(root / "run", "mini")
    train_phase(
        Phase("float", 1, recipe.peak_lr, 1, files.float_weights),
        lambda: build(config),
        recipe=recipe,
        train=train,
        validation=validation,
        files=files,
    )
    card = teacher_card(
        config,
        files,
        data.subset(dataset.test, 200),
        Provenance(
            "make quantize MODEL=mini",
            DataSource("CIFAR-10", dataset.sha256),
            train_images=len(train),
            validation_images=len(validation),
        ),
    )
    ship_teacher(card, files, root / "firmware")
    return card, root / "firmware"


def test_the_teacher_config_is_float_only() -> None:
    assert CONFIGS["teacher"].float_only
    assert not any(CONFIGS[name].float_only for name in ("seed", "default", "tiny"))


def test_a_teacher_ships_its_float_file_and_card_and_nothing_int8(
    shipped_teacher: tuple[ModelCard, Path],
) -> None:
    card, folder = shipped_teacher
    assert sorted(p.name for p in folder.iterdir()) == [
        "mini.card.json",
        "mini.card.md",
        "mini_float.tflite",
    ]
    assert (folder / "mini.card.json").read_text() == card_json(card)
    written = json.loads((folder / "mini.card.json").read_text())
    content = (folder / "mini_float.tflite").read_bytes()
    assert card.float_model.sha256 == hashlib.sha256(content).hexdigest()
    model = Model(folder / "mini_float.tflite")
    assert model.input.dtype == "float32"
    assert card.multiply_adds == model.multiply_adds()
    assert card.float_only and "int8_model" not in written and "robustness" not in written
    for accuracy in (card.float_accuracy, card.float_tflite_accuracy, card.two_view_accuracy):
        assert accuracy is not None and 0.0 < accuracy <= 1.0
    # Keras and its TFLite file score the same images alike.
    assert abs(card.float_accuracy - card.float_tflite_accuracy) <= 0.02
    cost = card.training_cost
    assert cost is not None and cost.teacher is None
    assert cost.images_seen == 192  # one epoch of 200 images in whole batches of 64
    assert cost.total_flops == 6 * model.multiply_adds() * 192


def test_a_teacher_card_reads_as_a_float_model(shipped_teacher: tuple[ModelCard, Path]) -> None:
    card, folder = shipped_teacher
    text = (folder / "mini.card.md").read_text()
    assert text == card_markdown(card)
    assert "image and mirror" in text
    assert f"**{100 * (card.two_view_accuracy or 0):.2f}%**" in text
    assert "INT8" not in text and "QAT" not in text and "report" not in text


def test_restamping_a_teacher_rewrites_its_float_file_only(
    shipped_teacher: tuple[ModelCard, Path], tmp_path: Path
) -> None:
    _, folder = shipped_teacher
    copy = shutil.copytree(folder, tmp_path / "firmware")
    written = restamp(copy / "mini.card.json")
    names = ["mini.card.json", "mini.card.md", "mini_float.tflite"]
    assert sorted(p.name for p in written) == names
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in folder.iterdir())


def test_a_teacher_scores_an_image_and_its_mirror_alike(
    dataset: data.Cifar10, tmp_path: Path
) -> None:
    images, labels = dataset.test.images[:12], dataset.test.labels[:12]
    teacher = teacher_path("seed")
    plain = teacher_scores(teacher, Split(images, labels), tmp_path / "plain.npz")
    mirrored = teacher_scores(
        teacher, Split(np.ascontiguousarray(images[:, :, ::-1]), labels), tmp_path / "mirror.npz"
    )
    np.testing.assert_allclose(plain, mirrored, atol=1e-6)


def test_a_students_cost_counts_both_views_of_each_image() -> None:
    float_model = CHECKOUT_MODELS_DIR / "seed_float.tflite"
    cost = teacher_cost("seed", float_model, training_flops=1000, train_images=50_000)
    macs = Model(float_model).multiply_adds()
    assert cost.scoring_flops == 2 * 2 * macs * 50_000
    assert cost.flops == 1000 + cost.scoring_flops


@pytest.mark.parametrize("step", ["qat", "convert", "evaluate"])
def test_a_teacher_has_no_int8_steps(step: str, cifar10_dir: Path, tmp_path: Path) -> None:
    result = run_train(
        step, "--model", "teacher", "--quick", "--data-dir", str(cifar10_dir),
        "--runs-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: teacher is a float teacher") and "Traceback" not in result.stderr
