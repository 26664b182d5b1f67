"""Ship a trained model: copy its TFLite files into firmware_models/ with labels and a model card.

Every file is first written into a staging folder beside the destination and then renamed into
place, so a failure (a full disk, an interrupt) never leaves half a file in firmware_models/.
The card records each model file's size and SHA-256; the runtime refuses a file that differs.
`restamp` gives already shipped models their TFLite metadata and uint8-interface file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from edge_cifar.interpreter import Model
from edge_cifar.model_files import CHECKOUT_MODELS_DIR
from train.artifacts import RunFiles
from train.camera_augment import EFFECT_NAMES
from train.convert import with_uint8_interface
from train.cost import training_cost
from train.labels import CLASS_NAMES
from train.metadata import ModelDescription, same_graph, with_metadata
from train.models import ModelConfig
from train.precision import FLOAT32, cpu_description

# The model files of a card, by the card key that records each and the file name's suffix.
MODEL_FILES = {"int8_model": "_int8", "uint8_model": "_uint8", "float_model": "_float"}


class ShipError(RuntimeError):
    """A shipped model that cannot be re-stamped (missing file, unreadable card, changed graph)."""


# What the measurement in train/NOTES.md found, quoted where a card states how its model started.
TRANSFER_EFFECT = (
    "measured on CIFAR-10 with 100 training images per class (train/NOTES.md, transfer): "
    "fine-tuned from a CIFAR-10 net 60.00% against 47.26% from scratch, same net and budget"
)
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def float_precision(files: RunFiles) -> str:
    """The precision the float phase trained in, as its history records it (float32 before the
    record existed)."""
    path = files.history("float")
    entries = json.loads(path.read_text()) if path.exists() else []
    return ", ".join(sorted({e.get("dtype_policy", FLOAT32) for e in entries})) or FLOAT32


def robustness_summary(robustness: dict[str, Any]) -> dict[str, Any]:
    models = robustness["models"]
    return {
        "test_images": robustness["test_images"],
        "corruptions": list(robustness["corruptions"]),
        "held_out": [n for n, facts in robustness["corruptions"].items() if facts["held_out"]],
        # A backbone model's benchmark runs its INT8 file only (train/evaluate.py).
        **{f"{kind}_mca": models[kind]["mca"] for kind in ("float", "int8") if kind in models},
        **{
            f"{kind}_mca_held_out": models[kind]["mca_held_out"]
            for kind in ("float", "int8")
            if kind in models
        },
    }


def shared_card_facts(
    config: ModelConfig,
    files: RunFiles,
    *,
    command: str,
    labels: list[str],
    parameters: int,
    multiply_adds: int,
    train_images: int,
    validation_images: int,
    data_name: str,
    data_sha256: str,
) -> dict[str, Any]:
    """What every card records, a device model's or a float teacher's: what the model is, its
    float file, how it was trained, on what, and what that cost."""
    float_seconds = training_seconds(files, "float")
    qat_seconds = training_seconds(files, "qat")
    return {
        "model": config.name,
        "description": config.description,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "labels": labels,
        "input_size": config.input_size,
        "parameters": parameters,
        "multiply_adds": multiply_adds,
        "float_model": _file_facts(files.float_model, f"{config.name}_float.tflite"),
        "training": {
            "recipe": config.recipe.as_dict(),
            "train_images": train_images,
            "validation_images": validation_images,
            "float_seconds": round(float_seconds, 1),
            "qat_seconds": round(qat_seconds, 1),
            "total_seconds": round(float_seconds + qat_seconds, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "cpu": cpu_description(),
            "precision": float_precision(files),
        },
        "training_cost": training_cost(
            files,
            multiply_adds=multiply_adds,
            train_images=train_images,
            batch_size=config.recipe.batch_size,
            teacher=config.recipe.teacher,
            firmware_dir=CHECKOUT_MODELS_DIR,
        ),
        "data": {"name": data_name, "sha256": data_sha256},
        "versions": package_versions(),
    }


def build_card(
    config: ModelConfig,
    files: RunFiles,
    evaluation: dict[str, Any],
    robustness: dict[str, Any],
    *,
    parameters: int,
    data_name: str,
    data_sha256: str,
    train_images: int,
    validation_images: int,
    command: str,
) -> dict[str, Any]:
    # Here, not at the top: train.distill imports TensorFlow, which rewriting a card's markdown
    # (`make firmware`) does not need.
    from train.distill import recorded_teacher_sha256

    teacher, pretrained = config.recipe.teacher, config.recipe.pretrained
    pretrained_sha256 = (
        _sha256(CHECKOUT_MODELS_DIR / f"{pretrained}_float.tflite") if pretrained else None
    )
    # How an image-folder model started, and what that choice was measured to be worth.
    start = (
        (
            f"the conv weights of the shipped `{pretrained}_float.tflite` (SHA-256 "
            f"`{pretrained_sha256}`) under a new head; {TRANSFER_EFFECT}"
            if pretrained
            else f"random weights (from scratch); {TRANSFER_EFFECT}"
        )
        if tuple(evaluation["class_names"]) != CLASS_NAMES
        else None
    )
    int8_report = evaluation["reports"]["int8_tflite"]
    card = shared_card_facts(
        config,
        files,
        command=command,
        labels=evaluation["class_names"],
        parameters=parameters,
        multiply_adds=Model(files.int8_model).multiply_adds(),
        train_images=train_images,
        validation_images=validation_images,
        data_name=data_name,
        data_sha256=data_sha256,
    )
    card["training"].update(
        teacher_sha256=recorded_teacher_sha256(files.teacher_scores(teacher)) if teacher else None,
        pretrained_sha256=pretrained_sha256,
    )
    return {
        **card,
        "start": start,
        "int8_accuracy": evaluation["accuracy"]["int8_tflite"],
        "float_accuracy": evaluation["accuracy"]["float_keras"],
        "float_tflite_accuracy": evaluation["accuracy"]["float_tflite"],
        "int8_drop_pt": evaluation["int8_drop_pt"],
        "int8_agreement_with_float": evaluation["int8_agreement_with_float_keras"],
        "test_images": evaluation["test_images"],
        "int8_per_class": int8_report["per_class"],
        "int8_macro_avg": int8_report["macro_avg"],
        "int8_confusion_matrix": int8_report["confusion_matrix"],
        "robustness": robustness_summary(robustness),
        "int8_model": _file_facts(files.int8_model, f"{config.name}_int8.tflite"),
        "int8_budget_kib": config.int8_budget_kib,
        "uint8_model": _file_facts(files.uint8_model, f"{config.name}_uint8.tflite"),
        "report": f"../reports/{config.name}/index.md",
    }


def robustness_lines(card: dict[str, Any]) -> list[str]:
    if not (robustness := card.get("robustness")):
        return []
    return [
        f"Under camera-style corruptions ({len(robustness['corruptions'])} CIFAR-10-C kinds x 5 "
        f"severities, {robustness['test_images']} test images; `python -m train robustness`): "
        f"mean corrupted accuracy (mCA) **{100 * robustness['int8_mca']:.2f}% INT8**"
        + (f" / {100 * robustness['float_mca']:.2f}% float" if "float_mca" in robustness else "")
        + "; over the kinds training never imitates "
        f"({', '.join(robustness['held_out'])}): {100 * robustness['int8_mca_held_out']:.2f}% "
        f"INT8. Per corruption and severity: the report.",
        "",
    ]


def cost_lines(card: dict[str, Any]) -> list[str]:
    if not (cost := card.get("training_cost")):
        return []
    teacher, macs = cost["teacher"], cost["multiply_adds_per_image"]
    return [
        f"- training cost: {cost['total_flops']:.3g} FLOPs (6 x {macs / 1e6:.1f} M "
        f"multiply-adds x {cost['images_seen']:,} images seen = {cost['own_flops']:.3g}"
        + (
            f"; teacher `{teacher['name']}` {teacher['flops']:.3g}: its training "
            f"{teacher['training_flops']:.3g}, scoring these images "
            f"{teacher['scoring_flops']:.3g}"
            if teacher
            else ""
        )
        + ")"
    ]


def split_text(training: dict[str, Any]) -> str:
    """Which training images the model learned from, and which were held out."""
    if training["validation_images"] == 0:
        return (
            f"all {training['train_images']:,} training images (the recipe was chosen on "
            "validation runs; this final run held none out)"
        )
    return (
        f"{training['train_images']:,} training / {training['validation_images']:,} "
        "validation images (validation held out of the training set)"
    )


def accuracy_lines(card: dict[str, Any]) -> list[str]:
    """The test accuracy table: float and INT8 for a device model; for a float teacher, also the
    accuracy of the mirror-averaged scores it gives a student's images."""
    kinds = ["float_accuracy", "float_tflite_accuracy"]
    heads = ["float (Keras)", "float TFLite"]
    if card.get("float_only"):
        kinds.append("two_view_accuracy")
        heads.append("float TFLite, image and mirror (as it scores a student's images)")
    else:
        kinds.append("int8_accuracy")
        heads.append("INT8 TFLite")
    cells = [f"{100 * card[kind]:.2f}%" for kind in kinds]
    cells[-1] = f"**{cells[-1]}**"
    lines = [
        "| | " + " | ".join(heads) + " |",
        "| --- |" + " --- |" * len(heads),
        f"| test accuracy ({card['test_images']} images) | " + " | ".join(cells) + " |",
        "",
    ]
    if card.get("float_only"):
        return lines
    return [
        *lines,
        f"INT8 drop: {card['int8_drop_pt']:.2f} pt; INT8 and float agree on "
        f"{100 * card['int8_agreement_with_float']:.2f}% of test images.",
        "",
    ]


def int8_file_lines(card: dict[str, Any]) -> list[str]:
    if not (int8 := card.get("int8_model")):
        return []
    return [
        f"- INT8 file: `{int8['file']}`, {int8['bytes']:,} bytes ({int8['bytes'] / 1024:.1f} KiB), "
        f"input {int8['input']['dtype']} (scale {int8['input']['scale']:.6g}, "
        f"zero point {int8['input']['zero_point']}), output {int8['output']['dtype']}"
        + (f"; budget {budget} KiB" if (budget := card.get("int8_budget_kib")) else ""),
        *(
            [
                f"- uint8 file: `{uint8['file']}`, {uint8['bytes']:,} bytes: the INT8 model with "
                "a uint8 input and output (one QUANTIZE op at each end, exact), for MediaPipe "
                "Tasks and the TFLite Task Library"
            ]
            if (uint8 := card.get("uint8_model"))
            else []
        ),
    ]


def card_markdown(card: dict[str, Any]) -> str:
    training = card["training"]
    recipe = training["recipe"]
    int8 = card.get("int8_model")
    lines = [
        f"# Model card: `{card['model']}`",
        "",
        card["description"],
        "",
        *accuracy_lines(card),
        *robustness_lines(card),
        *int8_file_lines(card),
        f"- float file: `{card['float_model']['file']}`, {card['float_model']['bytes']:,} bytes",
        "- every file carries TFLite metadata (name, description, version, author, licence, "
        "input normalization, labels.txt); SHA-256s: "
        + ", ".join(
            f"`{entry['file']}` `{entry['sha256']}`"
            for key in MODEL_FILES
            if (entry := card.get(key))
        ),
        f"- parameters: {card['parameters']:,}"
        + (
            f"; multiply-adds per image: {macs / 1e6:.1f} M"
            if (macs := card.get("multiply_adds"))
            else ""
        ),
        *(
            [f"- operators (INT8): {', '.join(f'{op} x{n}' for op, n in sorted(ops.items()))}"]
            if int8 and (ops := int8["ops"])
            else []
        ),
        f"- training: {split_text(training)}, {recipe['epochs']} float"
        + ("" if card.get("float_only") else f" + {recipe['qat_epochs']} QAT")
        + " epochs, "
        f"{training['total_seconds'] / 60:.0f} minutes on "
        + (
            f"{training['cpu']}, float phase in {training['precision']}"
            if "cpu" in training
            else training["machine"]
        ),
        *cost_lines(card),
        "- augmentation: random crop and mirror"
        + (f", cutout {cutout} x {cutout} px" if (cutout := recipe.get("cutout")) else "")
        + (
            f", camera effects ({', '.join(EFFECT_NAMES)}; train/camera_augment.py), "
            f"each with probability {camera:g}"
            if (camera := recipe.get("camera_augment"))
            else ""
        ),
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
        *(
            [
                f"- classes: {', '.join(card['labels'])}; input {card['input_size']} x "
                f"{card['input_size']} px",
                f"- start: {start}",
            ]
            if (start := card.get("start"))
            else []
        ),
        f"- reproduce: `{card['command']}`",
        f"- data: {card['data']['name']}, SHA-256 of its "
        + ("batch files" if card["data"]["name"] == "CIFAR-10" else "split record (split.json)")
        + f" `{card['data']['sha256']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()),
        *([f"- report: [{report}]({report})"] if (report := card.get("report")) else []),
    ]
    if per_class := card.get("int8_per_class"):
        lines += [
            "",
            "## INT8 per class (test set)",
            "",
            "| class | precision | recall | F1 | support |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
            f"{m['support']} |"
            for name, m in per_class.items()
        ]
    return "\n".join(lines) + "\n"


def ship(card: dict[str, Any], files: RunFiles, firmware_dir: Path) -> list[Path]:
    """Write the models, labels.txt and the card into `firmware_dir`, each renamed into place."""
    name = card["model"]
    contents: dict[str, bytes] = {
        f"{name}_int8.tflite": files.int8_model.read_bytes(),
        f"{name}_uint8.tflite": files.uint8_model.read_bytes(),
        f"{name}_float.tflite": files.float_model.read_bytes(),
        f"{name}.card.json": (json.dumps(card, indent=1) + "\n").encode(),
        f"{name}.card.md": card_markdown(card).encode(),
    }
    # firmware_models/labels.txt is CIFAR-10's; an image-folder model's labels travel in its
    # metadata (and its card) alone.
    if tuple(card.get("labels", CLASS_NAMES)) == CLASS_NAMES:
        contents["labels.txt"] = ("\n".join(CLASS_NAMES) + "\n").encode()
    return write_all(firmware_dir, contents)


def write_all(
    folder: Path,
    contents: dict[str, bytes],
    finish: Callable[[Path], dict[str, bytes]] | None = None,
) -> list[Path]:
    """Write every file into a staging folder, let `finish` add files computed from the staged
    ones, then rename them all into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    try:
        for file_name, content in contents.items():
            (staging / file_name).write_bytes(content)
        if finish is not None:
            extra = finish(staging)
            for file_name, content in extra.items():
                (staging / file_name).write_bytes(content)
            contents = {**contents, **extra}
        for file_name in contents:
            (staging / file_name).replace(folder / file_name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / file_name for file_name in contents]


def card_text(card: dict[str, Any]) -> dict[str, bytes]:
    """The card's JSON and Markdown files, with the TFLite Micro section when it has one."""
    from train.firmware import firmware_markdown

    name = card["model"]
    markdown = card_markdown(card) + (firmware_markdown(card) if "tflm_ops" in card else "")
    return {
        f"{name}.card.json": (json.dumps(card, indent=1) + "\n").encode(),
        f"{name}.card.md": markdown.encode(),
    }


def restamp(card_path: Path) -> list[Path]:
    """Give a shipped model's files TFLite metadata (replacing any), derive its uint8-interface
    file from the INT8 one (a float teacher has neither), and record the new sizes and SHA-256s in
    its card. The graph and weights of every file stay as they were (checked, not assumed)."""
    try:
        card = json.loads(card_path.read_text())
        name, description = card["model"], card["description"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ShipError(f"{card_path}: not a readable model card ({error})") from None
    folder = card_path.parent
    about = ModelDescription(name, description, tuple(card.get("labels") or CLASS_NAMES))
    stamped = ("float_model",) if card.get("float_only") else ("int8_model", "float_model")
    try:
        old = {key: (folder / f"{name}{MODEL_FILES[key]}.tflite").read_bytes() for key in stamped}
    except OSError as error:
        raise ShipError(f"{card_path}: a model file of the card is missing ({error})") from None
    new = {key: with_metadata(content, about) for key, content in old.items()}
    for key, content in old.items():
        if not same_graph(content, new[key]):
            raise ShipError(f"{name}{MODEL_FILES[key]}.tflite: stamping changed its graph")
    if "int8_model" in new:
        new["uint8_model"] = with_metadata(with_uint8_interface(new["int8_model"]), about)
    contents = {f"{name}{MODEL_FILES[key]}.tflite": content for key, content in new.items()}

    def updated_card(staging: Path) -> dict[str, bytes]:
        for key in new:
            file_name = f"{name}{MODEL_FILES[key]}.tflite"
            card[key] = _file_facts(staging / file_name, file_name)
        return card_text(card)

    return write_all(folder, contents, updated_card)
