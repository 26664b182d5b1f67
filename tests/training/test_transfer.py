"""Transfer: a shipped float TFLite file's conv weights in a Keras model, and when to use them."""

from pathlib import Path

import numpy as np
import pytest

from train import data, run, transfer
from train.models import build
from train.recipe import folder_config, get_config

SHIPPED = Path(__file__).resolve().parents[2] / "firmware_models" / "default_float.tflite"


def test_imported_convs_compute_what_the_shipped_file_does(cifar10_dir):
    import tf_keras as keras

    from train.evaluate import keras_scores
    from train.scoring import tflite_scores

    cifar = data.load(cifar10_dir)
    model = build(get_config("default"))
    convs = sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)
    assert transfer.import_convs(model, SHIPPED, cifar.train.images[:256]) == convs
    # The head is new in a folder model; here it is copied too, so the whole net can be compared.
    model.get_layer("logits").set_weights(list(shipped_head(SHIPPED)))
    images = cifar.test.images[:50]
    np.testing.assert_allclose(
        keras_scores(model, images), tflite_scores(SHIPPED, images), atol=1e-4
    )
    # In training mode (batch statistics) every BatchNorm gives what inference gives, on the
    # images its statistics came from: fine-tuning starts from the shipped net, not a perturbed one.
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.input, [layer.output for layer in norms])
    sample = cifar.train.images[:256].astype(np.float32) / 255
    both = zip(probe(sample, training=True), probe(sample, training=False), strict=True)
    for training, inference in both:
        difference = np.abs(training.numpy() - inference.numpy()).mean()
        assert difference < 1e-2 * np.abs(inference.numpy()).mean()


def test_a_float_file_with_gated_branches_imports_exactly(cifar10_dir, tmp_path):
    """Squeeze-and-excitation gates are convs with biases of their own and no BatchNorm: they
    import as they are, beside the folded conv + BatchNorm pairs."""
    import tf_keras as keras

    from train.convert import to_float_tflite
    from train.evaluate import keras_scores
    from train.models import residual_cnn
    from train.scoring import tflite_scores

    def build():
        return residual_cnn((8, 16, 16, 24), "gated", (1, 1, 1), se_reduction=4)

    source = build()
    # Weights away from their initial values (zero biases and offsets, unit statistics), so that
    # a gate or a BatchNorm left at its initial value would show in the scores.
    rng = np.random.default_rng(0)
    for layer in source.layers:
        moved = [w + rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in layer.get_weights()]
        if isinstance(layer, keras.layers.BatchNormalization):
            moved[3] = np.abs(moved[3]) + 0.5  # a variance
        layer.set_weights(moved)
    path = to_float_tflite(source, tmp_path / "gated_float.tflite")
    cifar = data.load(cifar10_dir)
    model = build()
    convs = sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)
    assert transfer.import_convs(model, path, cifar.train.images[:256]) == convs
    model.get_layer("logits").set_weights(source.get_layer("logits").get_weights())
    images = cifar.test.images[:50]
    np.testing.assert_allclose(keras_scores(model, images), tflite_scores(path, images), atol=1e-4)


def shipped_head(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from edge_cifar.interpreter import load_backend

    interpreter = load_backend().interpreter_class(model_path=str(path))
    tensors = {t["name"]: t["index"] for t in interpreter.get_tensor_details()}
    kernel = interpreter.get_tensor(tensors["default/logits/MatMul"])
    return kernel.T, interpreter.get_tensor(tensors["default/logits/BiasAdd"])


def test_a_folder_model_starts_from_the_shipped_convs_under_a_new_head():
    images = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    train = data.Split(images, np.arange(40) % 3, ("a", "b", "c"))
    config = folder_config(get_config("default"), "parts", train.class_names, 64, "default")
    model = transfer.pretrained_model(lambda: build(config), "default", train)
    assert model.output_shape == (None, 3) and model.input_shape == (None, 64, 64, 3)
    stem_kernel, _ = transfer.float_tflite_convs(SHIPPED)["stem_conv"]
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(), stem_kernel)


def split_with(per_class: int) -> data.Split:
    labels = np.repeat(np.arange(2), per_class)
    return data.Split(np.zeros((len(labels), 8, 8, 3), np.uint8), labels, ("a", "b"))


def test_auto_fine_tunes_small_data_sets_only():
    small, large = (
        split_with(run.AUTO_PRETRAINED_BELOW - 1),
        split_with(run.AUTO_PRETRAINED_BELOW),
    )
    assert run.pretrained_source("auto", "default", small) == "default"
    assert run.pretrained_source("auto", "default", large) is None
    assert run.pretrained_source("pretrained", "default", large) == "default"
    assert run.pretrained_source("scratch", "default", small) is None


def test_pretrained_without_a_shipped_float_model_is_one_line():
    with pytest.raises(data.DataError, match=r"no shipped .*nothing_float\.tflite"):
        run.pretrained_source("pretrained", "nothing", split_with(5))
    assert run.pretrained_source("auto", "nothing", split_with(5)) is None
