"""Ship a trained model: its model card, built once from the run's facts, and its files copied
into firmware_models/ with labels and, when checked, its TFLite Micro C++ sources.

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
from dataclasses import replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from edge_cifar.interpreter import Model
from edge_cifar.model_files import CHECKOUT_MODELS_DIR
from train.artifacts import RunFiles, shipped_float_model
from train.card import (
    MODEL_FILES,
    CardError,
    ClassMetrics,
    ModelCard,
    ModelFile,
    OpenSet,
    RobustnessSummary,
    TensorFacts,
    Training,
    card_files,
    laid_out,
    read_card,
    updated,
)
from train.convert import with_uint8_interface
from train.cost import training_cost
from train.distill import recorded_teacher_sha256
from train.firmware import TflmCheck, c_header, c_source
from train.labels import CLASS_NAMES
from train.metadata import ModelDescription, same_graph, with_metadata
from train.precision import FLOAT32, cpu_description
from train.recipe import ModelConfig
from train.run import Provenance


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
    return float(sum(epoch["seconds"] for epoch in files.epochs(phase)))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_facts(path: Path, shipped_name: str) -> ModelFile:
    """What a card records of a model file: name, size, SHA-256, input, output and ops."""
    content = path.read_bytes()
    model = Model(path)
    return ModelFile(
        file=shipped_name,
        bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        input=TensorFacts(
            model.input.dtype, list(model.input.shape), model.input.scale, model.input.zero_point
        ),
        output=TensorFacts(
            model.output.dtype,
            list(model.output.shape),
            model.output.scale,
            model.output.zero_point,
        ),
        ops=model.op_counts(),
    )


def float_precision(files: RunFiles) -> str:
    """The precision the float phase trained in, as its history records it (float32 before the
    record existed)."""
    path = files.history("float")
    entries = json.loads(path.read_text()) if path.exists() else []
    return ", ".join(sorted({e.get("dtype_policy", FLOAT32) for e in entries})) or FLOAT32


def robustness_summary(robustness: dict[str, Any]) -> RobustnessSummary:
    """The card's lines of the run's robustness.json (train/robustness.py's result)."""
    models = robustness["models"]
    return RobustnessSummary(
        test_images=robustness["test_images"],
        corruptions=list(robustness["corruptions"]),
        held_out=[n for n, facts in robustness["corruptions"].items() if facts["held_out"]],
        # A backbone model's benchmark runs its INT8 file only (train/pipeline.py).
        float_mca=models["float"]["mca"] if "float" in models else None,
        int8_mca=models["int8"]["mca"],
        float_mca_held_out=models["float"]["mca_held_out"] if "float" in models else None,
        int8_mca_held_out=models["int8"]["mca_held_out"],
    )


def shared_facts(
    config: ModelConfig,
    files: RunFiles,
    provenance: Provenance,
    *,
    labels: list[str],
    parameters: int,
    multiply_adds: int,
) -> dict[str, Any]:
    """What every card records, a device model's or a float teacher's: what the model is, its
    float file, how it was trained, on what, and what that cost (ModelCard's fields by name)."""
    float_seconds = training_seconds(files, "float")
    qat_seconds = training_seconds(files, "qat")
    float_epochs = len(files.epochs("float"))
    return {
        "model": config.name,
        "description": config.description,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": provenance.command,
        "labels": labels,
        "input_size": config.input_size,
        "parameters": parameters,
        "multiply_adds": multiply_adds,
        "float_model": file_facts(files.float_model, f"{config.name}_float.tflite"),
        "training": Training(
            recipe=config.recipe.as_dict(),
            train_images=provenance.train_images,
            validation_images=provenance.validation_images,
            float_seconds=round(float_seconds, 1),
            qat_seconds=round(qat_seconds, 1),
            total_seconds=round(float_seconds + qat_seconds, 1),
            machine=f"{platform.machine()}, {os.cpu_count()} CPU cores",
            cpu=cpu_description(),
            precision=float_precision(files),
            float_epochs=float_epochs if 0 < float_epochs < config.recipe.epochs else None,
        ),
        "training_cost": training_cost(
            files,
            multiply_adds=multiply_adds,
            train_images=provenance.train_images,
            batch_size=config.recipe.batch_size,
            teacher=config.recipe.teacher,
            firmware_dir=CHECKOUT_MODELS_DIR,
        ),
        "data": provenance.data,
        "versions": package_versions(),
    }


def device_card(
    config: ModelConfig,
    files: RunFiles,
    provenance: Provenance,
    evaluation: dict[str, Any],
    robustness: dict[str, Any],
    *,
    parameters: int,
    tflm: TflmCheck | None = None,
    open_set: dict[str, Any] | None = None,
    start: str | None = None,
    wall_seconds: float | None = None,
    head_on_features: bool = False,
    threshold: float | None = None,
) -> ModelCard:
    """The card of a device model: the shared facts, test accuracy of its three files, its
    robustness, its files, when checked what TFLite Micro made of it, and when chosen its
    uncertain threshold with the open-set check (open_set.json). A head fitted on a frozen
    backbone's cached features gets no FLOPs line: the 6 per multiply-add rule does not hold.
    `threshold`: the uncertain threshold stamped without an open-set check (a photo run's)."""
    teacher, pretrained = config.recipe.teacher, config.recipe.pretrained
    pretrained_sha256 = _sha256(shipped_float_model(pretrained)) if pretrained else None
    # How an image-folder model started, and what that choice was measured to be worth.
    start = start or (
        (
            f"the conv weights of the shipped `{pretrained}_float.tflite` (SHA-256 "
            f"`{pretrained_sha256}`) under a new head; {TRANSFER_EFFECT}"
            if pretrained
            else f"random weights (from scratch); {TRANSFER_EFFECT}"
        )
        if tuple(evaluation["class_names"]) != CLASS_NAMES
        else None
    )
    shared = shared_facts(
        config,
        files,
        provenance,
        labels=evaluation["class_names"],
        parameters=parameters,
        multiply_adds=Model(files.int8_model).multiply_adds(),
    )
    shared["training"] = replace(
        shared["training"],
        teacher_sha256=recorded_teacher_sha256(files.teacher_scores(teacher)) if teacher else None,
        pretrained_sha256=pretrained_sha256,
        wall_seconds=round(wall_seconds, 1) if wall_seconds is not None else None,
    )
    if head_on_features:
        shared["training_cost"] = None
    int8_report = evaluation["reports"]["int8_tflite"]
    card = ModelCard(
        **shared,
        start=start,
        int8_accuracy=evaluation["accuracy"]["int8_tflite"],
        float_accuracy=evaluation["accuracy"]["float_keras"],
        float_tflite_accuracy=evaluation["accuracy"]["float_tflite"],
        int8_drop_pt=evaluation["int8_drop_pt"],
        int8_agreement_with_float=evaluation["int8_agreement_with_float_keras"],
        test_images=evaluation["test_images"],
        int8_per_class={
            name: ClassMetrics(**metrics) for name, metrics in int8_report["per_class"].items()
        },
        int8_macro_avg=ClassMetrics(**int8_report["macro_avg"]),
        int8_confusion_matrix=int8_report["confusion_matrix"],
        robustness=robustness_summary(robustness),
        int8_model=file_facts(files.int8_model, f"{config.name}_int8.tflite"),
        int8_budget_kib=config.int8_budget_kib,
        uint8_model=file_facts(files.uint8_model, f"{config.name}_uint8.tflite"),
        report=f"../reports/{config.name}/index.md",
        uncertain_threshold=open_set["threshold"] if open_set else threshold,
        open_set=open_set_facts(open_set) if open_set else None,
    )
    return laid_out(updated(card, **tflm.card_fields()) if tflm else card)


def open_set_facts(open_set: dict[str, Any]) -> OpenSet:
    test = open_set["test"]
    return OpenSet(
        out_of_class_folder=open_set["out_of_class_folder"],
        rule=open_set["rule"],
        auroc=test["auroc"],
        in_class_images=test["in_class_images"],
        out_of_class_photos=test["out_of_class_photos"],
        in_class_accuracy=test["in_class_accuracy"],
        in_class_named_right=test["in_class_named_right"],
        out_of_class_uncertain=test["out_of_class_uncertain"],
    )


def ship(
    card: ModelCard, files: RunFiles, firmware_dir: Path, tflm: TflmCheck | None = None
) -> list[Path]:
    """Write the models, labels.txt, the card and (when checked in TFLite Micro) the INT8 model's
    C++ sources into `firmware_dir`, each renamed into place."""
    name = card.model
    int8 = files.int8_model.read_bytes()
    contents: dict[str, bytes] = {
        f"{name}_int8.tflite": int8,
        f"{name}_uint8.tflite": files.uint8_model.read_bytes(),
        f"{name}_float.tflite": files.float_model.read_bytes(),
        **card_files(card),
    }
    if tflm is not None:
        contents[f"{name}_int8.h"] = c_header(tflm, int8).encode()
        contents[f"{name}_int8.cc"] = c_source(tflm, int8).encode()
    # firmware_models/labels.txt is CIFAR-10's; an image-folder model's labels travel in its
    # metadata (and its card) alone.
    if tuple(card.labels or CLASS_NAMES) == CLASS_NAMES:
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


def restamp(card_path: Path) -> list[Path]:
    """Give a shipped model's files TFLite metadata (replacing any), derive its uint8-interface
    file from the INT8 one (a float teacher has neither), and record the new sizes and SHA-256s in
    its card. The graph and weights of every file stay as they were (checked, not assumed)."""
    try:
        card = read_card(card_path)
    except CardError as error:
        raise ShipError(str(error)) from None
    name, folder = card.model, card_path.parent
    about = ModelDescription(
        name,
        card.description,
        tuple(card.labels or CLASS_NAMES),
        uncertain_threshold=card.uncertain_threshold,
    )
    required = "float_model" if card.float_only else "int8_model"
    # A backbone model's float file stays where it was built (megabytes the device never runs).
    stamped = [required, *([] if card.float_only else ["float_model"])]
    paths = {key: folder / f"{name}{MODEL_FILES[key]}.tflite" for key in stamped}
    try:
        old = {
            key: path.read_bytes()
            for key, path in paths.items()
            if key == required or path.exists()
        }
    except OSError as error:
        raise ShipError(f"{card_path}: a model file of the card is missing ({error})") from None
    new = {key: with_metadata(content, about) for key, content in old.items()}
    for key, content in old.items():
        if not same_graph(content, new[key]):
            raise ShipError(f"{name}{MODEL_FILES[key]}.tflite: stamping changed its graph")
    if "int8_model" in new:
        new["uint8_model"] = with_metadata(with_uint8_interface(new["int8_model"]), about)
    contents = {f"{name}{MODEL_FILES[key]}.tflite": content for key, content in new.items()}

    def restamped_card(staging: Path) -> dict[str, bytes]:
        shipped = {key: f"{name}{MODEL_FILES[key]}.tflite" for key in new}
        facts = {key: file_facts(staging / file, file) for key, file in shipped.items()}
        return card_files(updated(card, **facts))

    return write_all(folder, contents, restamped_card)
