"""Multiply-adds per inference, counted from a model file's op shapes."""

from pathlib import Path

import pytest

from edge_cifar.interpreter import Model
from edge_cifar.macs import multiply_adds, op_multiply_adds

REFERENCES = Path(__file__).resolve().parents[2].parent / "shared" / "references"


def test_a_conv_counts_every_output_value_times_its_kernel():
    # 3x3 conv, 8 -> 16 channels, 10x12 output: 10 * 12 * 16 outputs, 3 * 3 * 8 products each.
    shapes = {0: [1, 10, 12, 8], 1: [16, 3, 3, 8], 2: [16], 3: [1, 10, 12, 16]}
    assert op_multiply_adds("CONV_2D", [0, 1, 2], [3], shapes) == 10 * 12 * 16 * 3 * 3 * 8


def test_depthwise_dense_and_uncounted_ops():
    shapes = {0: [1, 8, 8, 4], 1: [1, 3, 3, 4], 2: [4], 3: [1, 8, 8, 4], 4: [1, 64], 5: [10, 64]}
    assert op_multiply_adds("DEPTHWISE_CONV_2D", [0, 1, 2], [3], shapes) == 8 * 8 * 4 * 9
    dense = {"op_name": "FULLY_CONNECTED", "inputs": [4, 5], "outputs": [2]}
    shapes[2] = [1, 10]
    assert multiply_adds([dense], shapes) == 640
    assert op_multiply_adds("AVERAGE_POOL_2D", [0], [3], shapes) == 0


@pytest.mark.parametrize(
    ("name", "published_millions"),
    [
        ("mlperf_tiny_pretrainedResnet_quant.tflite", 12.5),
        ("mlperf_tiny_pretrainedResnet_large_int8.tflite", 76.5),
    ],
)
def test_the_mlperf_references_count_their_published_multiply_adds(name, published_millions):
    path = REFERENCES / name
    if not path.is_file():
        pytest.skip(f"{path} not here")
    assert Model(path).multiply_adds() / 1e6 == pytest.approx(published_millions, abs=0.05)


def test_a_float_model_and_its_int8_twin_cost_the_same(model_path, float_model_path):
    int8_count = Model(model_path).multiply_adds()
    assert Model(float_model_path).multiply_adds() == int8_count > 1_000_000
