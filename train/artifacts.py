"""Where a training run keeps its files, and writing them so that no reader sees half a file."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_cifar.model_files import CHECKOUT_MODELS_DIR
from train.data import DataError


def write_atomic(path: Path, content: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`: a reader never sees
    half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
            # The temporary file is private; what it becomes is an ordinary file.
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(tmp.fileno(), 0o666 & ~umask)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    Path(tmp.name).replace(path)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Arrays as a compressed .npz that loads without pickle, written atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    write_atomic(path, buffer.getvalue())


def read_json(path: Path, error: Callable[[str], Exception]) -> Any:
    """The JSON in `path`; a missing or unreadable file raises `error(reason)`, so each caller
    reports it in its own words, as one line."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as reason:  # bad JSON and bad UTF-8 are ValueErrors
        raise error(str(reason)) from None


def shipped_float_model(model: str) -> Path:
    """A shipped model's float TFLite file: a teacher's, or the one a folder model starts from."""
    return CHECKOUT_MODELS_DIR / f"{model}_float.tflite"


@dataclass(frozen=True)
class RunFiles:
    """The files of one training run, under runs/<model>[-quick]/ (ignored by git)."""

    root: Path
    model_name: str

    def backup_dir(self, phase: str) -> Path:
        return self.root / f"{phase}_checkpoint"

    def history(self, phase: str) -> Path:
        return self.root / f"{phase}_history.json"

    def epochs(self, phase: str) -> list[dict[str, Any]]:
        """The epochs a phase's history records (none: the phase has not run)."""
        path = self.history(phase)
        epochs: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
        return epochs

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.json"

    def teacher_scores(self, teacher: str) -> Path:
        return self.root / f"teacher_{teacher}.npz"

    # HDF5 weight files (".h5", not ".weights.h5"): the format tfmot's wrapped layers load reliably.
    @property
    def float_weights(self) -> Path:
        return self.root / "float.h5"

    @property
    def qat_weights(self) -> Path:
        return self.root / "qat.h5"

    @property
    def int8_model(self) -> Path:
        return self.root / f"{self.model_name}_int8.tflite"

    @property
    def uint8_model(self) -> Path:
        """The INT8 model with a uint8 input and output (MediaPipe Tasks, the Task Library)."""
        return self.root / f"{self.model_name}_uint8.tflite"

    @property
    def float_model(self) -> Path:
        return self.root / f"{self.model_name}_float.tflite"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.npz"

    @property
    def robustness(self) -> Path:
        return self.root / "robustness.json"

    @property
    def open_set(self) -> Path:
        return self.root / "open_set.json"


class RecipeMismatchError(DataError):
    """The run folder was started with another recipe: reported like bad input, before training."""


def recorded_recipe(files: RunFiles) -> dict[str, Any]:
    """The recipe the run folder was started with ({} before its first training)."""
    if not files.recipe.is_file():
        return {}

    def unreadable(reason: str) -> RecipeMismatchError:
        return RecipeMismatchError(
            f"{files.recipe} is not a readable recipe ({reason}); move {files.root} away to "
            "start afresh, or restore the file to resume that run"
        )

    started = read_json(files.recipe, unreadable)
    if not isinstance(started, dict):
        raise unreadable(f"a JSON {type(started).__name__}, not an object")
    return started


def claim_run(
    files: RunFiles, recipe: dict[str, Any], defaults: dict[str, Any] | None = None
) -> None:
    """Record the recipe a run folder trains with, or refuse to go on under a different one: its
    checkpoints and weights would otherwise resume (or ship) as a mix of two recipes under a card
    that names one. A field the recorded recipe lacks counts as its value in `defaults`: a recipe
    option added later, left at its default, changes nothing about a run started before it."""
    if not files.recipe.is_file():
        write_atomic(files.recipe, json.dumps(recipe, indent=2).encode())
        return
    started = {**(defaults or {}), **recorded_recipe(files)}
    changed = sorted(
        key for key in recipe.keys() | started.keys() if recipe.get(key) != started.get(key)
    )
    if changed:
        differences = ", ".join(
            f"{key} {started.get(key)!r} -> {recipe.get(key)!r}" for key in changed
        )
        raise RecipeMismatchError(
            f"{files.root} holds a run started with another recipe ({differences}); "
            "move that folder away to start afresh, or restore its recipe to resume it"
        )
