"""`Classifier`: an OpenCV frame in, a typed `Decision` out. Knows nothing of cameras.

What the model's input means, what its classes are called and below which score a result is
uncertain come from the model's metadata; `--input-range`, `--labels` (or a `labels.txt` beside
the model) and `--min-score` fill in what a foreign model lacks. Scores are probabilities: a
softmax is applied where the model ends in logits. A frame is ranked once, after any smoothing
of the scores, and the `Decision` is what every command writes, in one JSON shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_cifar.interpreter import Model, ModelError
from edge_cifar.metadata import read_labels_file
from edge_cifar.preprocess import DEFAULT_INPUT_RANGE, INPUT_RANGES, frame_to_input

STAGES = ("preprocess", "invoke", "postprocess")
LABELS_BESIDE_MODEL = "labels.txt"
UNCERTAIN = "uncertain"  # the label of a decision whose best score is below the min score
# A class of this name was trained as "none of these" (a `_background` folder): it names nothing,
# so the camera reports it as uncertain.
BACKGROUND_LABEL = "_background"


@dataclass(frozen=True)
class Category:
    label: str
    score: float


@dataclass(frozen=True)
class Decision:
    """One image's classification: the label (the best class, or UNCERTAIN when its score is
    below the min score), that score, the top-k classes best first (kept when uncertain),
    per-stage milliseconds, and the score vector it was ranked from (smoothed, if it was)."""

    label: str
    score: float
    uncertain: bool
    top_k: tuple[Category, ...]
    timings_ms: dict[str, float]
    index: int = field(repr=False)  # the best class's position in the model's labels
    scores: npt.NDArray[np.float32] = field(repr=False)

    def as_json(self) -> dict[str, object]:
        """The decision as `camera`, `classify`, `serve` and MQTT write it."""
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "uncertain": self.uncertain,
            "top_k": [{"label": c.label, "score": round(c.score, 4)} for c in self.top_k],
            "ms": {stage: round(ms, 3) for stage, ms in self.timings_ms.items()},
        }


Smoothing = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


def top_categories(
    scores: npt.NDArray[np.float32], labels: tuple[str, ...], k: int
) -> tuple[Category, ...]:
    """The k best classes, best first."""
    order = np.argsort(-scores, kind="stable")[:k]
    return tuple(Category(labels[i], float(scores[i])) for i in order)


def decide(
    scores: npt.NDArray[np.float32],
    labels: tuple[str, ...],
    top_k: int,
    min_score: float,
    timings_ms: dict[str, float],
) -> Decision:
    """Rank the scores once: the top-k, and the label, UNCERTAIN below `min_score` or when the
    best class is the `_background` one."""
    ranked = top_categories(scores, labels, top_k)
    best = ranked[0]
    uncertain = best.score < min_score or best.label == BACKGROUND_LABEL
    return Decision(
        label=UNCERTAIN if uncertain else best.label,
        score=best.score,
        uncertain=uncertain,
        top_k=ranked,
        timings_ms=timings_ms,
        index=int(np.argmax(scores)),
        scores=scores,
    )


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = np.exp(logits - logits.max())
    probabilities: npt.NDArray[np.float32] = (shifted / shifted.sum()).astype(np.float32)
    return probabilities


# Where a meaning came from when the model file itself carries it (ModelMeaning's `*_from`).
FROM_METADATA = "the model's metadata"


@dataclass(frozen=True)
class ModelMeaning:
    """The labels and input meaning a classifier uses, and where each came from."""

    labels: tuple[str, ...]
    labels_from: str
    input_range_from: str
    min_score: float
    min_score_from: str
    notes: tuple[str, ...] = ()  # what the user should hear once: overridden flags, guesses


def _labels(
    model: Model, classes: int, labels_file: Path | None, notes: list[str]
) -> tuple[tuple[str, ...], str]:
    carried = model.metadata.labels if model.metadata else None
    beside = model.path.with_name(LABELS_BESIDE_MODEL)
    if carried is not None:
        if labels_file is not None:
            notes.append(f"--labels {labels_file} ignored: the model carries its own labels")
        labels, source = carried, FROM_METADATA
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
        min_score: float | None = None,
    ) -> None:
        """`min_score` None takes the model's recommended threshold, else 0 (never uncertain)."""
        self.model = model
        notes: list[str] = []
        normalization = model.metadata.normalization if model.metadata else None
        if normalization is not None:
            range_from = FROM_METADATA
            if input_range is not None:
                notes.append(f"--input-range {input_range} ignored: the model's metadata says")
        elif input_range is not None:
            if input_range not in INPUT_RANGES:
                raise ModelError(f"--input-range {input_range}: choose {', '.join(INPUT_RANGES)}")
            normalization, range_from = INPUT_RANGES[input_range], f"--input-range {input_range}"
        else:
            normalization = INPUT_RANGES[DEFAULT_INPUT_RANGE]
            range_from = f"the default {DEFAULT_INPUT_RANGE} (no metadata, no --input-range)"
            notes.append(
                f"{model.path.name} does not say what its input values mean (no normalization "
                f"metadata): reading them as {DEFAULT_INPUT_RANGE}; --input-range sets another"
            )
        self.input_spec = model.input_spec_for(normalization)
        classes = model.output.shape[-1]
        labels, labels_from = _labels(model, classes, labels_file, notes)
        threshold = model.metadata.score_threshold if model.metadata else None
        if min_score is not None:
            min_score_from = "--min-score"
        elif threshold is not None:
            min_score, min_score_from = threshold, FROM_METADATA
        else:
            min_score, min_score_from = 0.0, "the default (no threshold in the model)"
        self.meaning = ModelMeaning(
            labels, labels_from, range_from, min_score, min_score_from, tuple(notes)
        )
        self.labels = labels
        self.min_score = min_score
        self.top_k = max(1, min(top_k, classes))
        self._softmax = not model.output_is_distribution()

    def classify(
        self, frame: npt.NDArray[np.generic], smoothing: Smoothing | None = None
    ) -> Decision:
        """Classify one OpenCV frame (BGR, BGRA or grayscale, any size, 8 or 16-bit); a camera
        loop's `smoothing` turns the frame's scores into the ones it decides on."""
        start = time.perf_counter()
        tensor = frame_to_input(frame, self.input_spec)
        prepared = time.perf_counter()
        self.model.set_input(tensor)
        self.model.invoke()
        invoked = time.perf_counter()
        scores = self.model.scores()
        if self._softmax:
            scores = softmax(scores)
        if smoothing is not None:
            scores = smoothing(scores)
        timings_ms = {
            "preprocess": (prepared - start) * 1e3,
            "invoke": (invoked - prepared) * 1e3,
        }
        decision = decide(scores, self.labels, self.top_k, self.min_score, timings_ms)
        # Dequantizing, softmax, smoothing and the ranking.
        timings_ms["postprocess"] = (time.perf_counter() - invoked) * 1e3
        return decision
