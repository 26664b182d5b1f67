"""TFLite interpreter discovery and a `Model` wrapper with the checks a device needs.

Backends in order of preference: LiteRT (`ai_edge_litert`, the maintained successor), then
`tflite_runtime`, then `tensorflow.lite` (only where TensorFlow happens to be installed).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_cifar.errors import ModelError as ModelError  # re-exported: where callers look
from edge_cifar.flatbuffer import FlatbufferError, check_tflite
from edge_cifar.macs import multiply_adds
from edge_cifar.metadata import ModelMetadata, read_metadata
from edge_cifar.model_files import check_against_card
from edge_cifar.preprocess import (
    DEFAULT_INPUT_RANGE,
    INPUT_RANGES,
    INPUT_TYPES,
    FrameError,
    InputSpec,
    Normalization,
)

BACKENDS: dict[str, str] = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}
INSTALL_HINT = (
    "pip install edge-cifar brings LiteRT on Linux x86-64/aarch64 and macOS arm64; elsewhere "
    "'edge-cifar[litert]', or 'edge-cifar[tflite]' for tflite-runtime with NumPy < 2"
)
# Every TFLite flatbuffer carries this file identifier at bytes 4..8.
TFLITE_IDENTIFIER = b"TFL3"


class BackendError(RuntimeError):
    """No usable TFLite interpreter package."""


@dataclass(frozen=True)
class Backend:
    name: str
    interpreter_class: Any
    op_resolver_type: Any


# Names the backend when no --runtime does: a device with several interpreter packages (the
# `[tflite]` extra installs tflite-runtime beside the default LiteRT) picks one for every command.
RUNTIME_VARIABLE = "EDGE_CIFAR_RUNTIME"


def load_backend(name: str | None = None) -> Backend:
    """The named backend, else the one $EDGE_CIFAR_RUNTIME names, else the first importable."""
    name = name or os.environ.get(RUNTIME_VARIABLE) or None
    if name is not None and name not in BACKENDS:
        raise BackendError(f"unknown runtime {name!r}; choose one of {', '.join(BACKENDS)}")
    names = [name] if name else list(BACKENDS)
    failures = []
    for candidate in names:
        try:
            module = importlib.import_module(BACKENDS[candidate])
        except Exception as error:  # an ImportError, or a wheel built for another NumPy ABI
            failures.append(f"{candidate}: {str(error).splitlines()[0] if str(error) else error!r}")
            continue
        interpreter_class = module.Interpreter
        resolver = (
            getattr(module, "OpResolverType", None)
            or getattr(module, "experimental", module).OpResolverType
        )
        return Backend(candidate, interpreter_class, resolver)
    raise BackendError(
        f"no TFLite interpreter could be loaded ({'; '.join(failures)}); {INSTALL_HINT}"
    )


def read_model_bytes(model_path: Path) -> bytes:
    """The file's bytes, after checking it exists and looks like a TFLite flatbuffer."""
    try:
        content = model_path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{model_path}: no such model file") from None
    except IsADirectoryError:
        raise ModelError(f"{model_path}: is a directory, not a .tflite model") from None
    except OSError as error:
        raise ModelError(f"{model_path}: cannot read ({error.strerror})") from None
    if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{model_path}: not a TFLite model (no TFL3 identifier)")
    try:
        check_tflite(content)
    except FlatbufferError as error:
        raise ModelError(f"{model_path}: not a loadable TFLite model ({error})") from None
    return content


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the C++ runtime writes there, not to sys.stderr.

    It prints an INFO line for every XNNPACK delegate and its own diagnostics for a bad model;
    the caller's one-line error says what matters.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no fd 2 (embedded interpreter, closed stderr): nothing to hide
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int
    index: int = -1  # the interpreter's tensor index


def _tensor_info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
        index=int(detail["index"]),
    )


# Ops that pass a distribution through unchanged (in value, not in layout or type).
_DISTRIBUTION_PRESERVING = {"DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE"}


class Model:
    """A loaded TFLite model, any inputs and outputs: set inputs, invoke, read dequantized outputs.

    A model with a card beside it must match the SHA-256 its card records. Whether it is an
    image classifier (what `classify` and `camera` need) is `classifier_problem()`."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        runtime: str | None = None,
        reference_kernels: bool = False,
    ) -> None:
        self.path = Path(model_path)
        content = read_model_bytes(self.path)
        self.size_bytes = len(content)
        self.metadata: ModelMetadata | None = read_metadata(self.path, content)
        check_against_card(self.path, content, self.metadata.name if self.metadata else None)
        self.backend = load_backend(runtime)
        options: dict[str, Any] = {"model_content": content, "num_threads": threads}
        if reference_kernels:
            options["experimental_op_resolver_type"] = self.backend.op_resolver_type.BUILTIN_REF
        try:
            with native_stderr_silenced():
                self._interpreter = self.backend.interpreter_class(**options)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelError(f"{self.path}: not a loadable TFLite model ({reason})") from None
        self.inputs = [_tensor_info(d) for d in self._interpreter.get_input_details()]
        self.outputs = [_tensor_info(d) for d in self._interpreter.get_output_details()]

    @property
    def input(self) -> TensorInfo:
        """The first input (an image classifier's only one)."""
        return self.inputs[0]

    @property
    def output(self) -> TensorInfo:
        """The first output (an image classifier's only one)."""
        return self.outputs[0]

    def classifier_problem(self) -> str | None:
        """Why this is not an image classifier (one NHWC image of 1 or 3 channels in, float32,
        int8 or uint8; one vector of two or more class scores out), or None when it is one."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            return (
                f"not an image classifier: expected one input and one output, "
                f"got {len(self.inputs)} inputs and {len(self.outputs)} outputs"
            )
        shape, scores = self.input.shape, self.output.shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
            return (
                f"not an image classifier: expected an input of shape 1xHxWx1 or 1xHxWx3 (NHWC), "
                f"got {list(shape)}"
            )
        if self.input.dtype not in INPUT_TYPES:
            return (
                f"not an image classifier: input type {self.input.dtype} "
                f"(expected {', '.join(INPUT_TYPES)})"
            )
        if len(scores) == 0 or int(np.prod(scores)) != scores[-1] or scores[-1] < 2:
            return (
                f"not an image classifier: expected an output of N >= 2 scores, got {list(scores)}"
            )
        return None

    def input_spec_for(self, normalization: Normalization) -> InputSpec:
        """The image input as preprocessing needs it, with `normalization` as its meaning."""
        problem = self.classifier_problem()
        if problem is not None:
            raise ModelError(f"{self.path}: {problem}")
        _, height, width, channels = self.input.shape
        try:
            return InputSpec(
                height=height,
                width=width,
                channels=channels,
                dtype=np.dtype(self.input.dtype),
                scale=self.input.scale,
                zero_point=self.input.zero_point,
                normalization=normalization,
            )
        except FrameError as error:
            raise ModelError(f"{self.path}: {error}") from None

    @property
    def input_spec(self) -> InputSpec:
        """The image input with the meaning its metadata states, else our models' convention."""
        normalization = self.metadata.normalization if self.metadata else None
        return self.input_spec_for(normalization or INPUT_RANGES[DEFAULT_INPUT_RANGE])

    @property
    def quantized(self) -> bool:
        return any(t.dtype in ("int8", "uint8") for t in self.inputs)

    def set_input(self, tensor: npt.NDArray[np.generic], position: int = 0) -> None:
        self._interpreter.set_tensor(self.inputs[position].index, tensor)

    def invoke(self) -> None:
        self._interpreter.invoke()

    def output_values(self, position: int = 0) -> npt.NDArray[np.float32]:
        """An output as float values (dequantized for quantized outputs)."""
        info = self.outputs[position]
        raw: npt.NDArray[np.generic] = np.asarray(self._interpreter.get_tensor(info.index))
        if info.scale:
            return ((raw.astype(np.float32) - info.zero_point) * info.scale).astype(np.float32)
        return raw.astype(np.float32)

    def scores(self) -> npt.NDArray[np.float32]:
        """The first output as a flat vector of float class scores."""
        return self.output_values(0).reshape(-1)

    def run(self, tensor: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """Set the input, invoke, and return the dequantized scores."""
        self.set_input(tensor)
        self.invoke()
        return self.scores()

    def random_inputs(self, seed: int = 0) -> list[npt.NDArray[np.generic]]:
        """Deterministic random data of each input's shape and type (bench's inputs for a model
        that is no image classifier)."""
        rng = np.random.default_rng(seed)
        tensors: list[npt.NDArray[np.generic]] = []
        for info in self.inputs:
            dtype = np.dtype(info.dtype)
            if dtype == np.bool_:
                tensors.append(rng.integers(0, 2, info.shape).astype(np.bool_))
            elif np.issubdtype(dtype, np.integer):
                limits = np.iinfo(dtype)
                tensors.append(
                    rng.integers(limits.min, int(limits.max) + 1, info.shape, dtype=dtype)
                )
            elif np.issubdtype(dtype, np.floating):
                tensors.append(rng.random(info.shape).astype(dtype))
            else:
                raise ModelError(f"{self.path}: cannot make data for input {info.name} ({dtype})")
        return tensors

    def _ops(self) -> list[dict[str, Any]]:
        # A delegate (XNNPACK) adds a node that stands for the ops it took over: not a model op.
        ops = self._interpreter._get_ops_details()
        return [op for op in ops if op["op_name"] != "DELEGATE"]

    def op_counts(self) -> dict[str, int]:
        """How many times each builtin operator occurs in the graph."""
        return dict(Counter(str(op["op_name"]) for op in self._ops()))

    def output_is_distribution(self) -> bool:
        """True when the first output comes from a SOFTMAX (through dequantize, quantize or
        reshape ops): its scores are probabilities already; else they are logits."""
        producers = {int(t): op for op in self._ops() for t in op["outputs"]}
        tensor = self.output.index
        while (op := producers.get(tensor)) is not None:
            if op["op_name"] == "SOFTMAX":
                return True
            if op["op_name"] not in _DISTRIBUTION_PRESERVING or len(op["inputs"]) < 1:
                return False
            tensor = int(op["inputs"][0])
        return False

    def multiply_adds(self) -> int:
        """Multiply-adds per inference, from the conv and dense ops' shapes."""
        details = self._interpreter.get_tensor_details()
        shapes = {int(d["index"]): [int(v) for v in d["shape"]] for d in details}
        return multiply_adds(self._ops(), shapes)

    def tensors(self) -> list[TensorInfo]:
        return [_tensor_info(d) for d in self._interpreter.get_tensor_details()]
