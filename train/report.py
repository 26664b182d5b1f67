"""The evaluation report: plots and Markdown from a run's saved histories and predictions.

Runs no model. Every figure comes from the artefacts `train.evaluate` and the training steps left
in the run folder (histories, `predictions.npz`, `evaluation.json`), so the numbers here are the
numbers in the model card. The figures themselves are drawn in train/plots.py.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from train import metrics
from train.artifacts import RunFiles, read_json, recorded_recipe, write_atomic
from train.card import CardError, ModelCard, read_card
from train.data import Split, subset
from train.plots import (
    MODEL_TITLES,
    confusion_png,
    data_overview_png,
    disagreements_png,
    misclassified_png,
    prediction_grid_png,
    probability_bars_png,
    training_curves_png,
)
from train.robustness import family_curves_png, markdown_table
from train.run import FolderSource, joined_as_recorded, load_data

FILE_TAGS = {"float_keras": "float", "int8_tflite": "int8"}
SCORE_KEYS = tuple(f"{kind}_scores" for kind in ("float_keras", "float_tflite", "int8_tflite"))
EVALUATION_KEYS = (
    "test_images",
    "accuracy",
    "int8_drop_pt",
    "int8_agreement_with_float_keras",
    "reports",
)
HISTORY_KEYS = ("phase", "loss", "accuracy", "precision", "recall")


class ReportError(RuntimeError):
    """A run's artefacts are missing or inconsistent; the message is one line for the user."""


@dataclass(frozen=True)
class RunArtefacts:
    """What a finished run left behind, read and checked."""

    files: RunFiles
    history: list[dict[str, Any]]  # float epochs, then QAT epochs
    labels: np.ndarray  # N, the evaluated test labels
    scores: dict[str, np.ndarray]  # model kind -> N x classes scores
    evaluation: dict[str, Any]
    card: ModelCard | None
    card_path: Path
    robustness: dict[str, Any] | None = None  # robustness.json; None for runs from before it

    def predictions(self, kind: str) -> np.ndarray:
        return np.asarray(self.scores[kind].argmax(axis=1))


# --- reading the artefacts ----------------------------------------------------------------------


def load_run(files: RunFiles, card_path: Path) -> RunArtefacts:
    """Read and cross-check a run's artefacts; ReportError names everything that is missing."""
    # A model quantized after training (no QAT epochs) has no QAT history.
    phases = ("float", "qat") if recorded_recipe(files).get("qat_epochs", 1) else ("float",)
    histories = [files.history(phase) for phase in phases]
    required = [*histories, files.predictions, files.evaluation]
    missing = [path.name for path in required if not path.is_file()]
    if missing:
        raise ReportError(
            f"{files.root}: missing {', '.join(missing)} (a finished `make quantize` writes them)"
        )
    history = [epoch for path in histories for epoch in _read_history(path)]
    labels, scores = _read_predictions(files.predictions)
    evaluation = _read_json(files.evaluation)
    if not isinstance(evaluation, dict):
        raise ReportError(f"{files.evaluation}: expected a JSON object")
    _check_consistent(files, labels, scores, evaluation)
    return RunArtefacts(
        files=files,
        history=history,
        labels=labels,
        scores=scores,
        evaluation=evaluation,
        card=_read_card(card_path, evaluation),
        card_path=card_path,
        robustness=_read_json(files.robustness) if files.robustness.is_file() else None,
    )


def _read_json(path: Path) -> Any:
    return read_json(path, lambda reason: ReportError(f"{path}: not readable JSON ({reason})"))


def _read_history(path: Path) -> list[dict[str, Any]]:
    history = _read_json(path)
    if not isinstance(history, list) or not history:
        raise ReportError(f"{path}: expected a non-empty list of epochs")
    for number, epoch in enumerate(history):
        lacking = [key for key in HISTORY_KEYS if key not in epoch]
        if lacking:
            raise ReportError(f"{path}: epoch {number} lacks {', '.join(lacking)}")
    return history


def _read_predictions(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as error:
        raise ReportError(f"{path}: not a readable .npz file ({error})") from None
    lacking = [key for key in ("labels", *SCORE_KEYS) if key not in arrays]
    if lacking:
        raise ReportError(f"{path}: lacks {', '.join(lacking)}")
    labels = arrays["labels"].astype(np.int64)
    scores = {key.removesuffix("_scores"): arrays[key].astype(np.float32) for key in SCORE_KEYS}
    classes = scores["float_keras"].shape[-1]
    for kind, values in scores.items():
        if values.shape != (len(labels), classes):
            raise ReportError(
                f"{path}: {kind} scores have shape {values.shape}, "
                f"expected ({len(labels)}, {classes})"
            )
    return labels, scores


def _check_consistent(
    files: RunFiles, labels: np.ndarray, scores: dict[str, np.ndarray], evaluation: dict[str, Any]
) -> None:
    # Both files come from one `evaluate` call; a mismatch means one of them is stale, and the
    # report would then contradict the model card.
    lacking = [key for key in EVALUATION_KEYS if key not in evaluation]
    if lacking:
        raise ReportError(f"{files.evaluation}: lacks {', '.join(lacking)}")
    try:
        saved_matrices = {kind: evaluation["reports"][kind]["confusion_matrix"] for kind in scores}
    except (KeyError, TypeError) as error:
        raise ReportError(f"{files.evaluation}: no confusion matrix for {error}") from None
    test_images = evaluation["test_images"]
    if test_images != len(labels):
        raise ReportError(
            f"{files.evaluation} counts {test_images} test images but {files.predictions} holds "
            f"{len(labels)}: re-run `python -m train evaluate` for this run"
        )
    for kind, values in scores.items():
        matrix = metrics.confusion_matrix(labels, values.argmax(axis=1), values.shape[1])
        if not np.array_equal(matrix, np.asarray(saved_matrices[kind])):
            raise ReportError(
                f"{files.evaluation} and {files.predictions} disagree on {kind}: "
                f"re-run `python -m train evaluate` for this run"
            )


def _read_card(card_path: Path, evaluation: dict[str, Any]) -> ModelCard | None:
    """The model card, when it describes this evaluation (a card from another run is ignored)."""
    if not card_path.is_file():
        return None
    try:
        card = read_card(card_path)
    except CardError as error:
        raise ReportError(str(error)) from None
    accuracy = evaluation["accuracy"]
    matches = (
        card.test_images == evaluation["test_images"]
        and card.int8_accuracy == accuracy["int8_tflite"]
        and card.float_accuracy == accuracy["float_keras"]
    )
    if not matches:
        print(
            f"warning: {card_path} is from another evaluation; model size left out of the report",
            file=sys.stderr,
        )
        return None
    return card


def evaluated_test_split(test: Split, labels: np.ndarray) -> Split:
    """The test images in the order of predictions.npz.

    A quick run evaluates `data.subset(test, QUICK_TEST)`; the same call with the saved image count
    picks the same images (and the whole set for a full run). The labels prove it.
    """
    evaluated = subset(test, len(labels))
    if len(evaluated) != len(labels) or not np.array_equal(evaluated.labels, labels):
        raise ReportError(
            f"the saved predictions ({len(labels)} images) do not match the test set "
            "this report reads (another data folder, or another --quick setting?)"
        )
    return evaluated


# --- tables and the index -----------------------------------------------------------------------


def per_class_metrics(run: RunArtefacts, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per-class precision, recall, F1 and support with averages, for float and INT8."""
    return {
        kind: metrics.classification_report(run.labels, run.predictions(kind), names)
        for kind in MODEL_TITLES
    }


def per_class_table(reports: dict[str, dict[str, Any]], names: tuple[str, ...]) -> list[str]:
    """Markdown: float and INT8 precision / recall / F1 side by side, one row per class."""
    measures = ("precision", "recall", "f1")
    titles = [f"{tag} {m}" for tag in ("float", "INT8") for m in ("precision", "recall", "F1")]
    lines = ["| class | " + " | ".join(titles) + " | support |", "| --- " * 8 + "|"]
    rows = [(name, [reports[kind]["per_class"][name] for kind in MODEL_TITLES]) for name in names]
    rows += [
        (f"**{key.replace('_', ' ')}**", [reports[kind][key] for kind in MODEL_TITLES])
        for key in ("macro_avg", "weighted_avg")
    ]
    for title, pair in rows:
        cells = [f"{m[measure]:.3f}" for m in pair for measure in measures]
        lines.append(f"| {title} | {' | '.join(cells)} | {pair[0]['support']} |")
    float_accuracy, int8_accuracy = (reports[kind]["accuracy"] for kind in MODEL_TITLES)
    lines.append(
        f"| **accuracy** | {100 * float_accuracy:.2f}% | | | {100 * int8_accuracy:.2f}% | | | |"
    )
    return lines


def headline_lines(run: RunArtefacts) -> list[str]:
    evaluation = run.evaluation
    accuracy = {kind: f"{100 * value:.2f}%" for kind, value in evaluation["accuracy"].items()}
    lines = [
        "| | float (Keras) | float TFLite | INT8 TFLite |",
        "| --- | --- | --- | --- |",
        f"| test accuracy | {accuracy['float_keras']} | {accuracy['float_tflite']} "
        f"| **{accuracy['int8_tflite']}** |",
        "",
        f"- test images: {evaluation['test_images']:,}",
        f"- INT8 drop: {evaluation['int8_drop_pt']:.2f} pt",
        f"- INT8 / float agreement: {100 * evaluation['int8_agreement_with_float_keras']:.2f}% "
        "of test images",
    ]
    if run.card is not None and run.card.int8_model is not None:
        int8_bytes, float_bytes = run.card.int8_model.bytes, run.card.float_model.bytes
        lines.append(
            f"- model size: INT8 {int8_bytes:,} bytes ({int8_bytes / 1024:.1f} KiB), "
            f"float {float_bytes:,} bytes ({float_bytes / 1024:.1f} KiB), "
            f"{run.card.parameters:,} parameters (from `{run.card_path}`)"
        )
    else:
        lines.append(f"- model size: no model card at `{run.card_path}` for this evaluation")
    return lines


def training_summary(history: list[dict[str, Any]]) -> str:
    parts = []
    for phase, title in (("float", "float training"), ("qat", "QAT")):
        epochs = [e for e in history if e["phase"] == phase]
        minutes = sum(e.get("seconds", 0.0) for e in epochs) / 60
        parts.append(f"{title}: {len(epochs)} epoch{'s' * (len(epochs) != 1)} ({minutes:.1f} min)")
    validation = history[-1].get("val_accuracy")
    if validation is not None:
        parts.append(f"validation accuracy after the last epoch: {100 * validation:.2f}%")
    return "; ".join(parts) + "."


def index_markdown(
    run: RunArtefacts, reports: dict[str, dict[str, Any]], names: tuple[str, ...]
) -> str:
    model = run.files.model_name
    pairs = metrics.most_confused_pairs(
        np.asarray(reports["int8_tflite"]["confusion_matrix"]), names
    )
    lines = [
        f"# Evaluation report: `{model}`",
        "",
        f"From the artefacts in `{run.files.root}` (`evaluation.json`, `predictions.npz`, the "
        "training histories); no model was re-run, so these are the model card's figures.",
        "",
        *headline_lines(run),
        "",
        "## Training",
        "",
        training_summary(run.history),
        "",
        "![training curves](training_curves.png)",
        "",
        "## Per class (test set)",
        "",
        "Also as JSON: [per_class.json](per_class.json).",
        "",
        *per_class_table(reports, names),
        "",
        "## Confusion matrices",
        "",
        "\n\n".join(
            f"![{title} confusion matrix](confusion_{FILE_TAGS[kind]}.png)"
            for kind, title in MODEL_TITLES.items()
        ),
        "",
        "## Most confused pairs (INT8)",
        "",
        "| true class | predicted as | images |",
        "| --- | --- | --- |",
        *(f"| {p['true']} | {p['predicted']} | {p['count']} |" for p in pairs if p["count"]),
        "",
        "## Mistakes and disagreements",
        "",
        "![INT8 misclassified images](misclassified_int8.png)",
        "",
        "![float and INT8 disagree](disagreements.png)",
        "",
        "## Predictions",
        "",
        "![INT8 predictions on 25 test images](predictions_int8.png)",
        "",
        "![class scores, float and INT8](probabilities.png)",
        "",
        *robustness_section(run.robustness),
        "## Data",
        "",
        "![samples and class counts](data_overview.png)",
        "",
    ]
    return "\n".join(lines)


def robustness_section(robustness: dict[str, Any] | None) -> list[str]:
    if robustness is None:
        return []
    return [
        "## Robustness (camera-style corruptions)",
        "",
        f"{robustness['test_images']} test images under {len(robustness['corruptions'])} "
        "CIFAR-10-C-style corruptions at severities 1-5 (train/corruptions.py), each model "
        "through edge_cifar; each corruption's row is its mean over the five severities.",
        "",
        markdown_table(robustness),
        "![accuracy against severity per corruption family](robustness.png)",
        "",
    ]


def write_report(
    run: RunArtefacts, test: Split, train: Split, validation: Split, out_dir: Path
) -> Path:
    """Write the figures, per_class.json and index.md into `out_dir`; return index.md's path."""
    evaluated = evaluated_test_split(test, run.labels)
    images, labels, names = evaluated.images, run.labels, test.class_names
    float_scores, int8_scores = run.scores["float_keras"], run.scores["int8_tflite"]
    both = (float_scores, int8_scores)
    if float_scores.shape[1] != len(names):
        raise ReportError(
            f"{run.files.predictions} scores {float_scores.shape[1]} classes but the test set "
            f"has {len(names)}"
        )
    reports = per_class_metrics(run, names)
    contents: dict[str, bytes] = {
        "training_curves.png": training_curves_png(run.history, run.files.model_name),
        **{
            f"confusion_{FILE_TAGS[kind]}.png": confusion_png(
                labels, run.predictions(kind), MODEL_TITLES[kind], names
            )
            for kind in MODEL_TITLES
        },
        "misclassified_int8.png": misclassified_png(
            images, labels, int8_scores, "int8_tflite", names
        ),
        "disagreements.png": disagreements_png(images, labels, both, names),
        "predictions_int8.png": prediction_grid_png(
            images, labels, int8_scores, "int8_tflite", names
        ),
        "probabilities.png": probability_bars_png(images, labels, both, names),
        "data_overview.png": data_overview_png(train, validation, evaluated),
        "per_class.json": (json.dumps(reports, indent=1) + "\n").encode(),
        "index.md": index_markdown(run, reports, names).encode(),
    }
    if run.robustness is not None:
        contents["robustness.png"] = family_curves_png(run.robustness)
    for name, content in contents.items():
        write_atomic(out_dir / name, content)
    return out_dir / "index.md"


def report_run(
    files: RunFiles,
    card_path: Path,
    out_dir: Path,
    *,
    data_dir: Path | None,
    quick: bool,
    source: FolderSource | None,
) -> Path:
    """The report of a finished run from its folder: the artefacts first (a run that never
    finished fails before the data set is read), then the data split as the run trained on it."""
    run = load_run(files, card_path)
    dataset, train, validation = load_data(data_dir, quick, files, source)
    train, validation = joined_as_recorded(files, train, validation)
    return write_report(run, dataset.test, train, validation, out_dir)
