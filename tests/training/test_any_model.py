"""Foreign models built with TensorFlow: a 224x224 1,000-class and a 96x96 2-class classifier with
float32, int8 and uint8 inputs, and a two-output model that is no classifier. `bench` and `info`
run on every one; `classify` takes its labels from the metadata, `--labels` or a labels.txt."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from edge_cifar.cli import app
from edge_cifar.interpreter import Model
from train.metadata import ModelDescription, with_metadata

pytestmark = pytest.mark.slow
CLASSIFIERS = {"imagenet": ((224, 224, 3), 1000), "binary": ((96, 96, 3), 2)}
INPUT_TYPES = {"float32": None, "int8": tf.int8, "uint8": tf.uint8}


def classifier(shape: tuple[int, int, int], classes: int, softmax: bool) -> tf.keras.Model:
    inputs = tf.keras.Input(shape)
    x = tf.keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(classes, activation="softmax" if softmax else None)(x)
    return tf.keras.Model(inputs, outputs)


def two_outputs() -> tf.keras.Model:
    inputs = tf.keras.Input((16, 16, 3))
    features = tf.keras.layers.Conv2D(4, 3)(inputs)
    return tf.keras.Model(inputs, [features, tf.keras.layers.Flatten()(features)])


def convert(model: tf.keras.Model, input_type) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if input_type is not None:
        shape = model.input_shape[1:]
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.random((1, *shape), dtype=np.float32)] for _ in range(4)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = input_type
    return converter.convert()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("foreign")
    paths = {}
    for name, (shape, classes) in CLASSIFIERS.items():
        # The float models end in logits: classify applies the softmax.
        for type_name, input_type in INPUT_TYPES.items():
            keras_model = classifier(shape, classes, softmax=input_type is not None)
            path = folder / f"{name}_{type_name}.tflite"
            path.write_bytes(convert(keras_model, input_type))
            paths[path.stem] = path
    paths["two_outputs"] = folder / "two_outputs.tflite"
    paths["two_outputs"].write_bytes(convert(two_outputs(), None))
    return paths


def cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


MODEL_NAMES = [f"{n}_{t}" for n in CLASSIFIERS for t in INPUT_TYPES] + ["two_outputs"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bench_and_info_run_on_every_model(models, name):
    code, out, err = cli("bench", models[name], "--runs", 3, "--warmup", 1, "--json")
    assert code == 0, err
    report = json.loads(out)["models"][0]
    assert report["invoke_ms"]["runs"] == 3
    assert (report["frame_ms"] is None) == (name == "two_outputs")
    code, out, err = cli("info", models[name], "--json")
    assert code == 0, err
    facts = json.loads(out)
    assert facts["image_classifier"] == (name != "two_outputs")
    if name != "two_outputs":
        assert facts["input"]["dtype"] == name.rsplit("_", 1)[1]


@pytest.fixture
def image(tmp_path):
    import cv2

    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8))
    return path


def top_labels(out: str) -> set[str]:
    return {c["label"] for line in out.splitlines() for c in json.loads(line)["top_k"]}


@pytest.mark.parametrize("type_name", list(INPUT_TYPES))
def test_classify_takes_labels_from_metadata_then_the_flag_then_labels_txt(
    models, image, tmp_path, type_name
):
    model = models[f"binary_{type_name}"]
    code, out, err = cli("classify", "--model", model, image, "--json")
    assert code == 0, err
    assert top_labels(out) == {"0", "1"}  # nothing given: class indices

    names = tmp_path / "names.txt"
    names.write_text("left\nright\n")
    assert top_labels(cli("classify", "--model", model, "--labels", names, image, "--json")[1]) == {
        "left",
        "right",
    }

    beside = tmp_path / "beside"
    beside.mkdir()
    shutil.copy(model, beside / model.name)
    (beside / "labels.txt").write_text("yes\nno\n")
    assert top_labels(cli("classify", "--model", beside / model.name, image, "--json")[1]) == {
        "yes",
        "no",
    }

    stamped = beside / f"stamped_{model.name}"
    about = ModelDescription("pets", "cats or dogs", ("cat", "dog"))
    stamped.write_bytes(with_metadata(model.read_bytes(), about))
    code, out, err = cli("classify", "--model", stamped, image, "--json", "--labels", names)
    assert top_labels(out) == {"cat", "dog"}  # the model's own labels win over labels.txt too
    assert "note: --labels" in err
    assert Model(stamped).metadata.name == "pets"


def test_a_float_model_ending_in_logits_reports_probabilities(models, image):
    model = Model(models["binary_float32"])
    assert not model.output_is_distribution()
    code, out, _ = cli("classify", "--model", models["binary_float32"], image, "--json")
    scores = [c["score"] for c in json.loads(out)["top_k"]]
    assert code == 0 and sum(scores) == pytest.approx(1.0, abs=1e-3)


def test_the_1000_class_model_lists_its_top_k(models, image):
    code, out, err = cli("classify", "--model", models["imagenet_uint8"], image, "--json")
    assert code == 0, err
    assert len(json.loads(out)["top_k"]) == 3


def test_classify_refuses_the_two_output_model_in_one_line(models, image):
    code, out, err = cli("classify", "--model", models["two_outputs"], image)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "not an image classifier" in err
