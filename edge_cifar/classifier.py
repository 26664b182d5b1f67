"""`Classifier`: an OpenCV frame in, a typed `Prediction` out. Knows nothing of cameras.

What the model's input means and what its classes are called come from the model's metadata;
`--input-range` and `--labels` (or a `labels.txt` beside the model) fill in what a foreign model
lacks. Scores are probabilities: a softmax is applied where the model ends in logits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_cifar.interpreter import Model, ModelError
from edge_cifar.metadata import read_labels_file
from edge_cifar.preprocess import DEFAULT_INPUT_RANGE, INPUT_RANGES, frame_to_input

STAGES = ("preprocess", "invoke", "postprocess")
LABELS_BESIDE_MODEL = "labels.txt"
# A class of this name was trained as "none of these" (a `_background` folder): it names nothing,
# so the camera reports it as uncertain.
BACKGROUND_LABEL = "_background"


@dataclass(frozen=True)
class Category:
    label: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """The top class, the top-k list, the full score vector and per-stage milliseconds."""

    label: str
    index: int
    score: float
    top_k: tuple[Category, ...]
    scores: npt.NDArray[np.float32] = field(repr=False)
    timings_ms: dict[str, float] = field(default_factory=dict)
    labels: tuple[str, ...] = field(default=(), repr=False)  # the model's, in score order


def top_categories(
    scores: npt.NDArray[np.float32], labels: tuple[str, ...], k: int
) -> tuple[Category, ...]:
    """The k best classes, best first."""
    order = np.argsort(-scores, kind="stable")[:k]
    return tuple(Category(labels[i], float(scores[i])) for i in order)


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = np.exp(logits - logits.max())
    probabilities: npt.NDArray[np.float32] = (shifted / shifted.sum()).astype(np.float32)
    return probabilities


@dataclass(frozen=True)
class ModelMeaning:
    """The labels and input meaning a classifier uses, and where each came from."""

    labels: tuple[str, ...]
    labels_from: str
    input_range_from: str
    notes: tuple[str, ...] = ()  # flags the model's own metadata overrode


def _labels(
    model: Model, classes: int, labels_file: Path | None, notes: list[str]
) -> tuple[tuple[str, ...], str]:
    carried = model.metadata.labels if model.metadata else None
    beside = model.path.with_name(LABELS_BESIDE_MODEL)
    if carried is not None:
        if labels_file is not None:
            notes.append(f"--labels {labels_file} ignored: the model carries its own labels")
        labels, source = carried, "the model's metadata"
    elif labels_file is not None:
        labels, source = read_labels_file(labels_file), str(labels_file)
    elif beside.is_file():
        labels, source = read_labels_file(beside), str(beside)
    else:
        return tuple(str(i) for i in range(classes)), "class indices (no labels given)"
    if len(labels) != classes:
        raise ModelError(
            f"{model.path}: {len(labels)} labels in {source}, but the model gives {classes} scores"
        )
    return labels, source


class Classifier:
    def __init__(
        self,
        model: Model,
        top_k: int = 3,
        *,
        input_range: str | None = None,
        labels_file: Path | None = None,
    ) -> None:
        self.model = model
        notes: list[str] = []
        normalization = model.metadata.normalization if model.metadata else None
        if normalization is not None:
            range_from = "the model's metadata"
            if input_range is not None:
                notes.append(f"--input-range {input_range} ignored: the model's metadata says")
        elif input_range is not None:
            if input_range not in INPUT_RANGES:
                raise ModelError(f"--input-range {input_range}: choose {', '.join(INPUT_RANGES)}")
            normalization, range_from = INPUT_RANGES[input_range], f"--input-range {input_range}"
        else:
            normalization = INPUT_RANGES[DEFAULT_INPUT_RANGE]
            range_from = f"the default {DEFAULT_INPUT_RANGE} (no metadata, no --input-range)"
        self.input_spec = model.input_spec_for(normalization)
        classes = model.output.shape[-1]
        labels, labels_from = _labels(model, classes, labels_file, notes)
        self.meaning = ModelMeaning(labels, labels_from, range_from, tuple(notes))
        self.labels = labels
        self.top_k = max(1, min(top_k, classes))
        self._softmax = not model.output_is_distribution()

    def classify(self, frame: npt.NDArray[np.generic]) -> Prediction:
        """Classify one OpenCV frame (BGR, BGRA or grayscale, any size, 8 or 16-bit)."""
        start = time.perf_counter()
        tensor = frame_to_input(frame, self.input_spec)
        prepared = time.perf_counter()
        self.model.set_input(tensor)
        self.model.invoke()
        invoked = time.perf_counter()
        scores = self.model.scores()
        if self._softmax:
            scores = softmax(scores)
        top_k = top_categories(scores, self.labels, self.top_k)
        done = time.perf_counter()
        best = top_k[0]
        return Prediction(
            label=best.label,
            index=int(np.argmax(scores)),
            score=best.score,
            top_k=top_k,
            scores=scores,
            timings_ms={
                "preprocess": (prepared - start) * 1e3,
                "invoke": (invoked - prepared) * 1e3,
                "postprocess": (done - invoked) * 1e3,
            },
            labels=self.labels,
        )
