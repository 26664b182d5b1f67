"""`make quantize QUICK=1` end to end, resume after a kill, the accuracy gate and bad input.

These run the real command line (`python -m train ...`, what the Makefile runs) in a subprocess.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import train_command

from edge_cifar.interpreter import Model
from train import data
from train.convert import non_integer_tensors
from train.labels import CLASS_NAMES
from train.recipe import DEFAULT_CONFIG, get_config
from train.run import QUICK_TEST

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
QUICK_MODEL = "default"


def run_train(*args: str, cifar10_dir: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return train_command.run_train(
        *args, env={**os.environ, "CIFAR10_DIR": str(cifar10_dir or "")}, **kwargs
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, cifar10_dir):
    """The shipped default config, QUICK, on two logical CPU devices under MirroredStrategy."""
    runs = tmp_path_factory.mktemp("runs")
    result = run_train(
        "quantize",
        *("--model", QUICK_MODEL, "--quick", "--devices", "2", "--runs-dir", str(runs)),
        cifar10_dir=cifar10_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return runs / f"{QUICK_MODEL}-quick", result


def test_quick_quantize_ships_a_full_integer_int8_model(quick_run):
    run_dir, _ = quick_run
    firmware = run_dir / "firmware_models"
    shipped = sorted(p.name for p in firmware.iterdir())
    assert shipped == [
        f"{QUICK_MODEL}.card.json",
        f"{QUICK_MODEL}.card.md",
        f"{QUICK_MODEL}_float.tflite",
        f"{QUICK_MODEL}_int8.tflite",
        f"{QUICK_MODEL}_uint8.tflite",
        "labels.txt",
    ]
    int8_path = firmware / f"{QUICK_MODEL}_int8.tflite"
    int8 = Model(int8_path)
    assert non_integer_tensors(int8_path) == []
    # The file's size depends on the architecture alone, so QUICK weights check the budget.
    assert int8_path.stat().st_size <= get_config(QUICK_MODEL).int8_budget_kib * 1024
    assert (int8.input.dtype, int8.output.dtype) == ("int8", "int8")
    # The pixel scaling 1/255 lives in the input's quantization: a pixel p arrives as p - 128.
    assert int8.input.scale == pytest.approx(1 / 255, rel=1e-3)
    assert int8.input.zero_point == -128
    assert Model(firmware / f"{QUICK_MODEL}_float.tflite").input.dtype == "float32"
    # Conversion wrote the metadata: every file names its model and carries CIFAR-10's labels.
    for variant in ("int8", "uint8", "float"):
        metadata = Model(firmware / f"{QUICK_MODEL}_{variant}.tflite").metadata
        assert metadata is not None and metadata.name == QUICK_MODEL
        assert metadata.labels == CLASS_NAMES


def test_reevaluating_the_shipped_int8_model_reproduces_its_card(quick_run, cifar10_dir):
    from train.scoring import tflite_scores

    run_dir, _ = quick_run
    firmware = run_dir / "firmware_models"
    card = json.loads((firmware / f"{QUICK_MODEL}.card.json").read_text())
    test = data.subset(data.load(cifar10_dir).test, QUICK_TEST)
    scores = tflite_scores(firmware / f"{QUICK_MODEL}_int8.tflite", test.images)
    assert float(np.mean(scores.argmax(axis=1) == test.labels)) == card["int8_accuracy"]
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert card["float_accuracy"] == evaluation["accuracy"]["float_keras"]
    assert card["test_images"] == QUICK_TEST
    assert card["command"] == f"make quantize MODEL={QUICK_MODEL} QUICK=1 DEVICES=2"


def test_the_card_records_robustness_cost_cpu_and_precision(quick_run):
    from train.precision import FLOAT32, cpu_description, float_training_precision
    from train.run import QUICK_TRAIN, QUICK_VALIDATION, ROBUSTNESS_QUICK_IMAGES

    run_dir, _ = quick_run
    card = json.loads((run_dir / "firmware_models" / f"{QUICK_MODEL}.card.json").read_text())
    robustness = json.loads((run_dir / "robustness.json").read_text())
    assert robustness["test_images"] == card["robustness"]["test_images"]
    assert robustness["test_images"] == ROBUSTNESS_QUICK_IMAGES
    for kind in ("float", "int8"):
        assert card["robustness"][f"{kind}_mca"] == robustness["models"][kind]["mca"]
        assert 0 < robustness["models"][kind]["mca"] < 1
    macs = Model(run_dir / f"{QUICK_MODEL}_int8.tflite").multiply_adds()
    cost = card["training_cost"]
    assert cost["multiply_adds_per_image"] == card["multiply_adds"] == macs
    recipe = get_config(QUICK_MODEL, quick=True).recipe
    assert recipe.all_train_images  # `default` ships from a final run: validation joins training
    trained_on = QUICK_TRAIN + QUICK_VALIDATION
    batch = recipe.batch_size
    assert cost["images_seen"] == (3 + 1) * (trained_on // batch) * batch  # 3 float + 1 QAT
    assert cost["total_flops"] == cost["own_flops"] == 6 * macs * cost["images_seen"]
    float_history = json.loads((run_dir / "float_history.json").read_text())
    qat_history = json.loads((run_dir / "qat_history.json").read_text())
    assert {e["dtype_policy"] for e in float_history} == {float_training_precision()}
    assert {e["dtype_policy"] for e in qat_history} == {FLOAT32}  # QAT always in float32
    assert card["training"]["precision"] == float_training_precision()
    assert card["training"]["cpu"] == cpu_description()
    assert (card["training"]["train_images"], card["training"]["validation_images"]) == (
        trained_on,
        0,
    )
    card_md = (run_dir / "firmware_models" / f"{QUICK_MODEL}.card.md").read_text()
    assert "mean corrupted accuracy" in card_md
    assert f"all {trained_on:,} training images" in card_md


def test_history_records_every_epoch_of_both_phases_on_both_devices(quick_run):
    run_dir, _ = quick_run
    float_history = json.loads((run_dir / "float_history.json").read_text())
    qat_history = json.loads((run_dir / "qat_history.json").read_text())
    assert [e["epoch"] for e in float_history] == [0, 1, 2]
    assert [e["phase"] for e in qat_history] == ["qat"]
    for metric in ("loss", "accuracy", "precision", "recall"):
        # A final run holds no validation images out, so it has no validation metrics.
        assert metric in float_history[-1] and f"val_{metric}" not in float_history[-1]
    assert {e["replicas"] for e in float_history + qat_history} == {2}
    # Training learns: the last epoch's loss is below the first's.
    assert float_history[-1]["loss"] < float_history[0]["loss"]


def test_accuracy_gate_fails_and_ships_nothing(quick_run, cifar10_dir):
    run_dir, _ = quick_run
    result = run_train(
        "evaluate",
        *("--model", QUICK_MODEL, "--quick"),
        "--runs-dir",
        str(run_dir.parent),
        "--max-drop",
        "-100",
        cifar10_dir=cifar10_dir,
    )
    assert result.returncode == 1
    assert "nothing shipped" in result.stderr.strip().splitlines()[-1]


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path, cifar10_dir):
    history = tmp_path / f"{DEFAULT_CONFIG}-quick" / "float_history.json"
    args = [sys.executable, "-m", "train", "fit", "--quick", "--runs-dir", str(tmp_path)]
    env = {**os.environ, "CIFAR10_DIR": str(cifar10_dir)}
    first = subprocess.Popen(
        args, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    while not (history.exists() and json.loads(history.read_text())):
        assert first.poll() is None, "training ended before its first epoch was saved"
        assert time.monotonic() < deadline
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    epoch_zero = json.loads(history.read_text())[0]
    assert not (tmp_path / f"{DEFAULT_CONFIG}-quick" / "float.h5").exists()

    resumed = run_train("fit", "--quick", "--runs-dir", str(tmp_path), cifar10_dir=cifar10_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from the checkpoint" in resumed.stderr
    entries = json.loads(history.read_text())
    assert [e["epoch"] for e in entries] == [0, 1, 2]
    assert entries[0] == epoch_zero  # the finished epoch was not trained again
    assert (tmp_path / f"{DEFAULT_CONFIG}-quick" / "float.h5").exists()


def test_resuming_under_another_recipe_is_one_line_and_trains_nothing(tmp_path, cifar10_dir):
    run_dir = tmp_path / f"{DEFAULT_CONFIG}-quick"
    run_dir.mkdir()
    recipe = get_config(DEFAULT_CONFIG, quick=True).recipe.as_dict()
    started = recipe | {"seed": recipe["seed"] + 1}
    (run_dir / "recipe.json").write_text(json.dumps(started))

    result = run_train("fit", "--quick", "--runs-dir", str(tmp_path), cifar10_dir=cifar10_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        lines[-1].startswith("error: ")
        and f"another recipe (seed {started['seed']} -> {recipe['seed']})" in lines[-1]
    )
    assert sorted(p.name for p in run_dir.iterdir()) == ["recipe.json"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "not a directory"),
        ("truncated", "not a whole number"),
        ("label10", "has label 10"),
        ("checksum", "checksum mismatch"),
    ],
)
def test_bad_data_is_one_line_and_leaves_firmware_untouched(tmp_path, cifar10_dir, damage, message):
    folder = tmp_path / "cifar"
    if damage != "missing":
        folder.mkdir()
        for source in cifar10_dir.iterdir():
            (folder / source.name).symlink_to(source)
        batch = folder / "data_batch_1.bin"
        content = bytearray(batch.read_bytes())
        batch.unlink()
        if damage == "truncated":
            content = content[:-7]
        elif damage == "label10":
            content[0] = 10
        else:
            content[5] ^= 1
        if damage != "checksum":
            (folder / "SHA256SUMS").unlink()
        batch.write_bytes(bytes(content))
    firmware = tmp_path / "firmware"
    result = run_train(
        "quantize",
        "--data-dir",
        str(folder),
        "--firmware-dir",
        str(firmware),
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not firmware.exists()
