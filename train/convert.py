"""Keras → TFLite: a float32 model, a full-integer INT8 model (int8 input and output), and the
INT8 model with a uint8 input for the consumers that take no int8 input (MediaPipe Tasks, the
TFLite Task Library, the Android/iOS/Coral examples)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from edge_cifar.interpreter import Model
from edge_cifar.preprocess import PIXEL_SCALE
from train.artifacts import RunFiles, write_atomic
from train.data import Split
from train.metadata import ModelDescription, stamp
from train.qat import load_float_model, load_qat_model
from train.recipe import ModelConfig

REPRESENTATIVE_IMAGES = 200
# Without QAT the converter's own ranges are all there is: calibrate on more images.
POST_TRAINING_IMAGES = 1000
# Integer types a full-integer model may hold: int8 activations/weights, int32 biases.
INTEGER_TYPES = {"int8", "int32"}


class ConversionError(RuntimeError):
    pass


def convert_run(
    config: ModelConfig,
    files: RunFiles,
    train: Split,
    uncertain_threshold: float | None = None,
) -> list[Path]:
    """The run's float model as float32 TFLite, its QAT model as full INT8 (calibrated on
    `train`; a recipe without QAT quantizes the float model after training), the uint8-interface
    twin; every file stamped with its metadata."""
    float_model = load_float_model(config, files)
    to_float_tflite(float_model, files.float_model)
    if config.recipe.qat_epochs:
        to_int8_tflite(load_qat_model(config, files), train, files.int8_model)
    else:
        to_int8_tflite(float_model, train, files.int8_model, POST_TRAINING_IMAGES)
    write_uint8_model(files.int8_model, files.uint8_model)
    return stamp_run(config, files, train.class_names, uncertain_threshold)


def stamp_run(
    config: ModelConfig,
    files: RunFiles,
    labels: tuple[str, ...],
    uncertain_threshold: float | None = None,
) -> list[Path]:
    """The metadata into the run's three model files: the labels travel in the model (the training
    split's class names, CIFAR-10's or the folder's), and the uncertain threshold once chosen."""
    about = ModelDescription(
        config.name, config.description, labels, uncertain_threshold=uncertain_threshold
    )
    written = [files.float_model, files.int8_model, files.uint8_model]
    for path in written:
        stamp(path, about)
    return written


def to_float_tflite(model: keras.Model, path: Path) -> Path:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    write_atomic(path, converter.convert())
    return path


def to_int8_tflite(
    model: keras.Model, calibration: Split, path: Path, images: int = REPRESENTATIVE_IMAGES
) -> Path:
    """Full-integer conversion: every op int8, input and output int8, no float tensor left. A QAT
    model carries its ranges; a float model's are measured on `images` calibration images."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8

    def representative() -> Iterator[list[np.ndarray]]:
        for image in calibration.images[:images]:
            yield [(image[np.newaxis].astype(np.float32) * PIXEL_SCALE)]

    converter.representative_dataset = representative
    content = converter.convert()
    write_atomic(path, content)
    float_tensors = non_integer_tensors(path)
    if float_tensors:
        path.unlink()
        raise ConversionError(f"{path}: not full-integer, float tensors left: {float_tensors[:5]}")
    return path


def non_integer_tensors(path: Path) -> list[str]:
    """Names of the tensors of a TFLite model that are neither int8 nor int32."""
    return [t.name for t in Model(path).tensors() if t.dtype not in INTEGER_TYPES]


def write_uint8_model(int8_path: Path, uint8_path: Path) -> Path:
    write_atomic(uint8_path, with_uint8_interface(int8_path.read_bytes()))
    return uint8_path


def with_uint8_interface(int8_content: bytes) -> bytes:
    """The INT8 model with a uint8 input and output: a QUANTIZE op (uint8 -> int8) in front of the
    graph and one (int8 -> uint8) after it, what the converter writes for
    `inference_input_type=inference_output_type=tf.uint8`, here applied to the converted file so
    both files hold the same weights and graph. Each uint8 tensor has its int8 tensor's scale and
    zero point + 128, so the requantize is exact: every pixel reaches the graph as the value the
    int8 model is fed, and the scores come out the same."""
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(int8_content))
    if len(model.subgraphs) != 1:
        raise ConversionError("a uint8 interface needs a model of one subgraph")
    graph = model.subgraphs[0]
    quantize = _opcode_index(model, schema.BuiltinOperator.QUANTIZE)
    for role in ("inputs", "outputs"):
        int8_indices = list(getattr(graph, role))
        uint8_indices = [_add_uint8_twin(graph, index) for index in int8_indices]
        for int8_index, uint8_index in zip(int8_indices, uint8_indices, strict=True):
            op = schema.OperatorT()
            op.opcodeIndex = quantize
            if role == "inputs":
                op.inputs, op.outputs = [uint8_index], [int8_index]
                graph.operators.insert(0, op)  # operators run in list order
            else:
                op.inputs, op.outputs = [int8_index], [uint8_index]
                graph.operators.append(op)
        setattr(graph, role, uint8_indices)
        twins = dict(zip(int8_indices, uint8_indices, strict=True))
        for signature in model.signatureDefs or []:
            for tensor_map in getattr(signature, role) or []:
                tensor_map.tensorIndex = twins.get(tensor_map.tensorIndex, tensor_map.tensorIndex)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _add_uint8_twin(graph: schema.SubGraphT, index: int) -> int:
    """Append a uint8 tensor shaped and scaled like the int8 tensor `index`; return its index."""
    tensor = graph.tensors[index]
    if tensor.type != schema.TensorType.INT8 or tensor.quantization is None:
        raise ConversionError(f"tensor {tensor.name!r} is not a quantized int8 tensor")
    twin = schema.TensorT()
    twin.name = bytes(tensor.name) + b"_uint8"
    twin.shape, twin.shapeSignature = tensor.shape, tensor.shapeSignature
    twin.type, twin.buffer = schema.TensorType.UINT8, 0  # buffer 0 is the empty one: no data
    twin.quantization = schema.QuantizationParametersT()
    twin.quantization.scale = list(tensor.quantization.scale)
    twin.quantization.zeroPoint = [int(z) + 128 for z in tensor.quantization.zeroPoint]
    graph.tensors.append(twin)
    return len(graph.tensors) - 1


def _opcode_index(model: schema.ModelT, builtin: int) -> int:
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, builtin, 2
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
