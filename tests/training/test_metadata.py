"""Our model files carry TFLite metadata the ecosystem reads: tflite-support's reader and ours
agree, MediaPipe Tasks classifies with them as `edge-cifar classify` does, and stamping changes no
weight."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_cifar.classifier import UNCERTAIN, Classifier
from edge_cifar.interpreter import Model
from train.convert import ConversionError, with_uint8_interface
from train.labels import CLASS_NAMES
from train.metadata import ModelDescription, same_graph, with_metadata
from train.ship import restamp

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_models"
SHIPPED = sorted(FIRMWARE.glob("*.tflite"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_our_metadata_reader_agrees_with_tflite_supports(path):
    from tensorflow_lite_support.metadata.python import metadata

    displayer = metadata.MetadataDisplayer.with_model_file(str(path))
    theirs = json.loads(displayer.get_metadata_json())
    ours = Model(path).metadata
    assert ours is not None
    assert (ours.name, ours.description, ours.version, ours.author, ours.licence) == (
        theirs["name"],
        theirs["description"],
        theirs["version"],
        theirs["author"],
        theirs["license"],
    )
    options = theirs["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"][0]
    assert ours.normalization.mean == tuple(options["options"]["mean"])
    assert ours.normalization.std == tuple(options["options"]["std"])
    assert displayer.get_packed_associated_file_list() == [ours.label_file]
    assert ours.labels == CLASS_NAMES
    packed = displayer.get_associated_file_buffer(ours.label_file).decode()
    assert packed.splitlines() == list(CLASS_NAMES)


def test_restamping_the_shipped_models_reproduces_them_byte_for_byte(tmp_path):
    """`python -m train stamp` made the shipped files; doing it again over them changes nothing,
    and the graph check inside it passed, so the weights are the converter's."""
    for path in FIRMWARE.iterdir():
        if path.suffix in (".tflite", ".json") or path.name.endswith(".card.md"):
            shutil.copy(path, tmp_path / path.name)
    for card in sorted(tmp_path.glob("*.card.json")):
        restamp(card)
    for path in sorted(tmp_path.iterdir()):
        assert path.read_bytes() == (FIRMWARE / path.name).read_bytes(), path.name


def test_stamping_keeps_the_graph_and_the_graph_check_sees_a_changed_weight():
    original = (FIRMWARE / "tiny_int8.tflite").read_bytes()
    stamped = with_metadata(original, ModelDescription("tiny", "a test", CLASS_NAMES))
    assert same_graph(original, stamped)
    assert with_metadata(stamped, ModelDescription("tiny", "a test", CLASS_NAMES)) == stamped
    # One weight byte changed: find a byte of a large buffer by its value and flip it.
    import flatbuffers  # noqa: F401 (the schema module needs it)
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(original, 0)
    biggest = max(range(model.BuffersLength()), key=lambda i: model.Buffers(i).DataLength())
    start = (
        model.Buffers(biggest).DataAsNumpy().ctypes.data
        - np.frombuffer(original, np.uint8).ctypes.data
    )
    changed = bytearray(original)
    changed[start + 10] ^= 0x01
    assert not same_graph(original, bytes(changed))


def test_a_uint8_interface_is_added_to_int8_models_only():
    with pytest.raises(ConversionError, match="not a quantized int8 tensor"):
        with_uint8_interface((FIRMWARE / "tiny_float.tflite").read_bytes())


@pytest.mark.parametrize("model", ["default", "tiny", "pi"])
def test_mediapipe_tasks_classifies_the_shipped_models_as_edge_cifar_classify_does(
    model, cifar10_dir
):
    """MediaPipe's ImageClassifier loads the uint8 file (it takes no int8 input) and agrees on
    top-1 with `edge-cifar classify` (the INT8 file through our Classifier) on 1,000 test images,
    naming CIFAR-10's classes from the file's own labels."""
    if not (FIRMWARE / f"{model}_uint8.tflite").exists():
        pytest.skip(f"{model} is not shipped")
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    from train import data

    test = data.load(cifar10_dir, download=False).test
    images = test.images[:1000]
    ours = Classifier(Model(FIRMWARE / f"{model}_int8.tflite"))
    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(FIRMWARE / f"{model}_uint8.tflite")),
        max_results=1,
    )
    with vision.ImageClassifier.create_from_options(options) as classifier:
        theirs = []
        for image in images:
            result = classifier.classify(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
            )
            # Under the model's recommended threshold MediaPipe returns no category at all.
            categories = result.classifications[0].categories
            theirs.append(categories[0].category_name if categories else UNCERTAIN)
    mine = [ours.classify(np.ascontiguousarray(image[..., ::-1])).label for image in images]
    agreement = np.mean([a == b for a, b in zip(theirs, mine, strict=True)])
    assert agreement >= 0.99, agreement
    assert set(theirs) - {UNCERTAIN} <= set(CLASS_NAMES) and set(CLASS_NAMES) <= set(theirs)


def test_the_recommended_threshold_is_read_back_as_tflite_support_wrote_it(tmp_path):
    from tensorflow_lite_support.metadata.python import metadata

    original = (FIRMWARE / "tiny_int8.tflite").read_bytes()
    about = ModelDescription("tiny", "a test", CLASS_NAMES, uncertain_threshold=0.6234)
    path = tmp_path / "tiny_int8.tflite"
    path.write_bytes(with_metadata(original, about))
    theirs = json.loads(metadata.MetadataDisplayer.with_model_file(str(path)).get_metadata_json())
    output = theirs["subgraph_metadata"][0]["output_tensor_metadata"][0]
    written = [u["options"]["global_score_threshold"] for u in output["process_units"]]
    assert written == [pytest.approx(0.6234)]
    assert Model(path).metadata.score_threshold == pytest.approx(0.6234)
