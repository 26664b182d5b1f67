"""`edge-cifar info`: what any .tflite file is, from its tensors, operators and TFLite metadata.

Nothing runs: the facts are read once from the loaded model. Every tensor is listed only when
asked (`--tensors`): a CNN has dozens, and the inputs and outputs are what a user needs first.
"""

from __future__ import annotations

from edge_cifar.interpreter import Model, TensorInfo
from edge_cifar.metadata import ModelMetadata


def tensor_json(info: TensorInfo) -> dict[str, object]:
    return {
        "shape": list(info.shape),
        "dtype": info.dtype,
        "scale": info.scale,
        "zero_point": info.zero_point,
    }


def describe_quantization(info: TensorInfo) -> str:
    if not info.scale:
        return info.dtype
    return f"{info.dtype} (scale {info.scale:.6g}, zero point {info.zero_point})"


def model_facts_json(model: Model, tensors: bool = False) -> dict[str, object]:
    """What `info --json` shows: file, backend, inputs/outputs, operators, metadata; every
    tensor with `tensors`."""
    facts: dict[str, object] = {
        "path": str(model.path),
        "backend": model.backend.name,
        "size_bytes": model.size_bytes,
        "quantized": model.quantized,
        "input": {"name": model.input.name, **tensor_json(model.input)},
        "output": {"name": model.output.name, **tensor_json(model.output)},
        "inputs": [{"name": t.name, **tensor_json(t)} for t in model.inputs],
        "outputs": [{"name": t.name, **tensor_json(t)} for t in model.outputs],
        "image_classifier": model.classifier_problem() is None,
        "op_counts": model.op_counts(),
        "metadata": None if model.metadata is None else model.metadata.as_json(),
    }
    if tensors:
        facts["tensors"] = [{"name": t.name, **tensor_json(t)} for t in model.tensors()]
    return facts


def _metadata_lines(metadata: ModelMetadata | None) -> list[str]:
    if metadata is None:
        return ["  metadata none"]
    general = {
        "name": metadata.name,
        "version": metadata.version,
        "author": metadata.author,
        "licence": metadata.licence,
        "description": metadata.description,
        "input": metadata.normalization.describe() if metadata.normalization else None,
        "labels": None
        if metadata.labels is None
        else f"{len(metadata.labels)} in {metadata.label_file}: "
        + ", ".join(metadata.labels[:10])
        + (", ..." if len(metadata.labels) > 10 else ""),
        "uncertain": None
        if metadata.score_threshold is None
        else f"below a score of {metadata.score_threshold:g} (the default --min-score)",
    }
    return ["  metadata", *(f"    {k:<12}{v}" for k, v in general.items() if v is not None)]


def describe_model(model: Model, tensors: bool = False) -> str:
    """`info` as text: the facts first, then the metadata; one line per tensor with `tensors`."""
    ops = ", ".join(f"{name} x{count}" for name, count in sorted(model.op_counts().items()))
    problem = model.classifier_problem()
    all_tensors = model.tensors()
    lines = [
        f"{model.path}  ({model.backend.name})",
        f"  size     {model.size_bytes} bytes ({model.size_bytes / 1024:.1f} KiB)",
        *(f"  input    {t.name} {list(t.shape)} {describe_quantization(t)}" for t in model.inputs),
        *(f"  output   {t.name} {list(t.shape)} {describe_quantization(t)}" for t in model.outputs),
        f"  kind     {'image classifier' if problem is None else problem}",
        f"  ops      {sum(model.op_counts().values())}: {ops}",
        *_metadata_lines(model.metadata),
    ]
    if not tensors:
        lines.append(f"  tensors  {len(all_tensors)} (--tensors lists them)")
        return "\n".join(lines)
    width = max((len(t.name) for t in all_tensors), default=0)
    lines += [
        f"  tensors  {len(all_tensors)}",
        *(
            f"    {t.name.ljust(width)}  {list(t.shape)} {describe_quantization(t)}"
            for t in all_tensors
        ),
    ]
    return "\n".join(lines)
