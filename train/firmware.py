"""Microcontroller artefacts: each INT8 model as C++ source, checked in TFLite Micro itself.

For every `<model>_int8.tflite` in firmware_models/ this step
1. loads the model into the TFLite Micro interpreter (PyPI `tflite-micro`): an op it has no kernel
   for fails here, by name, instead of on the device;
2. measures the tensor arena as the smallest size that allocates (a binary search: the library
   prints its own allocation total only to stderr, and the smallest working size is what a device
   must reserve);
3. runs CIFAR-10 test images through TFLite Micro, at exactly that arena size, and through LiteRT's
   reference kernels (BUILTIN_REF, the kernels TFLite Micro's are ported from): every image must get
   the same class; the largest output difference in quantization steps is reported;
4. writes `<model>_int8.h` and `.cc` (the bytes, 16-byte aligned, the ops a resolver must register,
   the arena size) and adds the figures to the model card.

    python -m train firmware                      # every INT8 model in firmware_models/
    python -m train firmware path/to/x_int8.tflite --images 100
    python -m train.firmware ...                  # the same; the name generated headers give

`python -m train quantize` runs the check on the model it ships (train/pipeline.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_cifar import model_files
from edge_cifar.interpreter import Model, read_model_bytes
from edge_cifar.preprocess import frame_to_input
from train.artifacts import write_atomic
from train.card import card_files, read_card, updated
from train.labels import CLASS_NAMES

# Enough images that a kernel difference which flips a class shows up; more only adds minutes.
DEFAULT_IMAGES = 500
# The flatbuffer is read in place on the device: TFLite Micro needs its tensors' data aligned.
MODEL_ALIGNMENT = 16
# A model that does not allocate in this much arena does not belong on a microcontroller.
ARENA_CEILING_BYTES = 64 * 1024 * 1024
MISSING_OP = re.compile(r"Didn't find op for (?:builtin|custom) opcode '([^']+)'")
# MicroMutableOpResolver's method names where they are not the op name in CamelCase.
RESOLVER_METHOD_EXCEPTIONS = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "CUMSUM": "AddCumSum",
    "PADV2": "AddPadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}


class FirmwareError(RuntimeError):
    """A model TFLite Micro cannot run, or whose results differ from LiteRT's; one line."""


def tflm_runtime() -> Any:
    """TFLite Micro's Python interpreter (x86-64 wheels only), imported when needed: an optional
    dependency (the `firmware` extra)."""
    try:
        from tflite_micro import runtime
    except ImportError:
        raise FirmwareError(
            "tflite-micro is not installed: pip install -e '.[firmware]' (x86-64 Linux wheels only)"
        ) from None
    return runtime


def tflm_version() -> str:
    import tflite_micro  # optional, as in tflm_runtime

    return str(tflite_micro.__version__)


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what C++ code writes to file descriptor 2; the list holds it after the block.

    TFLite Micro reports a missing op or a too-small arena only there, not in its exception.
    """
    captured: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def builtin_op_names() -> dict[int, str]:
    """TFLite's builtin operator codes and names, from the schema tflite-micro carries."""
    operators = tflm_runtime().schema_fb.BuiltinOperator
    return {code: name for name, code in vars(operators).items() if not name.startswith("_")}


def model_ops(model_bytes: bytes) -> Counter[str]:
    """How often each operator occurs in the model's graphs: builtin name, or custom op name."""
    runtime = tflm_runtime()
    names = builtin_op_names()
    model = runtime.convert_bytearray_to_object(bytearray(model_bytes))
    ops: Counter[str] = Counter()
    for subgraph in model.subgraphs:
        for operator in subgraph.operators or []:
            code = model.operatorCodes[operator.opcodeIndex]
            builtin = runtime.get_builtin_code_from_operator_code(code)
            if builtin == runtime.schema_fb.BuiltinOperator.CUSTOM:
                ops[code.customCode.decode()] += 1
            else:
                ops[names.get(builtin, f"BUILTIN_{builtin}")] += 1
    return ops


def resolver_method(op: str) -> str:
    """`CONV_2D` → `AddConv2D`: the MicroMutableOpResolver call that registers the op."""
    if op in RESOLVER_METHOD_EXCEPTIONS:
        return RESOLVER_METHOD_EXCEPTIONS[op]
    parts = (p if re.fullmatch(r"\d+D", p) else p.capitalize() for p in op.split("_"))
    return "Add" + "".join(parts)


class ArenaTooSmallError(Exception):
    """The arena given is too small for the model (an internal signal of the search)."""


def tflm_interpreter(model_bytes: bytes, arena_bytes: int, name: str) -> Any:
    """A TFLite Micro interpreter with this arena; FirmwareError names an op it lacks."""
    runtime = tflm_runtime()
    with captured_stderr() as stderr:
        try:
            return runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_bytes)
        except RuntimeError:
            pass
    missing = MISSING_OP.search(stderr[0])
    if missing:
        raise FirmwareError(f"{name}: TFLite Micro has no kernel for op {missing.group(1)}")
    raise ArenaTooSmallError(stderr[0].strip().splitlines()[-1] if stderr[0].strip() else "")


def smallest_arena(model_bytes: bytes, name: str) -> int:
    """The smallest tensor arena, in bytes, in which TFLite Micro allocates the model."""
    high = 16 * 1024
    while True:  # find a size that works, then bisect between a failing and a working size
        try:
            tflm_interpreter(model_bytes, high, name)
            break
        except ArenaTooSmallError as failure:
            if high >= ARENA_CEILING_BYTES:
                raise FirmwareError(
                    f"{name}: TFLite Micro cannot allocate it even in "
                    f"{ARENA_CEILING_BYTES // 2**20} MiB ({failure})"
                ) from None
            high *= 2
    low = 0
    while high - low > 1:
        middle = (low + high) // 2
        try:
            tflm_interpreter(model_bytes, middle, name)
            high = middle
        except ArenaTooSmallError:
            low = middle
    return high


@dataclass(frozen=True)
class TflmCheck:
    """What TFLite Micro made of one INT8 model."""

    model_path: Path
    ops: dict[str, int]
    arena_bytes: int
    images: int
    max_output_diff_steps: int
    tflm_version: str

    def card_fields(self) -> dict[str, Any]:
        return {
            "tflm_arena_bytes": self.arena_bytes,
            "tflm_max_output_diff_steps": self.max_output_diff_steps,
            "tflm_ops": sorted(self.ops),
            "tflm_images_checked": self.images,
            "tflm_version": self.tflm_version,
        }


def check_model(
    model_path: Path, images: np.ndarray, labels: np.ndarray | None = None
) -> TflmCheck:
    """Run the INT8 model in TFLite Micro and in LiteRT's reference kernels on `images` (RGB)."""
    # A file that is no TFLite flatbuffer fails here, in one line, not inside TFLite Micro's C++.
    model_bytes = read_model_bytes(model_path)
    name = model_path.name
    ops = model_ops(model_bytes)
    arena_bytes = smallest_arena(model_bytes, name)
    # The comparison runs at exactly the measured size: that size must run, not only allocate.
    micro = tflm_interpreter(model_bytes, arena_bytes, name)
    reference = Model(model_path, reference_kernels=True)
    if not reference.quantized or reference.output.dtype != "int8":
        raise FirmwareError(f"{name}: not a full-integer model (input {reference.input.dtype})")
    scale, zero_point = reference.output.scale, reference.output.zero_point
    max_steps = 0
    disagreements: list[str] = []
    for index, rgb in enumerate(images):
        # As the camera would feed it (BGR frame, resized to the input): any image size serves.
        tensor = frame_to_input(np.ascontiguousarray(rgb[..., ::-1]), reference.input_spec)
        reference_steps = np.rint(reference.run(tensor) / scale).astype(np.int32) + zero_point
        micro.set_input(tensor, 0)
        micro.invoke()
        micro_steps = np.asarray(micro.get_output(0)[0], dtype=np.int32)
        max_steps = max(max_steps, int(np.abs(reference_steps - micro_steps).max()))
        expected, got = int(np.argmax(reference_steps)), int(np.argmax(micro_steps))
        if expected != got:
            # CIFAR-10's names for a CIFAR-10 model; an image-folder model's classes by index.
            names = CLASS_NAMES if len(reference_steps) == len(CLASS_NAMES) else None
            truth = (
                f", truth {CLASS_NAMES[int(labels[index])]}" if labels is not None and names else ""
            )
            disagreements.append(
                f"image {index}: LiteRT {names[expected] if names else expected}, "
                f"TFLite Micro {names[got] if names else got}" + truth
            )
    if disagreements:
        raise FirmwareError(
            f"{name}: TFLite Micro and LiteRT's reference kernels disagree on "
            f"{len(disagreements)} of {len(images)} images ({'; '.join(disagreements[:5])})"
        )
    return TflmCheck(model_path, dict(ops), arena_bytes, len(images), max_steps, tflm_version())


# --- C++ artefacts ------------------------------------------------------------------------------


def model_sha256(model_bytes: bytes) -> str:
    return hashlib.sha256(model_bytes).hexdigest()


def c_identifier(model_path: Path) -> str:
    """`seed_int8.tflite` → `seed_int8`: a C identifier derived from the file name."""
    identifier = re.sub(r"\W", "_", model_path.stem, flags=re.ASCII)
    return identifier if not identifier[0].isdigit() else f"model_{identifier}"


def c_header(check: TflmCheck, model_bytes: bytes) -> str:
    name = c_identifier(check.model_path)
    guard = f"EDGE_CIFAR_{name.upper()}_H_"
    ops = sorted(check.ops)
    builtins = set(builtin_op_names().values())
    # 0 is kTfLiteOk: the header needs no TFLite Micro include of its own.
    registrations = [
        f"resolver.{resolver_method(op)}() == 0"
        if op in builtins
        else f"true /* custom op {op}: register it with resolver.AddCustom */"
        for op in ops
    ]
    return "\n".join(
        [
            f"// {check.model_path.name} for TensorFlow Lite for Microcontrollers.",
            "// Generated by `make firmware` (python -m train.firmware); do not edit.",
            f"// Model SHA-256: {model_sha256(model_bytes)}",
            f"// Checked with tflite-micro {check.tflm_version}: the same class as LiteRT's",
            f"// reference kernels on {check.images} CIFAR-10 test images; largest output "
            f"difference {check.max_output_diff_steps} quantization step(s).",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            "#include <cstddef>",
            "",
            "// TFLite Micro reads the weights in place: the array must stay 16-byte aligned.",
            f"alignas({MODEL_ALIGNMENT}) extern const unsigned char {name}_model[];",
            f"extern const unsigned int {name}_model_len;  // {len(model_bytes)} bytes",
            "",
            "// The smallest tensor arena that allocates, measured with TFLite Micro's reference",
            "// kernels on a 64-bit host: 32-bit targets need a little less for the interpreter's",
            "// bookkeeping; optimized kernels (CMSIS-NN) may ask for some scratch memory on top.",
            f"constexpr std::size_t {name}_arena_bytes = {check.arena_bytes};",
            "",
            f"// Ops to register: {', '.join(ops)}.",
            f"constexpr unsigned int {name}_op_count = {len(ops)};",
            "",
            f"//   static tflite::MicroMutableOpResolver<{name}_op_count> resolver;",
            f"//   if (!{name}_register_ops(resolver)) {{ /* resolver too small */ }}",
            "template <typename OpResolver>",
            f"bool {name}_register_ops(OpResolver& resolver) {{",
            "  return " + " &&\n         ".join(registrations) + ";",
            "}",
            "",
            f"#endif  // {guard}",
            "",
        ]
    )


def c_source(check: TflmCheck, model_bytes: bytes) -> str:
    name = c_identifier(check.model_path)
    rows = (
        "  " + ", ".join(f"0x{byte:02x}" for byte in model_bytes[start : start + 16]) + ","
        for start in range(0, len(model_bytes), 16)
    )
    return "\n".join(
        [
            f"// {check.model_path.name}: generated by `make firmware`; do not edit.",
            f'#include "{name}.h"',
            "",
            f"alignas({MODEL_ALIGNMENT}) const unsigned char {name}_model[] = {{",
            *rows,
            "};",
            f"const unsigned int {name}_model_len = {len(model_bytes)};",
            "",
        ]
    )


def update_card(card_path: Path, check: TflmCheck) -> list[Path]:
    """Add the TFLite Micro figures to the card (JSON and Markdown); existing fields stay."""
    card = updated(read_card(card_path), **check.card_fields())
    written = []
    for name, content in card_files(card).items():
        write_atomic(card_path.with_name(name), content)
        written.append(card_path.with_name(name))
    return written


def write_firmware(check: TflmCheck) -> list[Path]:
    """`<model>_int8.h` and `.cc` beside the model, and its card's new fields."""
    model_bytes = check.model_path.read_bytes()
    header = check.model_path.with_suffix(".h")
    source = check.model_path.with_suffix(".cc")
    write_atomic(header, c_header(check, model_bytes).encode())
    write_atomic(source, c_source(check, model_bytes).encode())
    written = [header, source]
    card = model_files.card_path(check.model_path)
    if card is not None:
        written += update_card(card, check)
    return written


if __name__ == "__main__":  # `python -m train.firmware`: the command line's `firmware` step
    sys.exit(subprocess.call([sys.executable, "-m", "train", "firmware", *sys.argv[1:]]))
