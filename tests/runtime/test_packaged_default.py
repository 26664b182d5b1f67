"""The packaged default model (`pi`), as a user without --model or $EDGE_CIFAR_MODEL meets it. The
other runtime tests name `default` in $EDGE_CIFAR_MODEL (conftest.py)."""

from __future__ import annotations

import pytest

from edge_cifar.interpreter import Model, ModelError
from edge_cifar.model_files import DEFAULT_MODEL, shipped_model_path
from edge_cifar.options import MODEL_VARIABLE

from .support import REPO

CAT = REPO / "samples" / "images" / "0000_cat.png"


@pytest.fixture
def packaged_default(monkeypatch) -> float:
    """No model named anywhere; the packaged default's recommended threshold."""
    try:
        metadata = Model(shipped_model_path(DEFAULT_MODEL)).metadata
    except ModelError as error:
        pytest.skip(f"the packaged default {DEFAULT_MODEL} does not load here: {error}")
    monkeypatch.delenv(MODEL_VARIABLE, raising=False)
    assert metadata is not None and metadata.score_threshold is not None
    return metadata.score_threshold


def test_without_a_model_named_the_packaged_default_classifies_with_its_threshold(
    cli, packaged_default
):
    result = cli("classify", CAT, "--json")
    assert result.exit_code == 0, result.stderr
    # Only the packaged default's metadata carries this threshold: it is the model that ran.
    assert result.stderr.splitlines() == [
        f"note: a best score below {packaged_default:g} is 'uncertain' "
        "(the model's metadata; --min-score overrides)"
    ]
    [line] = result.json_lines()
    assert line["uncertain"] == (line["score"] < packaged_default)


def test_the_environment_names_another_model_and_model_overrides_it(cli, monkeypatch):
    monkeypatch.setenv(MODEL_VARIABLE, "tiny")
    assert "note: a best score" not in cli("classify", CAT).stderr  # tiny carries none
    named = cli("classify", CAT, "--model", DEFAULT_MODEL)
    assert named.exit_code == 0 and "note: a best score" in named.stderr


def test_the_threshold_note_never_comes_before_a_bad_input_s_one_line(
    cli_process, packaged_default, tmp_path
):
    cli_process("camera", "--device", "97").assert_one_error_line(2, "camera")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    cli_process("classify", broken).assert_one_error_line(2, "broken.png")
