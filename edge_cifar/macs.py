"""Multiply-accumulates per inference, counted from a TFLite graph's conv and dense op shapes.

The compute cost a model file asks of a device, independent of how fast the device is: what the
bench table and the model card put beside latency and size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import prod
from typing import Any

# Ops whose multiply-adds dominate a CNN; the rest (pooling, adds, activations, softmax) cost about
# one operation per element and are left out, as the MLPerf Tiny figures leave them out.
COUNTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def op_multiply_adds(
    op_name: str, inputs: Sequence[int], outputs: Sequence[int], shapes: Mapping[int, Sequence[int]]
) -> int:
    """The multiply-adds of one op, from its tensors' shapes; 0 for ops not counted."""
    if op_name not in COUNTED_OPS:
        return 0
    output = shapes[outputs[0]]
    if op_name == "TRANSPOSE_CONV":  # inputs: output shape, filter, input
        kernel = shapes[inputs[1]]  # [out_c, kh, kw, in_c], applied at every input pixel
        return prod(shapes[inputs[2]][:-1]) * prod(kernel)
    kernel = shapes[inputs[1]]
    if op_name == "CONV_2D":  # kernel [out_c, kh, kw, in_c]
        return prod(output[:-1]) * prod(kernel)
    if op_name == "DEPTHWISE_CONV_2D":  # kernel [1, kh, kw, out_c]
        return prod(output) * kernel[1] * kernel[2]
    # FULLY_CONNECTED: kernel [units, in], one product per unit and input per output row.
    return prod(output) * kernel[-1]


def multiply_adds(ops: Sequence[Mapping[str, Any]], shapes: Mapping[int, Sequence[int]]) -> int:
    """Total multiply-adds of a graph: `ops` as the interpreter's op details (op_name, inputs,
    outputs: tensor indices), `shapes` by tensor index."""
    return sum(
        op_multiply_adds(str(op["op_name"]), list(op["inputs"]), list(op["outputs"]), shapes)
        for op in ops
    )
