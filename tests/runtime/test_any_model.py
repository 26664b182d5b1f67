"""Any TFLite model in: bench and info take any model, classify takes any image classifier, with
its labels and input meaning from its metadata, else the flags, else a stated default."""

import json
import shutil

import numpy as np
import pytest

from edge_cifar.classifier import Classifier, softmax
from edge_cifar.interpreter import Model
from train.labels import CLASS_NAMES

from .support import DATA, REPO, TEST_MODEL, write_png

FIVE, GRAY, TWO_OUTPUTS = (
    DATA / "five_classes.tflite",
    DATA / "gray_input.tflite",
    DATA / "two_outputs.tflite",
)


@pytest.fixture
def image(tmp_path):
    return write_png(
        tmp_path / "frame.png", np.random.default_rng(1).integers(0, 256, (48, 64, 3), np.uint8)
    )


def test_bench_times_invoke_alone_on_a_model_that_is_no_image_classifier(cli):
    result = cli("bench", TWO_OUTPUTS, "--runs", 3, "--warmup", 1, "--json")
    assert result.exit_code == 0, result.stderr
    model = json.loads(result.stdout)["models"][0]
    assert model["invoke_ms"]["runs"] == 3
    assert model["stages_ms"] is None and model["frame_ms"] is None
    assert sorted(len(o["shape"]) for o in model["outputs"]) == [2, 4]
    text = cli("bench", TWO_OUTPUTS, "--runs", 2, "--warmup", 0)
    assert "not an image classifier: invoke on random inputs only" in text.stdout


def test_info_lists_every_input_and_output_and_says_what_kind_of_model(cli):
    facts = json.loads(cli("info", TWO_OUTPUTS, "--json").stdout)
    assert len(facts["inputs"]) == 1 and len(facts["outputs"]) == 2
    assert facts["image_classifier"] is False and facts["metadata"] is None
    text = cli("info", TWO_OUTPUTS).stdout
    assert "not an image classifier: expected one input and one output" in text
    assert "metadata none" in text


def test_random_inputs_are_deterministic_and_of_each_inputs_type():
    model = Model(TWO_OUTPUTS)
    first, again = model.random_inputs(seed=3), model.random_inputs(seed=3)
    assert [t.dtype for t in first] == [np.dtype(model.input.dtype)]
    assert first[0].shape == model.input.shape
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert len(np.unique(first[0])) > 100  # the int8 range is used, not a constant


def labels_of(result):
    return {label["label"] for line in result.json_lines() for label in line["top_k"]}


def test_a_model_without_labels_reports_class_indices(cli, image):
    result = cli("classify", "--model", FIVE, image, "--json", "--top-k", 5)
    assert result.exit_code == 0, result.stderr
    assert labels_of(result) == {"0", "1", "2", "3", "4"}


def test_labels_come_from_the_labels_flag(cli, image, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("ant\nbee\ncow\ndoe\neel\n")
    result = cli("classify", "--model", FIVE, "--labels", names, image, "--json", "--top-k", 5)
    assert labels_of(result) == {"ant", "bee", "cow", "doe", "eel"}


def test_labels_come_from_a_labels_txt_beside_the_model(cli, image, tmp_path):
    model = tmp_path / "five.tflite"
    shutil.copy(FIVE, model)
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\ne\n")
    result = cli("classify", "--model", model, image, "--json", "--top-k", 5)
    assert labels_of(result) == {"a", "b", "c", "d", "e"}


def test_a_label_count_unlike_the_score_count_is_one_line(cli, image, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("only\ntwo\n")
    result = cli("classify", "--model", FIVE, "--labels", names, image)
    result.assert_one_error_line(2, "2 labels in", "but the model gives 5 scores")


def test_a_one_channel_model_classifies_colour_images(cli, image):
    result = cli("classify", "--model", GRAY, image, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json_lines()[0]["label"] in {str(i) for i in range(10)}


def test_the_shipped_model_carries_its_labels_and_input_meaning(model_path):
    metadata = Model(model_path).metadata
    assert metadata is not None and metadata.labels == CLASS_NAMES
    assert metadata.label_file == "labels.txt" and metadata.name == TEST_MODEL
    assert (metadata.normalization.mean, metadata.normalization.std) == ((0.0,), (255.0,))
    assert metadata.licence == "MIT" and metadata.author and metadata.version


def test_our_models_need_no_flag_and_a_flag_their_metadata_overrides_is_a_note(
    cli, model_path, tmp_path
):
    classifier = Classifier(Model(model_path))
    assert classifier.meaning.labels_from == classifier.meaning.input_range_from
    assert classifier.meaning.labels_from == "the model's metadata"
    names = tmp_path / "names.txt"
    names.write_text("x\n")
    result = cli(
        "classify",
        "--labels",
        names,
        "--input-range",
        "0..255",
        REPO / "samples" / "images" / "0000_cat.png",
    )
    assert result.exit_code == 0 and "cat" in result.stdout
    assert (
        "note: --labels" in result.stderr and "note: --input-range 0..255 ignored" in result.stderr
    )


def test_info_prints_the_metadata(cli, model_path):
    text = cli("info", model_path).stdout
    assert "labels      10 in labels.txt: airplane, automobile" in text
    assert "input       pixels 0..255 -> 0..1" in text
    assert json.loads(cli("info", model_path, "--json").stdout)["metadata"]["labels"] == list(
        CLASS_NAMES
    )


def test_softmax_is_applied_to_logits_and_not_to_a_distribution():
    assert Model(FIVE).output_is_distribution()  # ends in SOFTMAX
    probabilities = softmax(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    assert probabilities.sum() == pytest.approx(1.0) and np.argmax(probabilities) == 2
