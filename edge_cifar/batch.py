"""Classify image files one by one: a failed file is its own result, the rest still run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2

from edge_cifar.classifier import Classifier, Decision
from edge_cifar.preprocess import FrameError
from edge_cifar.sources import SourceError, opencv_reason, read_image


@dataclass(frozen=True)
class ImageResult:
    path: Path
    decision: Decision | None = None
    error: str | None = None  # one line, when the file could not be read or classified

    def as_json(self) -> dict[str, object]:
        if self.decision is None:
            return {"path": str(self.path), "error": self.error}
        return {"path": str(self.path), **self.decision.as_json()}


def classify_files(classifier: Classifier, paths: Sequence[Path]) -> Iterator[ImageResult]:
    """One result per path, in order; unreadable or unusable images yield an error result, and
    the batch goes on: whatever one file does (OpenCV refusing it, a decode too large for the
    memory left) is that file's line."""
    for path in paths:
        try:
            decision = classifier.classify(read_image(path))
        except SourceError as error:
            yield ImageResult(path, error=str(error))
        except FrameError as error:
            yield ImageResult(path, error=f"{path}: {error}")
        except cv2.error as error:
            yield ImageResult(path, error=f"{path}: OpenCV: {opencv_reason(error)}")
        except MemoryError:
            yield ImageResult(path, error=f"{path}: not enough memory to decode and classify it")
        else:
            yield ImageResult(path, decision=decision)
