"""TFLite metadata for our model files, written with tflite-support's metadata writer.

MediaPipe Tasks, the TFLite Task Library, Android Studio's ML binding and our own runtime read a
model's name, input normalization and labels from this metadata, so a shipped file needs nothing
beside it. The labels travel as an associated file (`labels.txt`, zipped onto the flatbuffer);
the weights and the graph are left as they are.

tflite-support 0.4.4 pins protobuf < 4, which TensorFlow 2.21 cannot share: it is installed
without its dependencies (`make setup`), and only its metadata modules are imported (its package
`__init__` loads the Task Library, which needs that old protobuf).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import flatbuffers

from edge_cifar.interpreter import TFLITE_IDENTIFIER
from edge_cifar.preprocess import DEFAULT_INPUT_RANGE, INPUT_RANGES, Normalization
from train.artifacts import write_atomic

AUTHOR = "edge-cifar"
LICENCE = "MIT"
LABELS_FILE = "labels.txt"
# The name of the model-level metadata entry whose buffer holds the TFLite metadata.
METADATA_NAME = "TFLITE_METADATA"


class MetadataError(RuntimeError):
    """The metadata writer is missing, or refused the model."""


def package_version() -> str:
    try:
        return package_metadata.version("edge-cifar")
    except package_metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ModelDescription:
    """What a model file says about itself: TFLite metadata's general, input and output parts."""

    name: str
    description: str
    labels: tuple[str, ...]
    normalization: Normalization = INPUT_RANGES[DEFAULT_INPUT_RANGE]
    # The top score under which the device reports "uncertain" (ScoreThresholdingOptions on the
    # output, which MediaPipe Tasks applies too); None: the model recommends none.
    uncertain_threshold: float | None = None
    version: str = ""  # empty: edge-cifar's package version
    author: str = AUTHOR
    licence: str = LICENCE


def with_metadata(model_content: bytes, about: ModelDescription) -> bytes:
    """The model with image-classifier metadata (replacing any it had) and its labels attached."""
    try:
        from tensorflow_lite_support.metadata import metadata_schema_py_generated as schema
        from tensorflow_lite_support.metadata.python.metadata_writers import (
            image_classifier,
            metadata_info,
            writer_utils,
        )
    except ImportError as error:
        raise MetadataError(
            f"the TFLite metadata writer is not installed ({error}); run `make setup`"
        ) from None
    if any(not label.strip() or "\n" in label for label in about.labels):
        raise MetadataError(f"labels must be non-empty single lines, got {about.labels}")
    # The writer takes label files by path; the file's name is what consumers see in the model.
    with tempfile.TemporaryDirectory() as folder:
        labels_path = Path(folder) / LABELS_FILE
        labels_path.write_text("\n".join(about.labels) + "\n")
        buffer = bytearray(without_associated_files(model_content))
        try:
            writer = image_classifier.MetadataWriter.create_from_metadata_info(
                buffer,
                general_md=metadata_info.GeneralMd(
                    name=about.name,
                    version=about.version or package_version(),
                    description=about.description,
                    author=about.author,
                    licenses=about.licence,
                ),
                input_md=metadata_info.InputImageTensorMd(
                    name="image",
                    description="RGB image, "
                    f"{about.normalization.describe()}; centre-cropped and resized to the input.",
                    norm_mean=list(about.normalization.mean),
                    norm_std=list(about.normalization.std),
                    color_space_type=schema.ColorSpaceType.RGB,
                    tensor_type=writer_utils.get_input_tensor_types(buffer)[0],
                ),
                output_md=_thresholded(
                    metadata_info.ClassificationTensorMd(
                        name="probability",
                        description=f"Scores of the {len(about.labels)} classes, in label order.",
                        label_files=[metadata_info.LabelFileMd(file_path=str(labels_path))],
                        tensor_type=writer_utils.get_output_tensor_types(buffer)[0],
                    ),
                    about.uncertain_threshold,
                    schema,
                ),
            )
            populated = bytes(writer.populate())
        except (ValueError, RuntimeError) as error:
            raise MetadataError(f"the metadata writer refused the model: {error}") from None
    return with_fixed_file_dates(populated)


def _thresholded(output_md: Any, threshold: float | None, schema: Any) -> Any:
    """The output's metadata with a ScoreThresholdingOptions process unit when `threshold` is set
    (the writer has no parameter for it; its classification metadata has no other unit)."""
    if threshold is None:
        return output_md
    if not 0.0 <= threshold < 1.0:
        raise MetadataError(f"an uncertain threshold must be in 0..1, got {threshold}")
    create = output_md.create_metadata

    def create_metadata() -> Any:
        tensor = create()
        unit = schema.ProcessUnitT()
        unit.optionsType = schema.ProcessUnitOptions.ScoreThresholdingOptions
        unit.options = schema.ScoreThresholdingOptionsT()
        unit.options.globalScoreThreshold = threshold
        tensor.processUnits = [*(tensor.processUnits or []), unit]
        return tensor

    output_md.create_metadata = create_metadata
    return output_md


# The zip format's earliest date. The writer dates each associated file "now"; a fixed date makes a
# stamp reproducible (same model, same metadata: same bytes, so the same SHA-256 in the card).
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def with_fixed_file_dates(model_content: bytes) -> bytes:
    """The model with its associated files re-zipped as the writer zips them (stored, appended
    after the flatbuffer), dated `FIXED_DATE`."""
    with zipfile.ZipFile(io.BytesIO(model_content)) as archive:
        members = archive.infolist()
        files = [(member.filename, archive.read(member)) for member in members]
        flatbuffer_end = min(member.header_offset for member in members)
    output = io.BytesIO(model_content[:flatbuffer_end])
    output.seek(0, io.SEEK_END)
    with zipfile.ZipFile(output, "a") as archive:
        for name, content in files:
            archive.writestr(zipfile.ZipInfo(name, date_time=FIXED_DATE), content)
    return output.getvalue()


def without_associated_files(model_content: bytes) -> bytes:
    """The flatbuffer alone, without the zip of associated files a stamped model carries; the
    writer then replaces the metadata buffer in place, so stamping twice gives the same bytes."""
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_content, 0))
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def stamp(path: Path, about: ModelDescription) -> Path:
    """Rewrite a .tflite file in place (atomically) with `about` as its metadata."""
    write_atomic(path, with_metadata(path.read_bytes(), about))
    return path


def same_graph(before: bytes, after: bytes) -> bool:
    """True when two model files hold the same operators, tensors and weights: all they may
    differ in is TFLite metadata (its buffer, its entry, the associated files)."""
    return _without_metadata(before) == _without_metadata(after)


def _without_metadata(content: bytes) -> bytes:
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    ours = {m.buffer for m in model.metadata or [] if m.name == METADATA_NAME.encode()}
    model.metadata = [m for m in model.metadata or [] if m.name != METADATA_NAME.encode()]
    if ours:
        # The writer's buffer is the last one (it appends it): dropping it shifts no index.
        if ours != {len(model.buffers) - 1}:
            raise MetadataError("the metadata buffer is not the model's last buffer")
        model.buffers = model.buffers[:-1]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())
