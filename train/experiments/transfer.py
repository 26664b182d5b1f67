"""The transfer measurement in train/NOTES.md: a net pretrained on five CIFAR-10 classes,
fine-tuned on the other five from 100 images per class, against the same net from scratch, with
and without fitting the head alone first (linear probing, then fine-tuning: Kumar et al., 2022).

    python -m train.experiments.transfer runs/transfer     # CIFAR10_DIR set; about an hour
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import tf_keras as keras

from edge_cifar.preprocess import PIXEL_SCALE
from train import data
from train.artifacts import RunFiles
from train.convert import to_float_tflite
from train.data import Split
from train.fit import Phase, train_phase
from train.inputs import evaluation_dataset
from train.labels import CLASS_NAMES
from train.models import build as build_model
from train.recipe import FINE_TUNE_PEAK_LR, folder_config, get_config
from train.transfer import import_convs

# The head's fit on frozen features: Adam on a few thousand feature vectors, seconds on a CPU.
HEAD_EPOCHS, HEAD_LR = 100, 1e-2


def fit_head(model: keras.Model, train: Split) -> float:
    """Fit the final Dense layer (`logits`) alone on the frozen features of `train`'s images,
    unaugmented; returns its training accuracy. (An arm of the measurement.)"""
    head = model.get_layer("logits")
    features = keras.Model(model.input, head.input).predict(
        train.images.astype(np.float32) * PIXEL_SCALE, batch_size=64, verbose=0
    )
    probe = keras.Sequential(
        [keras.Input(features.shape[1:]), keras.layers.Dense(train.classes, activation="softmax")]
    )
    probe.compile(
        optimizer=keras.optimizers.Adam(HEAD_LR),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fitted = probe.fit(features, train.labels, batch_size=64, epochs=HEAD_EPOCHS, verbose=0)
    head.set_weights(probe.layers[-1].get_weights())
    return float(fitted.history["accuracy"][-1])


# The vehicles and the frog pretrain; the other animals are the "user's" small data set.
SOURCE_CLASSES = (0, 1, 6, 8, 9)  # airplane, automobile, frog, ship, truck
TARGET_CLASSES = (2, 3, 4, 5, 7)  # bird, cat, deer, dog, horse
TARGET_PER_CLASS, TARGET_VALIDATION_PER_CLASS = 100, 50
PRETRAIN_EPOCHS = 4


def classes_of(split: Split, classes: tuple[int, ...]) -> Split:
    keep = np.flatnonzero(np.isin(split.labels, classes))
    relabel = np.zeros(max(classes) + 1, dtype=np.int64)
    relabel[list(classes)] = np.arange(len(classes))
    names = tuple(CLASS_NAMES[c] for c in classes)
    return Split(split.images[keep], relabel[split.labels[keep]], names)


def first_per_class(split: Split, count: int, seed: int) -> tuple[Split, Split]:
    """`count` random images per class, and the rest."""
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.permutation(np.flatnonzero(split.labels == c))[:count] for c in range(split.classes)]
    )
    rest = np.setdiff1d(np.arange(len(split)), chosen)
    return split.take(np.sort(chosen)), split.take(rest)


def measure(runs_dir: Path, data_dir: Path | None = None) -> dict[str, Any]:
    cifar = data.load(data_dir)
    base = get_config("default")
    source_train, source_validation = data.stratified_split(
        classes_of(cifar.train, SOURCE_CLASSES), validation_size=2500
    )
    pretrain = replace(
        folder_config(base, "transfer_source", source_train.class_names, 32, None),
        recipe=replace(base.recipe, epochs=PRETRAIN_EPOCHS, warmup_epochs=1),
    )
    files = RunFiles(runs_dir / "source", "transfer_source")
    started = time.monotonic()
    weights = train_phase(
        Phase("float", PRETRAIN_EPOCHS, base.recipe.peak_lr, 1, files.float_weights),
        lambda: build_model(pretrain),
        recipe=pretrain.recipe,
        train=source_train,
        validation=source_validation,
        files=files,
    )
    source_model = build_model(pretrain)
    source_model.load_weights(str(weights))
    source_tflite = to_float_tflite(source_model, runs_dir / "transfer_source_float.tflite")
    pretrain_seconds = time.monotonic() - started

    target = classes_of(cifar.train, TARGET_CLASSES)
    target_train, rest = first_per_class(target, TARGET_PER_CLASS, seed=0)
    target_validation, _ = first_per_class(rest, TARGET_VALIDATION_PER_CLASS, seed=1)
    target_test = classes_of(cifar.test, TARGET_CLASSES)
    arms = {
        "scratch, peak lr 0.1": (None, base.recipe.peak_lr, False),
        "pretrained, peak lr 0.02": (source_tflite, 0.02, False),
        "pretrained, head fitted first, peak lr 0.02": (source_tflite, 0.02, True),
        f"pretrained, head fitted first, peak lr {FINE_TUNE_PEAK_LR:g}": (
            source_tflite,
            FINE_TUNE_PEAK_LR,
            True,
        ),
    }
    results: dict[str, Any] = {"pretrain_seconds": round(pretrain_seconds, 1), "arms": {}}
    for arm, (tflite, peak_lr, probe) in arms.items():
        config = folder_config(base, "transfer_target", target_train.class_names, 32, None)
        recipe = replace(config.recipe, peak_lr=peak_lr)
        arm_files = RunFiles(runs_dir / arm.replace(", ", "_").replace(" ", "-"), "target")

        def build(
            config: Any = config, tflite: Path | None = tflite, probe: bool = probe
        ) -> keras.Model:
            model = build_model(config)
            if tflite is not None:
                import_convs(model, tflite, target_train.images)
            if probe:
                fit_head(model, target_train)
            return model

        started = time.monotonic()
        weights = train_phase(
            Phase("float", recipe.epochs, peak_lr, recipe.warmup_epochs, arm_files.float_weights),
            build,
            recipe=recipe,
            train=target_train,
            validation=target_validation,
            files=arm_files,
        )
        model = build_model(config)
        model.load_weights(str(weights))
        model.compile(metrics=["accuracy"], loss="categorical_crossentropy")
        _, accuracy = model.evaluate(evaluation_dataset(target_test), verbose=0)
        history = json.loads(arm_files.history("float").read_text())
        results["arms"][arm] = {
            "test_accuracy": round(float(accuracy), 4),
            "best_val_accuracy": round(max(e["val_accuracy"] for e in history), 4),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"{arm}: {results['arms'][arm]}", file=sys.stderr)
    results["budget"] = {
        "pretrain": f"{PRETRAIN_EPOCHS} epochs on {len(source_train)} images of "
        f"{', '.join(source_train.class_names)}, 32 x 32",
        "fine-tune": f"{recipe.epochs} epochs, batch {recipe.batch_size}, on {len(target_train)} "
        f"images ({TARGET_PER_CLASS} per class) of {', '.join(target_train.class_names)}; "
        f"validation {len(target_validation)}, test {len(target_test)} (CIFAR-10 test set)",
    }
    (runs_dir / "result.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    print(
        json.dumps(
            measure(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/transfer")), indent=1
        )
    )
