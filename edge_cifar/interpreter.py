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

from edge_cifar.flatbuffer import FlatbufferError, check_tflite
from edge_cifar.labels import NUM_CLASSES
from edge_cifar.macs import multiply_adds
from edge_cifar.preprocess import FrameError, InputSpec

BACKENDS: dict[str, str] = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}
INSTALL_HINT = (
    "pip install 'edge-cifar[litert]' (or 'edge-cifar[tflite]' for tflite-runtime with NumPy < 2)"
)
# Every TFLite flatbuffer carries this file identifier at bytes 4..8.
TFLITE_IDENTIFIER = b"TFL3"


class BackendError(RuntimeError):
    """No usable TFLite interpreter package."""


class ModelError(ValueError):
    """A model file that is missing, not a TFLite model, or not a 10-class image classifier."""


@dataclass(frozen=True)
class Backend:
    name: str
    interpreter_class: Any
    op_resolver_type: Any


def load_backend(name: str | None = None) -> Backend:
    """The first importable backend, or the named one."""
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


def _tensor_info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


class Model:
    """A loaded 10-class image classifier: set an input, invoke, read dequantized scores."""

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
        self._check_classifier()

    def _check_classifier(self) -> None:
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{self.path}: expected one input and one output, "
                f"got {len(inputs)} inputs and {len(outputs)} outputs"
            )
        self.input = _tensor_info(inputs[0])
        self.output = _tensor_info(outputs[0])
        in_shape, out_shape = self.input.shape, self.output.shape
        if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[3] != 3:
            raise ModelError(
                f"{self.path}: expected an input of shape 1xHxWx3, got {list(in_shape)}"
            )
        if len(out_shape) != 2 or out_shape[1] != NUM_CLASSES:
            raise ModelError(
                f"{self.path}: expected an output of {NUM_CLASSES} class scores, "
                f"got {list(out_shape)}"
            )
        try:
            self.input_spec = InputSpec(
                height=in_shape[1],
                width=in_shape[2],
                dtype=np.dtype(self.input.dtype),
                scale=self.input.scale,
                zero_point=self.input.zero_point,
            )
        except FrameError as error:
            raise ModelError(f"{self.path}: {error}") from None
        self._input_index = int(inputs[0]["index"])
        self._output_index = int(outputs[0]["index"])

    @property
    def quantized(self) -> bool:
        return self.input.dtype in ("int8", "uint8")

    def set_input(self, tensor: npt.NDArray[np.generic]) -> None:
        self._interpreter.set_tensor(self._input_index, tensor)

    def invoke(self) -> None:
        self._interpreter.invoke()

    def scores(self) -> npt.NDArray[np.float32]:
        """The output as float class scores (dequantized for int8/uint8 outputs)."""
        raw: npt.NDArray[np.generic] = np.asarray(
            self._interpreter.get_tensor(self._output_index)[0]
        )
        if self.output.scale:
            return ((raw.astype(np.float32) - self.output.zero_point) * self.output.scale).astype(
                np.float32
            )
        return raw.astype(np.float32)

    def run(self, tensor: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """Set the input, invoke, and return the dequantized scores."""
        self.set_input(tensor)
        self.invoke()
        return self.scores()

    def op_counts(self) -> dict[str, int]:
        """How many times each builtin operator occurs in the graph."""
        ops = self._interpreter._get_ops_details()
        # A delegate (XNNPACK) adds a node that stands for the ops it took over: not a model op.
        return dict(Counter(str(op["op_name"]) for op in ops if op["op_name"] != "DELEGATE"))

    def multiply_adds(self) -> int:
        """Multiply-adds per inference, from the conv and dense ops' shapes."""
        shapes = {int(d["index"]): list(d["shape"]) for d in self._interpreter.get_tensor_details()}
        return multiply_adds(self._interpreter._get_ops_details(), shapes)

    def tensors(self) -> list[TensorInfo]:
        return [_tensor_info(d) for d in self._interpreter.get_tensor_details()]
