"""What training a model cost, in FLOPs: 6 per forward multiply-add per image seen (2 forward,
4 backward), plus every teacher it learned from (the teacher's own training and its scoring pass
over the student's training images and their mirrors, 2 FLOPs per multiply-add). Budgets are
stated this way because wall time depends on the CPU (train/NOTES.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_cifar.interpreter import Model
from train.artifacts import RunFiles

TRAINING_FLOPS_PER_MAC = 6
INFERENCE_FLOPS_PER_MAC = 2
TEACHER_VIEWS = 2  # train/distill.py scores each training image and its mirror
PHASES = ("float", "qat")


def epochs_trained(files: RunFiles) -> int:
    return sum(
        len(json.loads(path.read_text()))
        for phase in PHASES
        if (path := files.history(phase)).is_file()
    )


def images_per_epoch(train_images: int, batch_size: int) -> int:
    # Batches drop their remainder: an epoch sees whole batches only.
    return (train_images // batch_size) * batch_size


def card_training_flops(card: dict[str, Any], firmware_dir: Path) -> int:
    """The training FLOPs a model card stands for: its own record, else (cards shipped before
    the record existed) derived from its recipe, training images and INT8 file, teachers
    included."""
    if "training_cost" in card:
        return int(card["training_cost"]["total_flops"])
    training, recipe = card["training"], card["training"]["recipe"]
    macs = Model(firmware_dir / card["int8_model"]["file"]).multiply_adds()
    epochs = recipe["epochs"] + recipe["qat_epochs"]
    images = epochs * images_per_epoch(training["train_images"], recipe["batch_size"])
    own = TRAINING_FLOPS_PER_MAC * macs * images
    teacher = recipe.get("teacher")
    if not teacher:
        return int(own)
    teacher_card = json.loads((firmware_dir / f"{teacher}.card.json").read_text())
    return int(own + teacher_cost(teacher_card, firmware_dir, training["train_images"])["flops"])


def teacher_cost(
    teacher_card: dict[str, Any], firmware_dir: Path, train_images: int
) -> dict[str, Any]:
    """A teacher's share of a student's cost: its training, and scoring the student's images."""
    macs = Model(firmware_dir / teacher_card["float_model"]["file"]).multiply_adds()
    training = card_training_flops(teacher_card, firmware_dir)
    scoring = INFERENCE_FLOPS_PER_MAC * macs * train_images * TEACHER_VIEWS
    return {
        "name": teacher_card["model"],
        "training_flops": training,
        "scoring_flops": scoring,
        "flops": training + scoring,
    }


def training_cost(
    files: RunFiles,
    *,
    multiply_adds: int,
    train_images: int,
    batch_size: int,
    teacher: str | None,
    firmware_dir: Path,
) -> dict[str, Any]:
    """The card's record of a run's cost: multiply-adds per image, images seen, its own FLOPs,
    its teacher's and the total."""
    images = epochs_trained(files) * images_per_epoch(train_images, batch_size)
    own = TRAINING_FLOPS_PER_MAC * multiply_adds * images
    teacher_share = None
    if teacher:
        teacher_card = json.loads((firmware_dir / f"{teacher}.card.json").read_text())
        teacher_share = teacher_cost(teacher_card, firmware_dir, train_images)
    return {
        "multiply_adds_per_image": multiply_adds,
        "images_seen": images,
        "own_flops": own,
        "teacher": teacher_share,
        "total_flops": own + (teacher_share["flops"] if teacher_share else 0),
    }
