"""`Classifier`: an OpenCV frame in, a typed `Prediction` out. Knows nothing of cameras."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_cifar.interpreter import Model
from edge_cifar.labels import CLASS_NAMES
from edge_cifar.preprocess import frame_to_input

STAGES = ("preprocess", "invoke", "postprocess")


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


def top_categories(scores: npt.NDArray[np.float32], k: int) -> tuple[Category, ...]:
    """The k best classes, best first."""
    order = np.argsort(-scores, kind="stable")[:k]
    return tuple(Category(CLASS_NAMES[i], float(scores[i])) for i in order)


class Classifier:
    def __init__(self, model: Model, top_k: int = 3) -> None:
        self.model = model
        self.top_k = max(1, min(top_k, len(CLASS_NAMES)))

    def classify(self, frame: npt.NDArray[np.generic]) -> Prediction:
        """Classify one OpenCV frame (BGR, BGRA or grayscale, any size, 8 or 16-bit)."""
        start = time.perf_counter()
        tensor = frame_to_input(frame, self.model.input_spec)
        prepared = time.perf_counter()
        self.model.set_input(tensor)
        self.model.invoke()
        invoked = time.perf_counter()
        scores = self.model.scores()
        top_k = top_categories(scores, self.top_k)
        done = time.perf_counter()
        best = top_k[0]
        return Prediction(
            label=best.label,
            index=CLASS_NAMES.index(best.label),
            score=best.score,
            top_k=top_k,
            scores=scores,
            timings_ms={
                "preprocess": (prepared - start) * 1e3,
                "invoke": (invoked - prepared) * 1e3,
                "postprocess": (done - invoked) * 1e3,
            },
        )
