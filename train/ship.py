"""Ship a trained model: copy its TFLite files into firmware_models/ with labels and a model card.

Every file is first written into a staging folder beside the destination and then renamed into
place, so a failure (a full disk, an interrupt) never leaves half a file in firmware_models/.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from edge_cifar.interpreter import Model
from train.artifacts import RunFiles
from train.labels import CLASS_NAMES
from train.models import ModelConfig

VERSIONED_PACKAGES = (
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "numpy",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def training_seconds(files: RunFiles, phase: str) -> float:
    path = files.history(phase)
    return sum(e["seconds"] for e in json.loads(path.read_text())) if path.exists() else 0.0


def _file_facts(path: Path, shipped_name: str) -> dict[str, Any]:
    content = path.read_bytes()
    model = Model(path)
    return {
        "file": shipped_name,
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "input": {
            "dtype": model.input.dtype,
            "shape": list(model.input.shape),
            "scale": model.input.scale,
            "zero_point": model.input.zero_point,
        },
        "output": {
            "dtype": model.output.dtype,
            "shape": list(model.output.shape),
            "scale": model.output.scale,
            "zero_point": model.output.zero_point,
        },
        "ops": model.op_counts(),
    }


def build_card(
    config: ModelConfig,
    files: RunFiles,
    evaluation: dict[str, Any],
    *,
    parameters: int,
    data_sha256: str,
    train_images: int,
    validation_images: int,
    command: str,
) -> dict[str, Any]:
    # Here, not at the top: train.distill imports TensorFlow, which rewriting a card's markdown
    # (`make firmware`) does not need.
    from train.distill import recorded_teacher_sha256

    teacher = config.recipe.teacher
    float_seconds = training_seconds(files, "float")
    qat_seconds = training_seconds(files, "qat")
    int8_report = evaluation["reports"]["int8_tflite"]
    return {
        "model": config.name,
        "description": config.description,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "int8_accuracy": evaluation["accuracy"]["int8_tflite"],
        "float_accuracy": evaluation["accuracy"]["float_keras"],
        "float_tflite_accuracy": evaluation["accuracy"]["float_tflite"],
        "int8_drop_pt": evaluation["int8_drop_pt"],
        "int8_agreement_with_float": evaluation["int8_agreement_with_float_keras"],
        "test_images": evaluation["test_images"],
        "int8_per_class": int8_report["per_class"],
        "int8_macro_avg": int8_report["macro_avg"],
        "int8_confusion_matrix": int8_report["confusion_matrix"],
        "parameters": parameters,
        "int8_model": _file_facts(files.int8_model, f"{config.name}_int8.tflite"),
        "int8_budget_kib": config.int8_budget_kib,
        "float_model": _file_facts(files.float_model, f"{config.name}_float.tflite"),
        "training": {
            "recipe": config.recipe.as_dict(),
            "train_images": train_images,
            "validation_images": validation_images,
            "float_seconds": round(float_seconds, 1),
            "qat_seconds": round(qat_seconds, 1),
            "total_seconds": round(float_seconds + qat_seconds, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "teacher_sha256": recorded_teacher_sha256(files.teacher_scores(teacher))
            if teacher
            else None,
        },
        "data": {"name": "CIFAR-10", "sha256": data_sha256},
        "versions": package_versions(),
        "report": f"../reports/{config.name}/index.md",
    }


def card_markdown(card: dict[str, Any]) -> str:
    int8, training = card["int8_model"], card["training"]
    recipe = training["recipe"]
    accuracy = {k: f"{100 * card[k]:.2f}%" for k in ("float_accuracy", "float_tflite_accuracy")}
    ops = ", ".join(f"{op} x{n}" for op, n in sorted(int8["ops"].items()))
    lines = [
        f"# Model card: `{card['model']}`",
        "",
        card["description"],
        "",
        "| | float (Keras) | float TFLite | INT8 TFLite |",
        "| --- | --- | --- | --- |",
        f"| test accuracy ({card['test_images']} images) | {accuracy['float_accuracy']} "
        f"| {accuracy['float_tflite_accuracy']} | **{100 * card['int8_accuracy']:.2f}%** |",
        "",
        f"INT8 drop: {card['int8_drop_pt']:.2f} pt; INT8 and float agree on "
        f"{100 * card['int8_agreement_with_float']:.2f}% of test images.",
        "",
        f"- INT8 file: `{int8['file']}`, {int8['bytes']:,} bytes ({int8['bytes'] / 1024:.1f} KiB), "
        f"input {int8['input']['dtype']} (scale {int8['input']['scale']:.6g}, "
        f"zero point {int8['input']['zero_point']}), output {int8['output']['dtype']}"
        + (f"; budget {budget} KiB" if (budget := card.get("int8_budget_kib")) else ""),
        f"- float file: `{card['float_model']['file']}`, {card['float_model']['bytes']:,} bytes",
        f"- parameters: {card['parameters']:,}",
        f"- operators (INT8): {ops}",
        f"- training: {training['train_images']:,} training / {training['validation_images']:,} "
        "validation images (validation held out of the training set), "
        f"{recipe['epochs']} float + {recipe['qat_epochs']} QAT epochs, "
        f"{training['total_seconds'] / 60:.0f} minutes on {training['machine']}",
        "- augmentation: random crop and mirror"
        + (f", cutout {cutout} x {cutout} px" if (cutout := recipe.get("cutout")) else ""),
        *(
            [
                f"- distilled from `{teacher}`: {recipe['distillation_weight']:g} of every "
                f"training target is the class scores of `{teacher}_float.tflite` "
                + (
                    f"(the file with SHA-256 `{sha256}`; the shipped `{teacher}`'s card: "
                    if (sha256 := training.get("teacher_sha256"))
                    else "(its own training: "
                )
                + f"[{teacher}.card.md]({teacher}.card.md))"
            ]
            if (teacher := recipe.get("teacher"))
            else []
        ),
        f"- reproduce: `{card['command']}`",
        f"- data: CIFAR-10, SHA-256 of its batch files `{card['data']['sha256']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()),
        f"- report: [{card['report']}]({card['report']})",
        "",
        "## INT8 per class (test set)",
        "",
        "| class | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for name, m in card["int8_per_class"].items()
    ]
    return "\n".join(lines) + "\n"


def ship(card: dict[str, Any], files: RunFiles, firmware_dir: Path) -> list[Path]:
    """Write the models, labels.txt and the card into `firmware_dir`, each renamed into place."""
    name = card["model"]
    contents: dict[str, bytes] = {
        f"{name}_int8.tflite": files.int8_model.read_bytes(),
        f"{name}_float.tflite": files.float_model.read_bytes(),
        "labels.txt": ("\n".join(CLASS_NAMES) + "\n").encode(),
        f"{name}.card.json": (json.dumps(card, indent=1) + "\n").encode(),
        f"{name}.card.md": card_markdown(card).encode(),
    }
    firmware_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=firmware_dir, prefix=".staging-"))
    try:
        for file_name, content in contents.items():
            (staging / file_name).write_bytes(content)
        for file_name in contents:
            (staging / file_name).replace(firmware_dir / file_name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [firmware_dir / file_name for file_name in contents]
