"""The model card: one typed object per shipped model, the only writer of its two files
(`<model>.card.json`, `.card.md`) and the reader every training module uses (the runtime checks
SHA-256s with edge_cifar/model_files.py). Built once per run (train/ship.py, train/teacher.py), it
remembers its JSON's keys and their order, so a card read and written again is the same bytes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from train.labels import CLASS_NAMES
from train.recipe import CAMERA_EFFECTS
from train.records import RecordError, from_json, to_json


class CardError(ValueError):
    """A card file that is missing, unreadable or not a card; the message is one line."""


@dataclass(frozen=True)
class TensorFacts:
    dtype: str
    shape: list[int]
    scale: float
    zero_point: int


@dataclass(frozen=True)
class ModelFile:
    """One shipped .tflite file: its name, size, SHA-256 (the runtime checks it), I/O and ops."""

    file: str
    bytes: int
    sha256: str
    input: TensorFacts
    output: TensorFacts
    ops: dict[str, int]


@dataclass(frozen=True)
class Training:
    recipe: dict[str, Any]  # as the run recorded it (train/recipe.py's Recipe.as_dict)
    train_images: int
    validation_images: int
    float_seconds: float  # the epochs' own seconds, from the histories
    qat_seconds: float
    total_seconds: float
    machine: str
    cpu: str | None = None  # cards from before the CPU was recorded lack these two
    precision: str | None = None  # the float phase's (train/precision.py)
    teacher_sha256: str | None = None  # the teacher file the student learned from
    pretrained_sha256: str | None = None  # the shipped float file a folder model started from
    wall_seconds: float | None = None  # the last `quantize` command, every step, by the clock
    float_epochs: int | None = None  # the float epochs run, when early stopping ended sooner
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class TeacherCost:
    name: str
    training_flops: int
    scoring_flops: int
    flops: int


@dataclass(frozen=True)
class TrainingCost:
    """FLOPs of training (train/cost.py): 6 per multiply-add per image seen, teacher included."""

    multiply_adds_per_image: int
    images_seen: int
    own_flops: int
    teacher: TeacherCost | None
    total_flops: int


@dataclass(frozen=True)
class DataSource:
    name: str  # "CIFAR-10" or "image folder <path>"
    sha256: str  # of CIFAR-10's batch files, or of an image folder's split record


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class RobustnessSummary:
    test_images: int
    corruptions: list[str]
    held_out: list[str]
    float_mca: float | None  # None: the INT8 file alone was benchmarked (a backbone model)
    int8_mca: float
    float_mca_held_out: float | None
    int8_mca_held_out: float | None


@dataclass(frozen=True)
class OpenSet:
    """Test images against real photos of other things, by top score (train/calibration.py)."""

    out_of_class_folder: str
    rule: str
    auroc: float
    in_class_images: int
    out_of_class_photos: int
    in_class_accuracy: float  # correct, whatever the score
    in_class_named_right: float  # correct and at or above the threshold; the photos: under it
    out_of_class_uncertain: float


@dataclass(frozen=True)
class ModelCard:
    model: str
    description: str
    created: str
    command: str  # the one command that trains and ships the model again
    parameters: int
    float_model: ModelFile
    training: Training
    data: DataSource
    versions: dict[str, str]
    float_accuracy: float  # test accuracy, float Keras
    float_tflite_accuracy: float
    test_images: int
    labels: list[str] | None = None  # absent: CIFAR-10's
    input_size: int | None = None
    multiply_adds: int | None = None
    training_cost: TrainingCost | None = None
    float_only: bool | None = None  # a float teacher: no INT8 file, never on a device
    two_view_accuracy: float | None = None  # a teacher: image and mirror, as it scores students
    start: str | None = None  # how an image-folder model started
    int8_accuracy: float | None = None
    int8_drop_pt: float | None = None
    int8_agreement_with_float: float | None = None
    int8_per_class: dict[str, ClassMetrics] | None = None
    int8_macro_avg: ClassMetrics | None = None
    int8_confusion_matrix: list[list[int]] | None = None
    robustness: RobustnessSummary | None = None
    int8_model: ModelFile | None = None
    int8_budget_kib: int | None = None
    uint8_model: ModelFile | None = None
    report: str | None = None
    tflm_arena_bytes: int | None = None  # the TFLite Micro check (train/firmware.py)
    tflm_max_output_diff_steps: int | None = None
    tflm_ops: list[str] | None = None
    tflm_images_checked: int | None = None
    tflm_version: str | None = None
    uncertain_threshold: float | None = None  # below this top score the device says "uncertain"
    open_set: OpenSet | None = None
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)


# The order a card built now lists its keys in; `NULLS` are listed even when unknown.
SHARED_KEYS: tuple[str, ...] = ("model", "description", "created", "command", "labels")
SHARED_KEYS += ("input_size", "parameters", "multiply_adds", "float_model", "training")
SHARED_KEYS += ("training_cost", "data", "versions")
TFLM_KEYS: tuple[str, ...] = ("tflm_arena_bytes", "tflm_max_output_diff_steps", "tflm_ops")
TFLM_KEYS += ("tflm_images_checked", "tflm_version")
NEW_KEYS = ("uncertain_threshold", "open_set")
DEVICE_KEYS = (*SHARED_KEYS, "start", "int8_accuracy", "float_accuracy", "float_tflite_accuracy")
DEVICE_KEYS += ("int8_drop_pt", "int8_agreement_with_float", "test_images", "int8_per_class")
DEVICE_KEYS += ("int8_macro_avg", "int8_confusion_matrix", "robustness", "int8_model")
DEVICE_KEYS += ("int8_budget_kib", "uint8_model", "report", *TFLM_KEYS, *NEW_KEYS)
TEACHER_KEYS = (*SHARED_KEYS, "float_only", "test_images", "float_accuracy")
TEACHER_KEYS += ("float_tflite_accuracy", "two_view_accuracy", *NEW_KEYS)
NULLS = frozenset({"start", "int8_budget_kib"})
TRAINING_KEYS = tuple(f.name for f in dataclasses.fields(Training) if f.name != "keys")
TRAINING_NULLS = frozenset({"teacher_sha256", "pretrained_sha256"})
# The model files of a card, by the card key that records each and the file name's suffix.
MODEL_FILES = {"int8_model": "_int8", "uint8_model": "_uint8", "float_model": "_float"}


Listed = TypeVar("Listed", ModelCard, Training)


def laid_out(card: ModelCard) -> ModelCard:
    """A newly built card with the keys its kind lists (a teacher's, or a device model's)."""
    device = not card.float_only
    training = _listed(card.training, TRAINING_KEYS, TRAINING_NULLS if device else frozenset())
    return replace(
        _listed(card, DEVICE_KEYS if device else TEACHER_KEYS, NULLS if device else frozenset()),
        training=training,
    )


def _listed(record: Listed, order: tuple[str, ...], nulls: frozenset[str]) -> Listed:
    return replace(
        record, keys=tuple(k for k in order if getattr(record, k) is not None or k in nulls)
    )


def updated(card: ModelCard, **changes: Any) -> ModelCard:
    """The card with `changes`; a field it did not list yet joins the end of its keys."""
    added = tuple(k for k in DEVICE_KEYS if k in changes and k not in card.keys)
    return replace(card, **changes, keys=card.keys + added)


def card_json(card: ModelCard) -> str:
    return json.dumps(to_json(card), indent=1) + "\n"


def read_card(path: Path) -> ModelCard:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # bad JSON and bad UTF-8 are ValueErrors
        raise CardError(f"{path}: not a readable model card ({error})") from None
    try:
        return from_json(ModelCard, content, path.name)
    except RecordError as error:
        raise CardError(str(error)) from None


def card_files(card: ModelCard) -> dict[str, bytes]:
    """The card's two files by name: `<model>.card.json` and `<model>.card.md`."""
    return {
        f"{card.model}.card.json": card_json(card).encode(),
        f"{card.model}.card.md": card_markdown(card).encode(),
    }


def card_markdown(card: ModelCard) -> str:
    """The card for people: accuracy, robustness, files, training, data, per-class figures and,
    when checked, TFLite Micro."""
    recipe = card.training.recipe
    int8 = card.int8_model
    lines = [
        f"# Model card: `{card.model}`",
        "",
        card.description,
        "",
        *accuracy_lines(card),
        *robustness_lines(card),
        *int8_file_lines(card),
        f"- float file: `{card.float_model.file}`, {card.float_model.bytes:,} bytes",
        "- every file carries TFLite metadata (name, description, version, author, licence, "
        "input normalization, labels.txt); SHA-256s: "
        + ", ".join(f"`{f.file}` `{f.sha256}`" for k in MODEL_FILES if (f := getattr(card, k))),
        f"- parameters: {card.parameters:,}"
        + (
            f"; multiply-adds per image: {macs / 1e6:.1f} M" if (macs := card.multiply_adds) else ""
        ),
        *(
            [f"- operators (INT8): {', '.join(f'{op} x{n}' for op, n in sorted(ops.items()))}"]
            if int8 and (ops := int8.ops)
            else []
        ),
        training_line(card),
        *cost_lines(card),
        "- augmentation: random crop and mirror"
        + (f", cutout {cutout} x {cutout} px" if (cutout := recipe.get("cutout")) else "")
        + (
            f", camera effects ({', '.join(CAMERA_EFFECTS)}; train/camera_augment.py), "
            f"each with probability {camera:g}"
            if (camera := recipe.get("camera_augment"))
            else ""
        ),
        *teacher_lines(card),
        *(
            [
                f"- classes: {', '.join(card.labels or CLASS_NAMES)}; input {card.input_size} x "
                f"{card.input_size} px",
                f"- start: {card.start}",
            ]
            if card.start
            else []
        ),
        *(
            [f"- uncertain: a top score below {card.uncertain_threshold:g} (in the metadata)"]
            if card.uncertain_threshold is not None
            else []
        ),
        f"- reproduce: `{card.command}`",
        f"- data: {card.data.name}, SHA-256 of its "
        + ("batch files" if card.data.name == "CIFAR-10" else "split record (split.json)")
        + f" `{card.data.sha256}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in card.versions.items()),
        *([f"- report: [{card.report}]({card.report})"] if card.report else []),
    ]
    if card.int8_per_class:
        head = "| class | precision | recall | F1 | support |\n| --- | --- | --- | --- | --- |"
        lines += ["", "## INT8 per class (test set)", "", head]
        lines += [
            f"| {name} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.support} |"
            for name, m in card.int8_per_class.items()
        ]
    return "\n".join(lines) + "\n" + firmware_markdown(card)


def accuracy_lines(card: ModelCard) -> list[str]:
    """The test accuracy table: float and INT8 for a device model; for a float teacher, also the
    accuracy of the mirror-averaged scores it gives a student's images."""
    heads = ["float (Keras)", "float TFLite"]
    values = [card.float_accuracy, card.float_tflite_accuracy]
    if card.float_only:
        heads.append("float TFLite, image and mirror (as it scores a student's images)")
        values.append(card.two_view_accuracy or 0.0)
    else:
        heads.append("INT8 TFLite")
        values.append(card.int8_accuracy or 0.0)
    cells = [f"{100 * value:.2f}%" for value in values]
    cells[-1] = f"**{cells[-1]}**"
    lines = [
        "| | " + " | ".join(heads) + " |",
        "| --- |" + " --- |" * len(heads),
        f"| test accuracy ({card.test_images} images) | " + " | ".join(cells) + " |",
        "",
    ]
    if card.float_only:
        return lines
    return [
        *lines,
        f"INT8 drop: {card.int8_drop_pt or 0.0:.2f} pt; INT8 and float agree on "
        f"{100 * (card.int8_agreement_with_float or 0.0):.2f}% of test images.",
        "",
    ]


def robustness_lines(card: ModelCard) -> list[str]:
    lines = []
    if robustness := card.robustness:
        lines += [
            f"Under camera-style corruptions ({len(robustness.corruptions)} CIFAR-10-C kinds x 5 "
            f"severities, {robustness.test_images} test images; `python -m train robustness`): "
            f"mean corrupted accuracy (mCA) **{100 * robustness.int8_mca:.2f}% INT8**"
            + (f" / {100 * float_mca:.2f}% float" if (float_mca := robustness.float_mca) else "")
            + "; over the kinds training never imitates "
            f"({', '.join(robustness.held_out)}): "
            + (f"{100 * h:.2f}% INT8" if (h := robustness.int8_mca_held_out) else "none measured")
            + ". Per corruption and severity: the report.",
            "",
        ]
    if check := card.open_set:
        lines += [
            f"Real photos of other things ({check.out_of_class_photos} held-out photos of "
            f"`{check.out_of_class_folder}`) against the {check.in_class_images} test images: "
            f"the top score tells them apart with AUROC {check.auroc:.3f}; at the uncertain "
            f"threshold {card.uncertain_threshold:g}, {100 * check.out_of_class_uncertain:.1f}% "
            f"of the photos are called uncertain and {100 * check.in_class_named_right:.2f}% of "
            f"the test images are still named right ({100 * check.in_class_accuracy:.2f}% with "
            f"--min-score 0). Threshold rule: {check.rule}.\n",
        ]
    return lines


def cost_lines(card: ModelCard) -> list[str]:
    if not (cost := card.training_cost):
        return []
    teacher, macs = cost.teacher, cost.multiply_adds_per_image
    return [
        f"- training cost: {cost.total_flops:.3g} FLOPs (6 x {macs / 1e6:.1f} M "
        f"multiply-adds x {cost.images_seen:,} images seen = {cost.own_flops:.3g}"
        + (
            f"; teacher `{teacher.name}` {teacher.flops:.3g}: its training "
            f"{teacher.training_flops:.3g}, scoring these images {teacher.scoring_flops:.3g}"
            if teacher
            else ""
        )
        + ")"
    ]


def training_line(card: ModelCard) -> str:
    """What the model learned from (and what was held out), for how long, on what."""
    training, recipe = card.training, card.training.recipe
    split = (
        f"{training.train_images:,} training / {training.validation_images:,} validation images "
        "(validation held out of the training set)"
        if training.validation_images
        else f"all {training.train_images:,} training images (the recipe was chosen on "
        "validation runs; this final run held none out)"
    )
    epochs = f"{recipe['epochs']} float"
    if run := training.float_epochs:
        epochs = f"{run} float (early stopping; at most {recipe['epochs']})"
    epochs += "" if card.float_only else f" + {recipe['qat_epochs']} QAT"
    on = (
        f"{training.cpu}, float phase in {training.precision}" if training.cpu else training.machine
    )
    if wall := training.wall_seconds:
        on += f"; the last `quantize`: {wall / 60:.1f} min by the clock"
    return (
        f"- training: {split}, {epochs} epochs, {training.total_seconds / 60:.0f} minutes on {on}"
    )


def int8_file_lines(card: ModelCard) -> list[str]:
    if not (int8 := card.int8_model):
        return []
    lines = [
        f"- INT8 file: `{int8.file}`, {int8.bytes:,} bytes ({int8.bytes / 1024:.1f} KiB), "
        f"input {int8.input.dtype} (scale {int8.input.scale:.6g}, "
        f"zero point {int8.input.zero_point}), output {int8.output.dtype}"
        + (f"; budget {budget} KiB" if (budget := card.int8_budget_kib) else "")
    ]
    if uint8 := card.uint8_model:
        lines.append(
            f"- uint8 file: `{uint8.file}`, {uint8.bytes:,} bytes: the INT8 model with "
            "a uint8 input and output (one QUANTIZE op at each end, exact), for MediaPipe "
            "Tasks and the TFLite Task Library"
        )
    return lines


def teacher_lines(card: ModelCard) -> list[str]:
    recipe = card.training.recipe
    if not (teacher := recipe.get("teacher")):
        return []
    sha256 = card.training.teacher_sha256
    return [
        f"- distilled from `{teacher}`: {recipe['distillation_weight']:g} of every "
        f"training target is the class scores of `{teacher}_float.tflite` "
        + (
            f"(the file with SHA-256 `{sha256}`; the shipped `{teacher}`'s card: "
            if sha256
            else "(its own training: "
        )
        + f"[{teacher}.card.md]({teacher}.card.md))"
    ]


def firmware_markdown(card: ModelCard) -> str:
    """The TFLite Micro section, for a card whose INT8 model was checked in it."""
    if card.tflm_ops is None or card.tflm_arena_bytes is None:
        return ""
    return "\n".join(
        [
            "",
            "## TFLite Micro",
            "",
            f"- tensor arena: {card.tflm_arena_bytes:,} bytes "
            f"({card.tflm_arena_bytes / 1024:.1f} KiB), the smallest that allocates",
            f"- same class as LiteRT's reference kernels on {card.tflm_images_checked} CIFAR-10 "
            f"test images; largest output difference {card.tflm_max_output_diff_steps} "
            "quantization step(s)",
            f"- ops the resolver registers: {', '.join(card.tflm_ops)}",
            f"- C++: `{card.model}_int8.h` / `.cc` (tflite-micro {card.tflm_version})",
            "",
        ]
    )
