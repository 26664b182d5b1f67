"""Recipe comparisons: variants parsed into typed recipe changes, trained and scored on
validation images, their results accumulating in one table."""

import json

import pytest
from typer.testing import CliRunner

from train.cli import app
from train.experiments.compare import parse_variant


def test_a_variant_converts_each_value_to_its_recipe_field_type():
    name, changes = parse_variant("camera:camera_augment=0.25,cutout=12,teacher=none")
    assert name == "camera"
    assert changes == {"camera_augment": 0.25, "cutout": 12, "teacher": None}
    assert isinstance(changes["cutout"], int)
    assert parse_variant("base") == ("base", {})


def test_an_unknown_field_names_the_known_ones():
    with pytest.raises(ValueError, match="choose from epochs"):
        parse_variant("x:epoch=3")


@pytest.mark.slow
def test_compare_trains_each_variant_and_tabulates_validation_scores(cifar10_dir, tmp_path):
    arguments = [
        "compare",
        "base",
        "camera:camera_augment=0.5",
        "--model",
        "tiny",
        "--data-dir",
        str(cifar10_dir),
        "--train-images",
        "500",
        "--validation-images",
        "100",
        "--epochs",
        "1",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--out-dir",
        str(tmp_path / "out"),
    ]
    # tiny distils from the shipped default: 500 images keep its scoring pass short.
    outcome = CliRunner().invoke(app, arguments)
    assert outcome.exit_code == 0, outcome.output
    results = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert set(results) == {"base", "camera"}
    assert results["camera"]["changes"] == {"epochs": 1, "camera_augment": 0.5}
    for result in results.values():
        assert result["train_images"] < 510 and result["validation_images"] == 100
        assert 0.0 <= result["mca"] <= 1.0 and result["epochs"] == 1
    table = (tmp_path / "out" / "tiny.md").read_text()
    assert "| camera | epochs=1, camera_augment=0.5 |" in table
