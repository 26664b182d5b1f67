"""Classify image files one by one: a failed file is its own result, the rest still run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2

from edge_cifar.classifier import Classifier, Prediction
from edge_cifar.preprocess import FrameError
from edge_cifar.sources import SourceError, opencv_reason, read_image


def prediction_json(prediction: Prediction) -> dict[str, object]:
    """What `classify --json` and `POST /classify` say of one image."""
    return {
        "label": prediction.label,
        "score": round(prediction.score, 4),
        "top_k": [{"label": c.label, "score": round(c.score, 4)} for c in prediction.top_k],
    }


@dataclass(frozen=True)
class ImageResult:
    path: Path
    prediction: Prediction | None = None
    error: str | None = None  # one line, when the file could not be read or classified

    def as_json(self) -> dict[str, object]:
        if self.prediction is None:
            return {"path": str(self.path), "error": self.error}
        return {"path": str(self.path), **prediction_json(self.prediction)}


def classify_files(classifier: Classifier, paths: Sequence[Path]) -> Iterator[ImageResult]:
    """One result per path, in order; unreadable or unusable images yield an error result, and
    the batch goes on: whatever one file does (OpenCV refusing it, a decode too large for the
    memory left) is that file's line."""
    for path in paths:
        try:
            prediction = classifier.classify(read_image(path))
        except SourceError as error:
            yield ImageResult(path, error=str(error))
        except FrameError as error:
            yield ImageResult(path, error=f"{path}: {error}")
        except cv2.error as error:
            yield ImageResult(path, error=f"{path}: OpenCV: {opencv_reason(error)}")
        except MemoryError:
            yield ImageResult(path, error=f"{path}: not enough memory to decode and classify it")
        else:
            yield ImageResult(path, prediction=prediction)
