"""A model's recommended "uncertain" threshold (TFLite metadata: the output tensor's
ScoreThresholdingOptions) is the default --min-score of `classify`, `camera` and `serve`;
--min-score overrides it, and a model without one is never uncertain by default."""

from __future__ import annotations

import json
import urllib.request

import pytest

from edge_cifar.interpreter import Model
from edge_cifar.metadata import read_metadata

from .support import REPO, SAMPLE_VIDEO, edge_cifar_process, wait_for_url, with_metadata_threshold

IMAGES = REPO / "samples" / "images"


@pytest.fixture(scope="module")
def scores(model_path) -> dict[str, float]:
    """Each sample image's best score under the shipped model (no threshold in it)."""
    from typer.testing import CliRunner

    from edge_cifar.cli import app

    out = CliRunner().invoke(app, ["classify", "--model", str(model_path), str(IMAGES), "--json"])
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert not any(line["uncertain"] for line in lines)  # no threshold: never uncertain
    return {line["path"]: line["score"] for line in lines}


@pytest.fixture(scope="module")
def threshold(scores) -> float:
    """Halfway between the two highest distinct scores: some images fall under it, not all."""
    top, second = sorted(set(scores.values()), reverse=True)[:2]
    return round((top + second) / 2, 6)


@pytest.fixture(scope="module")
def thresholded(model_path, threshold, tmp_path_factory):
    return with_metadata_threshold(
        model_path, tmp_path_factory.mktemp("threshold") / "thresholded_int8.tflite", threshold
    )


def test_the_metadata_threshold_is_read_and_shown_by_info(thresholded, threshold, cli):
    metadata = read_metadata(thresholded, thresholded.read_bytes())
    assert metadata is not None and metadata.score_threshold == pytest.approx(threshold)
    assert metadata.labels is not None and len(metadata.labels) == 10  # the rest still read
    assert Model(thresholded).metadata == metadata
    assert f"uncertain   below a score of {threshold:g}" in cli("info", thresholded).stdout
    facts = json.loads(cli("info", thresholded, "--json").stdout)
    assert facts["metadata"]["score_threshold"] == pytest.approx(threshold)


def test_classify_takes_the_models_threshold_unless_min_score_says(
    cli, thresholded, threshold, scores
):
    result = cli("classify", "--model", thresholded, IMAGES, "--json")
    assert result.exit_code == 0, result.stderr
    assert f"note: a best score below {threshold:g} is 'uncertain'" in result.stderr
    lines = result.json_lines()
    assert {line["path"]: line["score"] for line in lines} == scores
    for line in lines:
        assert line["uncertain"] == (line["score"] < threshold), line
        assert (line["label"] == "uncertain") == line["uncertain"]
    assert 0 < sum(line["uncertain"] for line in lines) < len(lines)
    overridden = cli("classify", "--model", thresholded, IMAGES, "--json", "--min-score", 0)
    assert not any(line["uncertain"] for line in overridden.json_lines())
    assert "note: a best score" not in overridden.stderr


def test_camera_takes_the_models_threshold(cli, thresholded, threshold):
    result = cli("camera", "--model", thresholded, "-d", SAMPLE_VIDEO, "--headless")
    lines = result.json_lines()
    assert result.exit_code == 0 and len(lines) > 10, result.stderr
    assert all(line["uncertain"] == (line["score"] < threshold) for line in lines)
    assert any(line["uncertain"] for line in lines)


def test_serve_takes_the_models_threshold_for_uploads(thresholded, scores, slow_video):
    path, score = min(scores.items(), key=lambda item: item[1])  # surely under the threshold
    process = edge_cifar_process("serve", "--model", thresholded, "-d", slow_video, "--port", 0)
    try:
        url = wait_for_url(process)
        request = urllib.request.Request(
            url + "classify", data=(REPO / path).read_bytes(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert answer["label"] == "uncertain" and answer["uncertain"] is True
        assert answer["score"] == score
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_a_threshold_that_is_no_probability_is_one_error_line(cli_process, model_path, tmp_path):
    broken = with_metadata_threshold(model_path, tmp_path / "broken_int8.tflite", 1.5)
    result = cli_process("classify", "--model", broken, IMAGES)
    result.assert_one_error_line(2, "score threshold 1.5 is not a probability")
