"""What training a model cost, in FLOPs: 6 per forward multiply-add per image seen (2 forward,
4 backward), plus every teacher it learned from (the teacher's own training and its scoring pass
over the student's training images and their mirrors, 2 FLOPs per multiply-add). Budgets are
stated this way because wall time depends on the CPU (train/NOTES.md)."""

from __future__ import annotations

from pathlib import Path

from edge_cifar.interpreter import Model
from train.artifacts import RunFiles
from train.card import CardError, ModelCard, TeacherCost, TrainingCost, read_card

TRAINING_FLOPS_PER_MAC = 6
INFERENCE_FLOPS_PER_MAC = 2
TEACHER_VIEWS = 2  # train/distill.py scores each training image and its mirror
PHASES = ("float", "qat")


def epochs_trained(files: RunFiles) -> int:
    return sum(len(files.epochs(phase)) for phase in PHASES)


def images_per_epoch(train_images: int, batch_size: int) -> int:
    # Batches drop their remainder: an epoch sees whole batches only.
    return (train_images // batch_size) * batch_size


def card_training_flops(card: ModelCard, firmware_dir: Path) -> int:
    """The training FLOPs a model card stands for: its own record, else (cards shipped before
    the record existed) derived from its recipe, training images and INT8 file, teachers
    included."""
    if card.training_cost is not None:
        return card.training_cost.total_flops
    training, recipe = card.training, card.training.recipe
    if card.int8_model is None:
        raise CardError(f"{card.model}'s card records neither its cost nor an INT8 file")
    macs = Model(firmware_dir / card.int8_model.file).multiply_adds()
    epochs = recipe["epochs"] + recipe["qat_epochs"]
    images = epochs * images_per_epoch(training.train_images, recipe["batch_size"])
    own = TRAINING_FLOPS_PER_MAC * macs * images
    teacher = recipe.get("teacher")
    if not teacher:
        return int(own)
    return int(own + shipped_teacher_cost(teacher, firmware_dir, training.train_images).flops)


def teacher_cost(
    name: str, float_model: Path, training_flops: int, train_images: int
) -> TeacherCost:
    """A teacher's share of a student's cost: its training, and scoring the student's images."""
    macs = Model(float_model).multiply_adds()
    scoring = INFERENCE_FLOPS_PER_MAC * macs * train_images * TEACHER_VIEWS
    return TeacherCost(name, training_flops, scoring, training_flops + scoring)


def shipped_teacher_cost(teacher: str, firmware_dir: Path, train_images: int) -> TeacherCost:
    """`teacher_cost` of the shipped teacher of that name, from its card."""
    card = read_card(firmware_dir / f"{teacher}.card.json")
    return teacher_cost(
        card.model,
        firmware_dir / card.float_model.file,
        card_training_flops(card, firmware_dir),
        train_images,
    )


def training_cost(
    files: RunFiles,
    *,
    multiply_adds: int,
    train_images: int,
    batch_size: int,
    teacher: str | None,
    firmware_dir: Path,
) -> TrainingCost:
    """The card's record of a run's cost: multiply-adds per image, images seen, its own FLOPs,
    its teacher's and the total."""
    images = epochs_trained(files) * images_per_epoch(train_images, batch_size)
    own = TRAINING_FLOPS_PER_MAC * multiply_adds * images
    share = shipped_teacher_cost(teacher, firmware_dir, train_images) if teacher else None
    return TrainingCost(multiply_adds, images, own, share, own + (share.flops if share else 0))
