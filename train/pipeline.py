"""The steps of `python -m train quantize`, in their order; each runs alone on a `Run`.

    fit       float training (resumes; skipped when the float weights exist)     float.h5
    qat       quantization-aware fine-tuning (the same; a recipe of 0 QAT epochs   qat.h5
              is quantized after training instead)
    convert   float and full-INT8 TFLite, the uint8-interface file, metadata     *.tflite
    evaluate  float vs INT8 through edge_cifar, the INT8 gate, the uncertain     evaluation.json,
              threshold (with out-of-class photos), robustness                   predictions.npz,
                                                                                 open_set.json,
                                                                                 robustness.json
    firmware  the INT8 model in TFLite Micro: arena, ops, same classes           (in the card)
    ship      the card, built once, and every file into firmware_models/         <model>.card.*,
                                                                                 *.tflite, *.h/.cc
    report    plots and Markdown from the saved files                            reports/<model>/

A float teacher (`ModelConfig.float_only`) stops after `fit` with its float file and card.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train import data
from train.calibration import calibrate
from train.convert import convert_run, stamp_run
from train.devices import split_cpu
from train.evaluate import evaluate, evaluate_robustness
from train.firmware import DEFAULT_IMAGES, TflmCheck, check_model
from train.fit import train_float
from train.photo_transfer import (
    PHOTO_START,
    QUICK_VIEWS,
    VIEWS,
    recorded_threshold,
    train_photo_model,
)
from train.qat import load_float_model, train_qat
from train.report import load_run, write_report
from train.run import Int8DropError, Run
from train.scoring import Scorer
from train.ship import device_card
from train.ship import ship as ship_files
from train.teacher import ship_teacher, teacher_card


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` measured, as the card takes it."""

    result: dict[str, Any]  # evaluation.json
    robustness: dict[str, Any]  # robustness.json
    parameters: int
    open_set: dict[str, Any] | None = None  # open_set.json: the uncertain threshold and its check


def fit(run: Run) -> Path:
    split_cpu(run.devices)
    if run.photos:
        # A head on the frozen backbone's cached features, beside the run folders.
        cache = run.files.root.parent / ".cache"
        views = QUICK_VIEWS if run.quick else VIEWS
        return train_photo_model(
            run.config, run.train, run.validation, run.files, cache, views=views
        )
    return train_float(run.config, run.train, run.validation, run.files)


def qat(run: Run) -> Path:
    split_cpu(run.devices)
    return train_qat(run.config, run.train, run.validation, run.files)


def convert(run: Run) -> list[Path]:
    # A photo model's threshold comes from its transfer step; others' from `evaluate_models`.
    return convert_run(run.config, run.files, run.train, recorded_threshold(run.files))


def evaluate_models(
    run: Run,
    *,
    max_drop: float,
    references: Mapping[str, Scorer] | None = None,
    out_of_class: Path | None = None,
) -> Evaluation:
    """Float Keras, float TFLite and INT8 TFLite on the test images; Int8DropError when INT8 is
    more than `max_drop` points below float. With `out_of_class` photos and a validation split,
    the uncertain threshold is chosen and stamped into the model files. Then the robustness
    benchmark on the same images (a small subset when QUICK), any reference models beside ours."""
    float_model = load_float_model(run.config, run.files)
    test = run.test
    result = evaluate(float_model, run.files, test)
    if result["int8_drop_pt"] > max_drop:
        raise Int8DropError(
            f"INT8 accuracy is {result['int8_drop_pt']:.2f} pt below float "
            f"(allowed: {max_drop:.2f}); nothing shipped"
        )
    open_set = None
    if out_of_class is not None and len(run.validation):
        open_set = calibrate(run.files, run.validation, test, out_of_class)
        stamp_run(run.config, run.files, run.train.class_names, open_set["threshold"])
    images = run.robustness_images
    robustness_test = test if images is None else data.subset(test, images)
    robustness = evaluate_robustness(
        run.files,
        robustness_test,
        dict(references or {}),
        # A backbone's float file runs several times slower than its INT8 one: hours here.
        kinds=("int8",) if run.config.backbone else ("float", "int8"),
    )
    return Evaluation(result, robustness, int(float_model.count_params()), open_set)


def check_firmware(int8_model: Path, data_dir: Path | None) -> TflmCheck:
    """The INT8 model in TFLite Micro against LiteRT's reference kernels, on CIFAR-10 test
    images as the camera would feed them (any model's input size)."""
    test = data.load(data_dir).test
    return check_model(int8_model, test.images[:DEFAULT_IMAGES], test.labels[:DEFAULT_IMAGES])


def ship(
    run: Run,
    evaluation: Evaluation,
    firmware_dir: Path,
    tflm: TflmCheck | None,
    wall_seconds: float,
) -> list[Path]:
    """Build the model card once and write it with every shipped file."""
    card = device_card(
        run.config,
        run.files,
        run.provenance(),
        evaluation.result,
        evaluation.robustness,
        parameters=evaluation.parameters,
        tflm=tflm,
        open_set=evaluation.open_set,
        start=PHOTO_START if run.photos else None,
        wall_seconds=wall_seconds,
        head_on_features=run.photos,
        threshold=recorded_threshold(run.files),
    )
    return ship_files(card, run.files, firmware_dir, tflm)


def ship_float_teacher(run: Run, firmware_dir: Path) -> list[Path]:
    """A float-only config's last steps: its float file, accuracy and card (train/teacher.py)."""
    card = teacher_card(run.config, run.files, run.test, run.provenance())
    return ship_teacher(card, run.files, firmware_dir)


def quantize(
    run: Run,
    *,
    max_drop: float,
    firmware_dir: Path,
    report_dir: Path,
    references: Mapping[str, Scorer] | None = None,
    out_of_class: Path | None = None,
) -> list[Path]:
    """Every step, in order; returns the files shipped and the report's index. A QUICK run skips
    the TFLite Micro check (seconds of a test's minutes, and its model is never flashed), and so
    does a backbone model, which no microcontroller holds."""
    started = time.monotonic()
    fit(run)
    if run.config.float_only:
        return ship_float_teacher(run, firmware_dir)
    if run.config.recipe.qat_epochs:
        qat(run)
    convert(run)
    evaluation = evaluate_models(
        run, max_drop=max_drop, references=references, out_of_class=out_of_class
    )
    microcontroller = not (run.quick or run.config.backbone)
    tflm = check_firmware(run.files.int8_model, run.data_dir) if microcontroller else None
    shipped = ship(run, evaluation, firmware_dir, tflm, time.monotonic() - started)
    saved = load_run(run.files, firmware_dir / f"{run.config.name}.card.json")
    index = write_report(saved, run.dataset.test, run.train, run.validation, report_dir)
    return [*shipped, index]
