"""A run folder keeps the recipe it was started with and refuses to resume under another."""

import dataclasses
import json
from pathlib import Path

import pytest

from train.artifacts import RecipeMismatchError, RunFiles, claim_run
from train.recipe import Recipe


def test_a_new_run_records_its_recipe_and_resumes_under_the_same(tmp_path: Path) -> None:
    files = RunFiles(tmp_path / "default", "default")
    recipe = Recipe(epochs=90, qat_epochs=1, teacher="default")
    claim_run(files, recipe.as_dict())
    assert json.loads(files.recipe.read_text()) == recipe.as_dict()
    claim_run(files, Recipe(epochs=90, qat_epochs=1, teacher="default").as_dict())


@pytest.mark.parametrize(
    ("change", "named"),
    [({"cutout": 12}, "cutout 0 -> 12"), ({"teacher": None}, "teacher 'default' -> None")],
)
def test_a_different_recipe_is_refused_and_the_record_kept(
    tmp_path: Path, change: dict[str, object], named: str
) -> None:
    files = RunFiles(tmp_path / "default", "default")
    started = Recipe(epochs=90, teacher="default")
    claim_run(files, started.as_dict())
    with pytest.raises(RecipeMismatchError, match=named):
        claim_run(files, dataclasses.replace(started, **change).as_dict())
    assert json.loads(files.recipe.read_text()) == started.as_dict()


@pytest.mark.parametrize("content", [b'{"epochs": 9', b"[]", b"\xff\xfe"])
def test_an_unreadable_recipe_record_is_a_one_line_refusal(tmp_path: Path, content: bytes) -> None:
    files = RunFiles(tmp_path / "default", "default")
    files.root.mkdir()
    files.recipe.write_bytes(content)
    with pytest.raises(RecipeMismatchError, match="not a readable recipe"):
        claim_run(files, Recipe(epochs=90).as_dict())
    assert files.recipe.read_bytes() == content


def test_a_recipe_field_added_later_resumes_at_its_default_and_refuses_another(
    tmp_path: Path,
) -> None:
    # A run folder recorded before `camera_augment` existed.
    files = RunFiles(tmp_path / "default", "default")
    recorded = {k: v for k, v in Recipe(epochs=90).as_dict().items() if k != "camera_augment"}
    claim_run(files, recorded)
    defaults = Recipe().as_dict()
    claim_run(files, Recipe(epochs=90).as_dict(), defaults)
    with pytest.raises(RecipeMismatchError, match=r"camera_augment 0\.0 -> 0\.3"):
        claim_run(files, Recipe(epochs=90, camera_augment=0.3).as_dict(), defaults)
