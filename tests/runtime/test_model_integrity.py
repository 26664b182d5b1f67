"""A model file beside its card must be the file the card records: a corrupt copy still loads and
runs and gives wrong scores without any error, so the runtime refuses it in one line."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from edge_cifar.classifier import Classifier
from edge_cifar.interpreter import Model, ModelError

from .support import REPO


@pytest.fixture
def shipped_copy(model_path, tmp_path):
    """The shipped INT8 model and its card, copied into a folder of their own."""
    for name in (model_path.name, "default.card.json"):
        shutil.copy(model_path.with_name(name), tmp_path / name)
    return tmp_path / model_path.name


def flip_a_byte(path, offset):
    content = bytearray(path.read_bytes())
    content[offset] ^= 0x01
    path.write_bytes(bytes(content))


MODEL_KEYS = ("int8_model", "uint8_model", "float_model")
# Files over this size are never tracked: such a float file (a backbone model's) stays where it
# was built, and its card still records it.
MAX_TRACKED_BYTES = 8_000_000


def test_every_shipped_model_file_matches_the_sha256_its_card_records():
    cards = sorted((REPO / "firmware_models").glob("*.card.json"))
    assert cards
    for card_file in cards:
        card = json.loads(card_file.read_text())
        # A float teacher (train/teacher.py) ships its float file alone.
        keys = ("float_model",) if card.get("float_only") else MODEL_KEYS
        for key in keys:
            entry = card[key]
            path = card_file.parent / entry["file"]
            if key == "float_model" and entry["bytes"] > MAX_TRACKED_BYTES and not path.exists():
                continue
            content = path.read_bytes()
            assert hashlib.sha256(content).hexdigest() == entry["sha256"], entry["file"]
            assert len(content) == entry["bytes"]


def test_a_flipped_byte_in_a_model_beside_its_card_is_refused_in_one_line(
    cli_process, shipped_copy
):
    # A byte in the middle of the weights: the file still loads and runs in LiteRT.
    flip_a_byte(shipped_copy, shipped_copy.stat().st_size // 2)
    for command in (
        ("classify", "--model", shipped_copy, REPO / "samples" / "images"),
        ("bench", shipped_copy, "--runs", 1),
        ("info", shipped_copy),
    ):
        cli_process(*command).assert_one_error_line(
            2, f"{shipped_copy}: SHA-256 differs from the one in default.card.json"
        )


def test_the_intact_copy_loads_and_the_same_bytes_without_a_card_are_not_checked(shipped_copy):
    Model(shipped_copy)
    flip_a_byte(shipped_copy, shipped_copy.stat().st_size // 2)
    with pytest.raises(ModelError, match="SHA-256 differs"):
        Model(shipped_copy)
    (shipped_copy.parent / "default.card.json").unlink()
    Model(shipped_copy)  # a file without a card is the user's own: nothing to check against


def test_a_renamed_changed_copy_beside_the_card_is_refused(shipped_copy):
    """The check is keyed on what the file is (its metadata's model name), not only its name."""
    renamed = shipped_copy.with_name("mine.tflite")
    renamed.write_bytes(shipped_copy.read_bytes())
    Model(renamed)  # the shipped bytes under any name: one of the files its card records
    flip_a_byte(renamed, renamed.stat().st_size // 2)
    with pytest.raises(ModelError, match="metadata says it is model 'default', but its SHA-256"):
        Model(renamed)
    (shipped_copy.parent / "default.card.json").unlink()
    Model(renamed)  # no card beside it: the user's own file, nothing to check against


def test_an_unreadable_card_beside_a_model_is_refused(shipped_copy):
    (shipped_copy.parent / "default.card.json").write_text("{broken")
    with pytest.raises(ModelError, match="unreadable"):
        Model(shipped_copy)


@pytest.mark.parametrize("model", ["default", "tiny", "seed"])
def test_the_uint8_file_gives_exactly_the_int8_files_scores(model, cifar_test):
    """The uint8-interface file is the INT8 model with an exact requantize at each end."""
    folder = REPO / "firmware_models"
    int8 = Classifier(Model(folder / f"{model}_int8.tflite"))
    uint8 = Classifier(Model(folder / f"{model}_uint8.tflite"))
    assert (uint8.model.input.dtype, uint8.model.output.dtype) == ("uint8", "uint8")
    for image in cifar_test.images[:200]:
        frame = np.ascontiguousarray(image[..., ::-1])
        np.testing.assert_array_equal(int8.classify(frame).scores, uint8.classify(frame).scores)
