"""Classify image files one by one: a failed file is its own result, the rest still run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_cifar.classifier import Classifier, Decision
from edge_cifar.preprocess import FrameError
from edge_cifar.sources import SourceError, read_image


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
    """One result per path, in order; unreadable or unusable images yield an error result."""
    for path in paths:
        try:
            yield ImageResult(path, decision=classifier.classify(read_image(path)))
        except SourceError as error:
            yield ImageResult(path, error=str(error))
        except FrameError as error:
            yield ImageResult(path, error=f"{path}: {error}")
