"""Bounds checks of a .tflite flatbuffer before any interpreter sees it.

tflite-runtime 2.14 builds its model without the flatbuffer verifier, so a truncated file (an
interrupted copy, a partial download) crashes the process with a segmentation fault. Walking the
parts of the schema the interpreter dereferences first (every table, vector and string of the model,
its buffers, subgraphs, tensors and operators) and checking each offset, length and index against
the file turns that into one readable error. Field numbers follow TFLite's schema.fbs.
"""

from __future__ import annotations

import struct


class FlatbufferError(ValueError):
    """The bytes are not a structurally sound TFLite flatbuffer."""


class _Table:
    """One flatbuffer table: its position, and its vtable's field offsets."""

    def __init__(self, buffer: bytes, position: int) -> None:
        self.buffer, self.position = buffer, position
        vtable = position - _i32(buffer, position)
        vtable_size = _u16(buffer, vtable)
        _need(buffer, vtable, vtable_size)
        self._fields = [
            _u16(buffer, vtable + 4 + 2 * i) for i in range(max(0, (vtable_size - 4) // 2))
        ]

    def _field(self, index: int) -> int | None:
        offset = self._fields[index] if index < len(self._fields) else 0
        return self.position + offset if offset else None

    def u32(self, index: int, default: int = 0) -> int:
        position = self._field(index)
        return default if position is None else _u32(self.buffer, position)

    def u64(self, index: int) -> int:
        position = self._field(index)
        if position is None:
            return 0
        _need(self.buffer, position, 8)
        return int(struct.unpack_from("<Q", self.buffer, position)[0])

    def _target(self, index: int) -> int | None:
        position = self._field(index)
        return None if position is None else position + _u32(self.buffer, position)

    def vector(self, index: int, item_size: int) -> tuple[int, int]:
        """(first item's position, length) of a vector field; (0, 0) when absent."""
        start = self._target(index)
        if start is None:
            return 0, 0
        length = _u32(self.buffer, start)
        _need(self.buffer, start + 4, length * item_size)
        return start + 4, length

    def f32(self, index: int, default: float = 0.0) -> float:
        position = self._field(index)
        if position is None:
            return default
        _need(self.buffer, position, 4)
        return float(struct.unpack_from("<f", self.buffer, position)[0])

    def u8(self, index: int, default: int = 0) -> int:
        position = self._field(index)
        if position is None:
            return default
        _need(self.buffer, position, 1)
        return self.buffer[position]

    def string(self, index: int) -> str | None:
        start, length = self.vector(index, 1)
        if not start:
            return None
        return self.buffer[start : start + length].decode("utf-8", errors="replace")

    def data(self, index: int) -> bytes:
        start, length = self.vector(index, 1)
        return self.buffer[start : start + length]

    def floats(self, index: int) -> list[float]:
        start, length = self.vector(index, 4)
        return list(struct.unpack_from(f"<{length}f", self.buffer, start)) if length else []

    def table(self, index: int) -> _Table | None:
        start = self._target(index)
        return None if start is None else _Table(self.buffer, start)

    def ints(self, index: int) -> list[int]:
        start, length = self.vector(index, 4)
        return list(struct.unpack_from(f"<{length}i", self.buffer, start)) if length else []

    def tables(self, index: int) -> list[_Table]:
        start, length = self.vector(index, 4)
        items = []
        for i in range(length):
            item = start + 4 * i
            items.append(_Table(self.buffer, item + _u32(self.buffer, item)))
        return items


def _need(buffer: bytes, position: int, size: int) -> None:
    if position < 0 or size < 0 or position + size > len(buffer):
        raise FlatbufferError(
            f"truncated or corrupt: {size} bytes at offset {position} lie outside its "
            f"{len(buffer)} bytes"
        )


def _u16(buffer: bytes, position: int) -> int:
    _need(buffer, position, 2)
    return int(struct.unpack_from("<H", buffer, position)[0])


def _u32(buffer: bytes, position: int) -> int:
    _need(buffer, position, 4)
    return int(struct.unpack_from("<I", buffer, position)[0])


def _i32(buffer: bytes, position: int) -> int:
    _need(buffer, position, 4)
    return int(struct.unpack_from("<i", buffer, position)[0])


def _check_indices(values: list[int], count: int, what: str) -> None:
    bad = [v for v in values if not -1 <= v < count]
    if bad:
        raise FlatbufferError(f"corrupt: {what} index {bad[0]} out of range (0..{count - 1})")


def root(buffer: bytes) -> _Table:
    """The root table of a flatbuffer (a .tflite model, or a metadata buffer inside one)."""
    return _Table(buffer, _u32(buffer, 0))


def check_tflite(buffer: bytes) -> None:
    """Raise FlatbufferError if any part of the model an interpreter reads lies outside the file."""
    model = root(buffer)
    # Model: 1 operator_codes, 2 subgraphs, 4 buffers.
    operator_codes = model.tables(1)
    buffers = model.tables(4)
    for item in buffers:
        item.vector(0, 1)  # Buffer: 0 data, 1 offset, 2 size (data kept after the flatbuffer)
        offset, size = item.u64(1), item.u64(2)
        if offset > 1:
            _need(buffer, offset, size)
    subgraphs = model.tables(2)
    if not subgraphs:
        raise FlatbufferError("corrupt: the model has no subgraph")
    for subgraph in subgraphs:
        # SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators.
        tensors = subgraph.tables(0)
        for tensor in tensors:
            tensor.vector(0, 4)  # Tensor: 0 shape, 2 buffer, 3 name
            tensor.vector(3, 1)
            _check_indices([tensor.u32(2)], len(buffers), "buffer")
        _check_indices(subgraph.ints(1) + subgraph.ints(2), len(tensors), "tensor")
        for operator in subgraph.tables(3):
            # Operator: 0 opcode_index, 1 inputs, 2 outputs.
            _check_indices([operator.u32(0)], len(operator_codes), "operator code")
            _check_indices(operator.ints(1) + operator.ints(2), len(tensors), "tensor")
