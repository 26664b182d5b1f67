"""`make firmware`: the INT8 models in TFLite Micro, against LiteRT's reference kernels.

Most tests use a small 10-class INT8 model built here (seconds); the shipped models are checked
as they are in firmware_models/, on 100 CIFAR-10 test images each.
"""

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="tflite-micro has x86-64 Linux wheels only")

from edge_cifar.interpreter import Model, ModelError
from edge_cifar.model_files import CHECKOUT_MODELS_DIR, card_path
from train import firmware
from train.card import TFLM_KEYS, card_json, read_card
from train.firmware import FirmwareError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_INT8 = sorted((REPO_ROOT / "firmware_models").glob("*_int8.tflite"))
CHECKED_IMAGES = 100
# The frontier issue's promise: the tiny model runs on a microcontroller with 256 KiB of SRAM.
TINY_ARENA_LIMIT = 160 * 1024


@pytest.fixture(scope="module")
def cifar_test(cifar10_dir):
    from train import data

    return data.load(cifar10_dir, download=False).test


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A 10-class full-INT8 CNN (conv, mean, dense, softmax): untrained, but a real graph."""
    import tensorflow as tf

    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: (
        [rng.random((1, 32, 32, 3), dtype=np.float32)] for _ in range(16)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("model") / "small_int8.tflite"
    path.write_bytes(converter.convert())
    return path


def with_op_replaced(model_bytes: bytes, old: str, new: str) -> bytes:
    """The model with every use of builtin op `old` turned into `new` (flatbuffer rewritten)."""
    import flatbuffers
    from tflite_micro import runtime

    operators = runtime.schema_fb.BuiltinOperator
    model = runtime.convert_bytearray_to_object(bytearray(model_bytes))
    for code in model.operatorCodes:
        if runtime.get_builtin_code_from_operator_code(code) == getattr(operators, old):
            code.builtinCode = getattr(operators, new)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)  # an int8 field
    builder = flatbuffers.Builder(len(model_bytes))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_resolver_method_names_follow_micro_mutable_op_resolver():
    assert [
        firmware.resolver_method(op)
        for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "PADV2")
    ] == ["AddConv2D", "AddDepthwiseConv2D", "AddMaxPool2D", "AddFullyConnected", "AddPadV2"]
    assert firmware.resolver_method("L2_NORMALIZATION") == "AddL2Normalization"


def test_the_model_ops_are_read_from_the_flatbuffer(small_model):
    ops = firmware.model_ops(small_model.read_bytes())
    assert ops == {"CONV_2D": 1, "MEAN": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}


def test_tflite_micro_gives_litert_reference_kernels_class_on_100_cifar_images(
    small_model, cifar_test
):
    check = firmware.check_model(small_model, cifar_test.images[:CHECKED_IMAGES])
    assert check.images == CHECKED_IMAGES
    assert 0 <= check.max_output_diff_steps <= 255
    assert sorted(check.ops) == ["CONV_2D", "FULLY_CONNECTED", "MEAN", "SOFTMAX"]


def test_a_class_disagreement_fails_the_check_naming_the_images(
    small_model, cifar_test, monkeypatch
):
    # LiteRT's scores reversed: TFLite Micro's class is then another one on (almost) every image.
    original_run = Model.run
    monkeypatch.setattr(Model, "run", lambda self, tensor: original_run(self, tensor)[::-1].copy())
    with pytest.raises(FirmwareError, match=r"disagree on \d+ of 20 images \(image 0: LiteRT"):
        firmware.check_model(small_model, cifar_test.images[:20])


def test_an_op_tflite_micro_lacks_fails_the_check_with_its_name(small_model, tmp_path, cifar_test):
    unsupported = tmp_path / "unsupported_int8.tflite"
    unsupported.write_bytes(with_op_replaced(small_model.read_bytes(), "MEAN", "UNIQUE"))
    with pytest.raises(FirmwareError, match="TFLite Micro has no kernel for op UNIQUE"):
        firmware.check_model(unsupported, cifar_test.images[:5])


def test_a_file_that_is_no_model_fails_before_tflite_micro_sees_it(tmp_path, cifar_test):
    not_a_model = tmp_path / "broken_int8.tflite"
    not_a_model.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a TFLite model"):
        firmware.check_model(not_a_model, cifar_test.images[:1])


def test_the_arena_is_the_smallest_size_that_allocates_and_what_tflite_micro_reports(
    small_model,
):
    model_bytes = small_model.read_bytes()
    arena = firmware.smallest_arena(model_bytes, small_model.name)
    with pytest.raises(firmware.ArenaTooSmallError):
        firmware.tflm_interpreter(model_bytes, arena - 1, small_model.name)
    interpreter = firmware.tflm_interpreter(model_bytes, arena, small_model.name)
    interpreter.set_input(np.zeros((1, 32, 32, 3), np.int8), 0)
    interpreter.invoke()
    with firmware.captured_stderr() as stderr:
        interpreter.print_allocations()
    reported = re.search(r"Arena allocation total (\d+) bytes", stderr[0])
    assert reported, stderr[0]
    assert arena == int(reported.group(1))


@pytest.fixture
def written(small_model, cifar_test, tmp_path):
    """`write_firmware` for the small model beside a card (the shipped `seed`'s, renamed, without
    its TFLite Micro fields)."""
    model = tmp_path / small_model.name
    shutil.copy(small_model, model)
    seed = read_card(CHECKOUT_MODELS_DIR / "seed.card.json")
    unchecked = {key: None for key in TFLM_KEYS}
    keys = tuple(key for key in seed.keys if key not in unchecked)
    bare = dataclasses.replace(seed, model="small", int8_accuracy=0.5, **unchecked, keys=keys)
    (tmp_path / "small.card.json").write_text(card_json(bare))
    check = firmware.check_model(model, cifar_test.images[:10])
    return check, firmware.write_firmware(check)


def test_write_firmware_writes_header_source_and_card_and_leaves_no_temporary_files(written):
    check, paths = written
    folder = check.model_path.parent
    assert [p.name for p in paths] == [
        "small_int8.h",
        "small_int8.cc",
        "small.card.json",
        "small.card.md",
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [check.model_path.name, *(p.name for p in paths)]
    )


def test_the_card_keeps_its_fields_and_gains_the_tflite_micro_ones(written):
    check, _ = written
    card = json.loads((check.model_path.parent / "small.card.json").read_text())
    assert card["model"] == "small" and card["int8_accuracy"] == 0.5
    assert card["tflm_arena_bytes"] == check.arena_bytes
    assert card["tflm_max_output_diff_steps"] == check.max_output_diff_steps
    assert card["tflm_ops"] == ["CONV_2D", "FULLY_CONNECTED", "MEAN", "SOFTMAX"]
    markdown = (check.model_path.parent / "small.card.md").read_text()
    assert markdown.startswith("# Model card: `small`\n")
    assert f"tensor arena: {check.arena_bytes:,} bytes" in markdown


# What the header may call: MicroMutableOpResolver's own method names for these ops.
FAKE_RESOLVER = """
#include <cstdio>
struct FakeResolver {
  int added = 0;
  int Add(const char* name) { std::printf("%s\\n", name); return ++added > 10; }
  int AddConv2D() { return Add("AddConv2D"); }
  int AddDepthwiseConv2D() { return Add("AddDepthwiseConv2D"); }
  int AddFullyConnected() { return Add("AddFullyConnected"); }
  int AddMaxPool2D() { return Add("AddMaxPool2D"); }
  int AddAveragePool2D() { return Add("AddAveragePool2D"); }
  int AddMean() { return Add("AddMean"); }
  int AddReshape() { return Add("AddReshape"); }
  int AddSoftmax() { return Add("AddSoftmax"); }
  int AddAdd() { return Add("AddAdd"); }
  int AddPad() { return Add("AddPad"); }
};
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")
def test_the_generated_cpp_compiles_holds_the_model_aligned_and_registers_its_ops(
    written, tmp_path
):
    check, _ = written
    folder = check.model_path.parent
    main = tmp_path / "main.cc"
    main.write_text(
        FAKE_RESOLVER
        + """
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <vector>
#include "small_int8.h"
int main(int, char** argv) {
  std::ifstream file(argv[1], std::ios::binary);
  std::vector<unsigned char> bytes{std::istreambuf_iterator<char>(file), {}};
  FakeResolver resolver;
  bool registered = small_int8_register_ops(resolver);
  std::printf("aligned %d\\n", int(reinterpret_cast<std::uintptr_t>(small_int8_model) % 16 == 0));
  std::printf("same bytes %d\\n", int(bytes.size() == small_int8_model_len &&
      std::equal(bytes.begin(), bytes.end(), small_int8_model)));
  std::printf("registered %d of %u, arena %zu\\n", int(registered), small_int8_op_count,
      small_int8_arena_bytes);
}
"""
    )
    program = tmp_path / "main"
    sources = [main, folder / "small_int8.cc"]
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", f"-I{folder}", *sources, "-o", program],
        check=True,
        capture_output=True,
    )
    output = subprocess.run(
        [str(program), str(check.model_path)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert output == [
        "AddConv2D",
        "AddFullyConnected",
        "AddMean",
        "AddSoftmax",
        "aligned 1",
        "same bytes 1",
        f"registered 1 of 4, arena {check.arena_bytes}",
    ]


@pytest.mark.parametrize("model_path", SHIPPED_INT8, ids=[p.stem for p in SHIPPED_INT8])
def test_every_shipped_int8_model_runs_in_tflite_micro_and_states_its_arena(model_path, cifar_test):
    card_file = card_path(model_path)
    assert card_file is not None, f"no model card beside {model_path.name}"
    card = json.loads(card_file.read_text())
    # A backbone model (`pi`, megabytes) is never checked for a microcontroller, nor given C++.
    if "tflm_arena_bytes" not in card:
        pytest.skip(f"{model_path.name}: its card has no TFLite Micro figures (no firmware step)")
    check = firmware.check_model(model_path, cifar_test.images[:CHECKED_IMAGES])
    if model_path.stem.startswith("tiny"):
        assert check.arena_bytes <= TINY_ARENA_LIMIT
    header = model_path.with_suffix(".h")
    assert header.is_file(), f"no {header.name}: run `make firmware`"
    text = header.read_text()
    # The committed C++ is of this very model and states the arena measured now.
    assert firmware.model_sha256(model_path.read_bytes()) in text, "stale: run `make firmware`"
    assert f"_arena_bytes = {check.arena_bytes};" in text
    assert card["tflm_arena_bytes"] == check.arena_bytes
    assert card["tflm_max_output_diff_steps"] >= check.max_output_diff_steps  # more images there
