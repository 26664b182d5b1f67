"""Where the default model is found, and what a model card beside a model says."""

import json
from pathlib import Path

import pytest

from edge_cifar import model_files
from edge_cifar.interpreter import ModelError
from edge_cifar.model_files import (
    DEFAULT_MODEL,
    card_accuracy,
    card_path,
    default_model_path,
    model_path,
)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    package, checkout = tmp_path / "package", tmp_path / "checkout"
    package.mkdir()
    checkout.mkdir()
    monkeypatch.setattr(model_files, "PACKAGE_MODELS_DIR", package)
    monkeypatch.setattr(model_files, "CHECKOUT_MODELS_DIR", checkout)
    return package, checkout


def test_the_default_model_is_the_int8_file_of_the_default_config():
    assert model_files.int8_filename() == f"{DEFAULT_MODEL}_int8.tflite"


def test_the_installed_package_copy_wins_over_the_checkout(folders):
    package, checkout = folders
    for folder in folders:
        (folder / f"{DEFAULT_MODEL}_int8.tflite").write_bytes(b"x")
    assert default_model_path() == package / f"{DEFAULT_MODEL}_int8.tflite"
    (package / f"{DEFAULT_MODEL}_int8.tflite").unlink()
    assert default_model_path() == checkout / f"{DEFAULT_MODEL}_int8.tflite"


def test_no_model_anywhere_is_one_line_naming_both_places(folders):
    with pytest.raises(ModelError) as raised:
        default_model_path()
    message = str(raised.value)
    assert "\n" not in message and all(str(folder) in message for folder in folders)


def write_card(folder, content):
    (folder / "seed.card.json").write_text(content)
    return folder / "seed_int8.tflite", folder / "seed_float.tflite"


def test_the_card_gives_the_accuracy_of_the_right_variant(tmp_path):
    int8, float_model = write_card(
        tmp_path, json.dumps({"int8_accuracy": 0.81, "float_tflite_accuracy": 0.83})
    )
    assert card_path(int8) == tmp_path / "seed.card.json" == card_path(float_model)
    assert card_accuracy(int8, quantized=True) == 0.81
    assert card_accuracy(float_model, quantized=False) == 0.83


@pytest.mark.parametrize(
    "content",
    ["", "{broken", "[1, 2]", '{"int8_accuracy": "high"}', '{"other": 1}'],
    ids=["empty", "not-json", "not-an-object", "not-a-number", "no-key"],
)
def test_an_unusable_card_gives_no_accuracy(tmp_path, content):
    int8, _ = write_card(tmp_path, content)
    assert card_accuracy(int8, quantized=True) is None


def test_no_card_gives_no_accuracy(tmp_path):
    assert card_path(tmp_path / "seed_int8.tflite") is None
    assert card_accuracy(tmp_path / "seed_int8.tflite", quantized=True) is None


def test_model_names_a_shipped_model_or_a_file(folders, tmp_path, monkeypatch) -> None:
    package, checkout = folders
    (checkout / "tiny_int8.tflite").write_bytes(b"x")
    (package / f"{DEFAULT_MODEL}_int8.tflite").write_bytes(b"x")
    assert model_path(Path("tiny")) == checkout / "tiny_int8.tflite"
    assert model_path(None) == package / f"{DEFAULT_MODEL}_int8.tflite"
    file = tmp_path / "mine.tflite"
    assert model_path(file) == file  # a path stays a path, existing or not: Model reports it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").write_bytes(b"a file named like a model wins")
    assert model_path(Path("tiny")) == Path("tiny")
    (package / "pi_int8.tflite").write_bytes(b"x")
    (tmp_path / "pi").mkdir()  # a folder does not: the checkout's pi/ scripts
    assert model_path(Path("pi")) == package / "pi_int8.tflite"
    with pytest.raises(ModelError, match=r"no shipped model nothing_int8\.tflite"):
        model_path(Path("nothing"))
