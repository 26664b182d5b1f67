"""Training phases (float, then QAT): SGD with warm-up + cosine, checkpoints every epoch, resume,
and a per-epoch history (loss, accuracy, precision, recall; train and validation) as JSON."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
import tf_keras as keras

from train.airbench import whiten_from
from train.artifacts import RunFiles, write_atomic
from train.data import Split
from train.devices import training_strategy
from train.distill import training_targets
from train.inputs import evaluation_dataset, training_dataset
from train.models import build
from train.precision import FLOAT32, float_training_precision, use_precision
from train.recipe import ModelConfig, Recipe
from train.transfer import pretrained_model

CHECKPOINT_STEPS = 200
PROGRESS_SECONDS = 60.0


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """Linear warm-up to `peak`, then cosine decay to zero at `total_steps`."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int) -> None:
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps

    def __call__(self, step: Any) -> Any:
        step = tf.cast(step, tf.float32)
        warmup = float(max(self.warmup_steps, 1))
        progress = tf.minimum((step - warmup) / float(max(self.total_steps - warmup, 1)), 1.0)
        cosine = 0.5 * self.peak * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < warmup, self.peak * (step + 1.0) / warmup, cosine)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


class HistoryLog(keras.callbacks.Callback):  # type: ignore[misc]
    """Appends each finished epoch to a JSON file; a resumed run continues the same file."""

    def __init__(self, path: Path, phase: str, precision: str) -> None:
        super().__init__()
        self.path, self.phase, self.precision = path, phase, precision
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        entries = json.loads(self.path.read_text()) if self.path.exists() else []
        # Epochs past this one belong to an interrupted attempt that is being redone.
        entries = [e for e in entries if e["epoch"] < epoch]
        lr = self.model.optimizer.learning_rate
        step = int(keras.backend.get_value(self.model.optimizer.iterations)) - 1
        entries.append(
            {
                "phase": self.phase,
                "epoch": epoch,
                "seconds": round(time.monotonic() - self.started, 2),
                "lr": float(keras.backend.get_value(lr(step) if callable(lr) else lr)),
                "replicas": self.model.distribute_strategy.num_replicas_in_sync,
                "dtype_policy": self.precision,  # "precision" is a metric of the logs
                **{key: float(value) for key, value in (logs or {}).items()},
            }
        )
        write_atomic(self.path, json.dumps(entries, indent=1).encode())


class ProgressLog(keras.callbacks.Callback):  # type: ignore[misc]
    """A line every `interval` seconds within an epoch (images/s, the epoch's ETA, loss and
    accuracy so far) for a log file, where Keras' progress bar would print one line per epoch."""

    def __init__(
        self, phase: str, epochs: int, steps: int, batch_size: int, interval: float
    ) -> None:
        super().__init__()
        self.phase, self.epochs, self.steps = phase, epochs, steps
        self.batch_size, self.interval = batch_size, interval
        self.epoch, self.started, self.last, self.first_step = 0, 0.0, 0.0, 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch, self.started = epoch, time.monotonic()
        self.last, self.first_step = self.started, -1

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        now = time.monotonic()
        if self.first_step < 0:  # a resumed epoch starts mid-way
            self.first_step, self.started = batch, now
        if now - self.last < self.interval or batch == self.first_step:
            return
        self.last = now
        rate = (batch - self.first_step) / (now - self.started)
        eta = (self.steps - 1 - batch) / rate
        logs = logs or {}
        print(
            f"{self.phase} epoch {self.epoch + 1}/{self.epochs}: step {batch + 1}/{self.steps}, "
            f"{rate * self.batch_size:.1f} images/s, epoch ETA {eta / 60:.1f} min, "
            f"loss {logs.get('loss', float('nan')):.4f}, "
            f"accuracy {logs.get('accuracy', float('nan')):.4f}",
            file=sys.stderr,
            flush=True,
        )


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class _OnLabels:
    """Scores a metric against the class each target favours: a distillation target is a
    distribution, and Precision/Recall would count every class it gives weight to as positive."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        labels = tf.one_hot(tf.argmax(y_true, axis=-1), tf.shape(y_true)[-1])
        return super().update_state(labels, y_pred, sample_weight)  # type: ignore[misc]


class LabelPrecision(_OnLabels, keras.metrics.Precision):  # type: ignore[misc]
    pass


class LabelRecall(_OnLabels, keras.metrics.Recall):  # type: ignore[misc]
    pass


def compile_for_training(
    model: keras.Model, recipe: Recipe, peak_lr: float, warmup_epochs: int, epochs: int, steps: int
) -> None:
    schedule = WarmupCosine(peak_lr, warmup_epochs * steps, epochs * steps)
    optimizer = keras.optimizers.SGD(
        schedule, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay
    )
    # Decay shrinks weights towards zero; BatchNorm scales/offsets and biases have no reason to.
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            LabelPrecision(name="precision"),
            LabelRecall(name="recall"),
        ],
    )


@dataclass(frozen=True)
class Phase:
    """One training phase: its name, its schedule and the weights file it leaves."""

    name: str
    epochs: int
    peak_lr: float
    warmup_epochs: int
    weights: Path
    precision: str = FLOAT32  # a Keras mixed-precision policy name (train/precision.py)


def train_phase(
    phase: Phase,
    build: Callable[[], keras.Model],
    *,
    recipe: Recipe,
    train: Split,
    validation: Split,
    files: RunFiles,
) -> Path:
    """Train the model `build` returns, unless the phase's weights exist; resumes from the phase's
    checkpoint when one exists. Returns the weights file."""
    if phase.weights.exists():
        print(f"{phase.name}: weights exist, not training: {phase.weights}", file=sys.stderr)
        return phase.weights
    targets = training_targets(recipe, train, files)
    seed_everything(recipe.seed)
    strategy = training_strategy()
    print(
        f"{phase.name}: training on {strategy.num_replicas_in_sync} replica(s), {phase.precision}",
        file=sys.stderr,
    )
    use_precision(phase.precision)
    with strategy.scope():
        model = build()
        steps = len(train) // recipe.batch_size
        compile_for_training(model, recipe, phase.peak_lr, phase.warmup_epochs, phase.epochs, steps)
    backup_dir = files.backup_dir(phase.name)
    if backup_dir.exists():
        print(f"{phase.name}: resuming from the checkpoint in {backup_dir}", file=sys.stderr)
    # A progress bar per step on a terminal; one line per epoch and a line a minute in a log file.
    progress = (
        []
        if sys.stdout.isatty()
        else [ProgressLog(phase.name, phase.epochs, steps, recipe.batch_size, PROGRESS_SECONDS)]
    )
    model.fit(
        training_dataset(
            train, targets, recipe.batch_size, recipe.seed, recipe.cutout, recipe.camera_augment
        ),
        epochs=phase.epochs,
        # None: a final run on all training images holds none out.
        validation_data=evaluation_dataset(validation) if len(validation) else None,
        callbacks=[
            # Mid-epoch checkpoints too: an epoch of a large model outlasts a sitting's margin.
            keras.callbacks.BackupAndRestore(
                str(backup_dir), save_freq=min(steps, CHECKPOINT_STEPS)
            ),
            HistoryLog(files.history(phase.name), phase.name, phase.precision),
            keras.callbacks.TerminateOnNaN(),
            *progress,
        ],
        verbose=1 if sys.stdout.isatty() else 2,
    )
    save_weights(model, phase.weights)
    # Whatever builds a model next (QAT, conversion, evaluation) does so in float32.
    use_precision(FLOAT32)
    return phase.weights


def train_float(config: ModelConfig, train: Split, validation: Split, files: RunFiles) -> Path:
    """Train the float model unless its weights exist; returns the weights file."""
    recipe = config.recipe
    phase = Phase(
        "float",
        recipe.epochs,
        recipe.peak_lr,
        recipe.warmup_epochs,
        files.float_weights,
        recipe.precision or float_training_precision(),
    )
    pretrained = recipe.pretrained

    def whitened() -> keras.Model:
        model = (
            build(config)
            if pretrained is None
            else pretrained_model(lambda: build(config), pretrained, train)
        )
        # A whitening layer's filters come from the training images (train/airbench.py).
        return whiten_from(model, train)

    return train_phase(
        phase, whitened, recipe=recipe, train=train, validation=validation, files=files
    )


def save_weights(model: keras.Model, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial.h5")
    model.save_weights(str(partial))
    partial.replace(path)
