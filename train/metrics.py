"""Classification metrics in NumPy, with scikit-learn's definitions (zero division counts as 0)."""

from __future__ import annotations

from typing import Any

import numpy as np

from train.labels import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    flat = labels.astype(np.int64) * NUM_CLASSES + predictions.astype(np.int64)
    counts = np.bincount(flat, minlength=NUM_CLASSES**2)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES).astype(np.int64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    result = np.zeros_like(numerator, dtype=float)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def classification_report(labels: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
    """Accuracy; per-class precision, recall, F1 and support; macro and weighted averages."""
    matrix = confusion_matrix(labels, predictions)
    true_positives = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    precision = _ratio(true_positives, matrix.sum(axis=0).astype(float))
    recall = _ratio(true_positives, support.astype(float))
    f1 = _ratio(2 * precision * recall, precision + recall)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(CLASS_NAMES)
    }
    weights = support / max(int(support.sum()), 1)
    return {
        "accuracy": float(true_positives.sum() / max(len(labels), 1)),
        "per_class": per_class,
        "macro_avg": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
            "support": int(support.sum()),
        },
        "weighted_avg": {
            "precision": float((precision * weights).sum()),
            "recall": float((recall * weights).sum()),
            "f1": float((f1 * weights).sum()),
            "support": int(support.sum()),
        },
        "confusion_matrix": matrix.tolist(),
    }


def most_confused_pairs(matrix: np.ndarray, count: int = 5) -> list[dict[str, Any]]:
    """The off-diagonal cells with the most images, largest first."""
    off_diagonal = np.array(matrix, dtype=np.int64)
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(-off_diagonal, axis=None, kind="stable")[:count]
    return [
        {
            "true": CLASS_NAMES[i],
            "predicted": CLASS_NAMES[j],
            "count": int(off_diagonal[i, j]),
        }
        for i, j in (divmod(int(k), NUM_CLASSES) for k in order)
    ]
