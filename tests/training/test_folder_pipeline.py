"""An image folder on the CIFAR-10 backbone end to end: `python -m train --images DIR --backbone
cifar --name parts quantize --quick` (what `make quantize QUICK=1 DATA=DIR NAME=parts
BACKBONE=cifar` runs) trains, ships, and `edge-cifar classify` with
the shipped file alone names the folder's classes."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from train_command import run_train

from edge_cifar.interpreter import Model
from train import data
from train.convert import non_integer_tensors
from train.labels import CLASS_NAMES

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
# Folder names unlike CIFAR-10's, so a runtime that printed CIFAR-10's names would fail here.
CLASSES = {"planes": "airplane", "frogs": "frog", "lorries": "truck"}
PER_CLASS, HELD_OUT = 200, 10
SIDE = 64


def write_images(folder: Path, images: np.ndarray, start: int) -> None:
    """CIFAR-10 test images at 64 x 64, PNG and JPEG in turn (RGB in, BGR on disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, rgb in enumerate(images, start=start):
        bgr = cv2.resize(rgb[..., ::-1], (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
        suffix = ".png" if index % 2 else ".jpg"
        assert cv2.imwrite(str(folder / f"{index:04d}{suffix}"), bgr)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, cifar10_dir):
    root = tmp_path_factory.mktemp("folder")
    images, held_out = root / "parts", root / "held_out"
    test = data.load(cifar10_dir).test
    for folder_name, cifar_name in CLASSES.items():
        members = test.images[test.labels == CLASS_NAMES.index(cifar_name)]
        write_images(images / folder_name, members[:PER_CLASS], 0)
        write_images(held_out / folder_name, members[PER_CLASS : PER_CLASS + HELD_OUT], PER_CLASS)
    # One grayscale and one 16-bit file among them.
    planes = images / "planes"
    gray = cv2.imread(str(planes / "0001.png"), cv2.IMREAD_GRAYSCALE)
    assert cv2.imwrite(str(planes / "0001.png"), gray)
    deep = cv2.imread(str(planes / "0003.png")).astype(np.uint16) * 257
    assert cv2.imwrite(str(planes / "0003.png"), deep)
    assert cv2.imread(str(planes / "0003.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16

    runs, firmware = root / "runs", root / "firmware_models"
    command = ["--images", str(images), "--backbone", "cifar", "--name", "parts"]
    command += ["quantize", "--quick"]
    outputs = ["--runs-dir", str(runs), "--firmware-dir", str(firmware)]
    result = run_train(*command, *outputs)
    assert result.returncode == 0, result.stderr[-3000:]
    return runs / "parts-quick", firmware, held_out


def test_the_folder_model_ships_full_int8_with_its_card(folder_run):
    run_dir, firmware, _ = folder_run
    int8_path = firmware / "parts_int8.tflite"
    assert non_integer_tensors(int8_path) == []
    model = Model(int8_path)
    assert list(model.input.shape) == [1, SIDE, SIDE, 3] and list(model.output.shape) == [1, 3]
    card = json.loads((firmware / "parts.card.json").read_text())
    assert card["labels"] == sorted(CLASSES)
    assert card["test_images"] == 3 * round(0.15 * PER_CLASS)
    assert "conv weights of the shipped `default_float.tflite`" in card["start"]
    assert card["command"].startswith("make quantize DATA=") and "NAME=parts" in card["command"]
    assert "BACKBONE=cifar" in card["command"]
    # QUICK schedule, but a CIFAR-10 start: far better than the 1/3 of guessing.
    assert card["int8_accuracy"] > 0.6
    assert json.loads((run_dir / "split.json").read_text())["class_names"] == sorted(CLASSES)
    assert (run_dir / "report" / "index.md").is_file()


def test_classify_names_the_folders_classes_from_the_model_file_alone(folder_run):
    _, firmware, held_out = folder_run
    model = firmware / "parts_int8.tflite"
    alone = held_out.parent / "alone"
    alone.mkdir()
    (alone / "parts_int8.tflite").write_bytes(model.read_bytes())  # no card, no labels beside it
    folders = [str(held_out / name) for name in CLASSES]
    classify = ["classify", "--json", "--model", str(alone / "parts_int8.tflite"), *folders]
    result = subprocess.run(
        [sys.executable, "-m", "edge_cifar", *classify],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(CLASSES) * HELD_OUT
    assert {c["label"] for line in lines for c in line["top_k"]} <= set(CLASSES)
    right = sum(Path(line["path"]).parent.name == line["label"] for line in lines)
    assert right > len(lines) / 2
