"""What a model file says about itself: its TFLite metadata, read on the device.

The metadata (name, description, version, author, licence, the input's normalization, the label
file's name) is a flatbuffer in one of the model's buffers, named `TFLITE_METADATA`; the label file
itself is zipped onto the end of the model. tflite-support's reader cannot be a device dependency
(it pins protobuf < 4 and ships C++ extensions for few platforms), so the fields the runtime needs
are read with the same bounds-checked walker that vets the model (edge_cifar/flatbuffer.py) and
the labels with the standard library's zipfile. A training test reads the same files with
tflite-support's `MetadataDisplayer` and checks that both readers agree.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge_cifar.errors import ModelError
from edge_cifar.flatbuffer import FlatbufferError, root
from edge_cifar.preprocess import FrameError, Normalization

METADATA_NAME = "TFLITE_METADATA"
# Field numbers of the parts read, from TFLite's schema.fbs and tflite-support's
# metadata_schema.fbs.
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_GENERAL_FIELDS = {"name": 0, "description": 1, "version": 2, "author": 4, "licence": 5}
_SUBGRAPHS, _INPUTS, _OUTPUTS = 3, 2, 3
_TENSOR_PROCESS_UNITS, _TENSOR_ASSOCIATED_FILES = 4, 6
_NORMALIZATION_OPTIONS = 1  # the ProcessUnitOptions union's members
_SCORE_THRESHOLDING_OPTIONS = 3
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


@dataclass(frozen=True)
class ModelMetadata:
    """The metadata fields the runtime uses; None where the model does not say."""

    name: str | None = None
    description: str | None = None
    version: str | None = None
    author: str | None = None
    licence: str | None = None
    normalization: Normalization | None = None
    label_file: str | None = None
    labels: tuple[str, ...] | None = None
    # The top score under which the model recommends "uncertain" (ScoreThresholdingOptions).
    uncertain_threshold: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "author": self.author,
            "licence": self.licence,
            "normalization": None
            if self.normalization is None
            else {"mean": list(self.normalization.mean), "std": list(self.normalization.std)},
            "label_file": self.label_file,
            "labels": None if self.labels is None else list(self.labels),
            "uncertain_threshold": self.uncertain_threshold,
        }


def read_metadata(path: Path, content: bytes) -> ModelMetadata | None:
    """The model's TFLite metadata, None when it has none; a ModelError when it is unreadable."""
    try:
        model = root(content)
        buffers = model.tables(_MODEL_BUFFERS)
        entry = next(
            (m for m in model.tables(_MODEL_METADATA) if m.string(0) == METADATA_NAME), None
        )
        if entry is None:
            return None
        index = entry.u32(1)
        if index >= len(buffers):
            raise FlatbufferError(f"metadata buffer index {index} out of range")
        return _parse(path, content, buffers[index].data(0))
    except (FlatbufferError, FrameError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: unreadable TFLite metadata ({error})") from None


def _parse(path: Path, content: bytes, buffer: bytes) -> ModelMetadata:
    metadata = root(buffer)
    general = {key: metadata.string(field) for key, field in _GENERAL_FIELDS.items()}
    subgraphs = metadata.tables(_SUBGRAPHS)
    inputs = subgraphs[0].tables(_INPUTS) if subgraphs else []
    outputs = subgraphs[0].tables(_OUTPUTS) if subgraphs else []
    normalization = None
    for unit in inputs[0].tables(_TENSOR_PROCESS_UNITS) if len(inputs) == 1 else []:
        options = unit.table(1)
        if unit.u8(0) == _NORMALIZATION_OPTIONS and options is not None:
            normalization = Normalization(tuple(options.floats(0)), tuple(options.floats(1)))
    label_file = next(
        (
            name
            for file in (outputs[0].tables(_TENSOR_ASSOCIATED_FILES) if len(outputs) == 1 else [])
            if file.u8(2) == _TENSOR_AXIS_LABELS and (name := file.string(0))
        ),
        None,
    )
    labels = None if label_file is None else read_labels(path, content, label_file)
    threshold = None
    for unit in outputs[0].tables(_TENSOR_PROCESS_UNITS) if len(outputs) == 1 else []:
        options = unit.table(1)
        if unit.u8(0) == _SCORE_THRESHOLDING_OPTIONS and options is not None:
            # global_score_threshold, a float32 field: its bits read as u32 and reinterpreted.
            threshold = struct.unpack("<f", struct.pack("<I", options.u32(0)))[0]
    return ModelMetadata(
        **general,
        normalization=normalization,
        label_file=label_file,
        labels=labels,
        uncertain_threshold=None if threshold is None else round(threshold, 6),
    )


def read_labels(path: Path, content: bytes, name: str) -> tuple[str, ...]:
    """The lines of the label file `name` zipped onto the model."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            text = archive.read(name).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, OSError) as error:
        raise ModelError(f"{path}: its metadata names the label file {name!r} ({error})") from None
    return parse_labels(text)


def parse_labels(text: str) -> tuple[str, ...]:
    """One label per line; blank lines at the end do not count."""
    return tuple(line.strip() for line in text.rstrip("\n").splitlines())


def read_labels_file(path: Path) -> tuple[str, ...]:
    try:
        return parse_labels(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: cannot read the labels ({error})") from None
