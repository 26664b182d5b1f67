"""The robustness benchmark: the corruptions themselves, the mCA arithmetic, and the command on a
shipped model in its quick mode."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from train import data
from train.cli import app
from train.corruptions import CORRUPTIONS, SEVERITIES, by_name, corrupt
from train.robustness import HELD_OUT, ModelUnderTest, benchmark

REPO_ROOT = Path(__file__).resolve().parents[2]
# Saturation is not monotonic by design: severities 1-2 wash colours out, 3-5 over-saturate.
NOT_MONOTONIC = {"saturate"}


@pytest.fixture(scope="module")
def test_images(cifar10_dir: Path) -> data.Split:
    return data.subset(data.load(cifar10_dir, download=False).test, 50)


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.name)
def test_each_corruption_is_deterministic_and_grows_with_severity(corruption, test_images):
    clean = test_images.images
    distances = []
    for severity in SEVERITIES:
        corrupted = corrupt(clean, corruption, severity)
        assert corrupted.shape == clean.shape
        assert corrupted.dtype == np.uint8
        np.testing.assert_array_equal(corrupted, corrupt(clean, corruption, severity))
        distances.append(float(np.abs(corrupted.astype(float) - clean).mean()))
    assert distances[0] > 0, "severity 1 left the images unchanged"
    if corruption.name not in NOT_MONOTONIC:
        # Non-decreasing to a hundredth of a grey level: the published motion blur parameters
        # (6, 2) and (8, 2) differ only in a Gaussian tail beyond 6 pixels.
        assert np.all(np.diff(distances) > -0.01), distances
        assert distances[-1] > 1.5 * distances[0], distances


def test_another_seed_draws_other_noise(test_images):
    noise = by_name(["gaussian_noise"])[0]
    first = corrupt(test_images.images, noise, 3, seed=0)
    assert not np.array_equal(first, corrupt(test_images.images, noise, 3, seed=1))


def test_unknown_corruption_names_the_choices():
    with pytest.raises(KeyError, match="choose from gaussian_noise"):
        by_name(["fog", "rain"])


def test_mca_is_the_mean_over_every_cell(test_images):
    # A model that always answers class 0 scores the share of class-0 images in every cell.
    always_zero = ModelUnderTest("zero", lambda images: np.eye(10)[np.zeros(len(images), int)])
    chosen = by_name(["fog", "contrast"])
    result = benchmark([always_zero], test_images, chosen)
    share = float(np.mean(test_images.labels == 0))
    facts = result["models"]["zero"]
    assert facts["clean_accuracy"] == pytest.approx(share)
    assert facts["mca"] == pytest.approx(share)
    assert facts["mca_held_out"] == pytest.approx(share)  # fog is held out, contrast is not
    assert set(facts["accuracy"]) == {"fog", "contrast"}
    assert result["corruptions"]["fog"]["held_out"] and "fog" in HELD_OUT
    assert not result["corruptions"]["contrast"]["held_out"]


def test_robustness_command_benchmarks_shipped_models_side_by_side(cifar10_dir, tmp_path):
    models = [REPO_ROOT / "firmware_models" / f"{name}_int8.tflite" for name in ("tiny", "default")]
    outcome = CliRunner().invoke(
        app,
        [
            "robustness",
            *map(str, models),
            "--data-dir",
            str(cifar10_dir),
            "--quick",
            "--out-dir",
            str(tmp_path),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    result = json.loads((tmp_path / "robustness.json").read_text())
    assert result["test_images"] == 200
    assert set(result["models"]) == {"tiny_int8", "default_int8"}
    for facts in result["models"].values():
        assert facts["clean_accuracy"] > 0.75
        # Corruptions cost accuracy, but a CIFAR-10 model stays far above chance under them.
        assert 0.3 < facts["mca"] < facts["clean_accuracy"]
        assert len(facts["accuracy"]) == len(CORRUPTIONS)
    assert (tmp_path / "robustness.png").read_bytes().startswith(b"\x89PNG")
    assert "mCA, all corruptions" in (tmp_path / "robustness.md").read_text()


def test_robustness_command_refuses_a_corrupt_model_in_one_line(cifar10_dir, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model at all")
    outcome = CliRunner().invoke(
        app, ["robustness", str(broken), "--data-dir", str(cifar10_dir), "--quick"]
    )
    assert outcome.exit_code == 2
    assert outcome.output.count("\n") == 1 and outcome.output.startswith("error: ")


def test_a_reference_without_metadata_is_read_with_the_input_range_given(cifar10_dir, tmp_path):
    reference = (
        REPO_ROOT.parent / "shared" / "references" / "mlperf_tiny_pretrainedResnet_quant.tflite"
    )
    if not reference.is_file():
        pytest.skip(f"{reference} not here")
    arguments = ["robustness", str(reference), "--data-dir", str(cifar10_dir), "--quick"]
    arguments += ["--corruption", "contrast", "--out-dir", str(tmp_path)]
    assert CliRunner().invoke(app, [*arguments, "--input-range", "0..255"]).exit_code == 0
    raw = json.loads((tmp_path / "robustness.json").read_text())["models"]
    assert raw["mlperf_tiny_pretrainedResnet_quant"]["clean_accuracy"] > 0.8
    # Fed the 0..1 convention instead, the same model answers near chance: the flag matters.
    assert CliRunner().invoke(app, arguments).exit_code == 0
    wrong = json.loads((tmp_path / "robustness.json").read_text())["models"]
    assert wrong["mlperf_tiny_pretrainedResnet_quant"]["clean_accuracy"] < 0.3
