"""The evaluation report: plots and Markdown from a run's saved histories and predictions.

Runs no model. Every figure comes from the artefacts `train.evaluate` and the training steps left
in the run folder (histories, `predictions.npz`, `evaluation.json`), so the numbers here are the
numbers in the model card.

Figures are drawn on `matplotlib.figure.Figure` objects, which render through Agg without pyplot:
no global figure state, no display, nothing to close.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from train import metrics
from train.artifacts import RunFiles, read_json, recorded_recipe, write_atomic
from train.data import Split, subset

# ~90 dpi keeps a whole report well under 2 MB while 8-point captions stay legible.
DPI = 90
# The two models the figures compare: the float reference and the INT8 model that ships.
MODEL_TITLES = {"float_keras": "float (Keras)", "int8_tflite": "INT8 (TFLite)"}
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
CURVE_METRICS = ("loss", "accuracy", "precision", "recall")
GALLERY_SIZE = 32  # 4 rows of 8: enough to see a pattern, small enough to read every caption
GRID_SIDE = 5
PROBABILITY_EXAMPLES = 6
SAMPLES_PER_CLASS = 8
CORRECT_COLOUR, WRONG_COLOUR = "tab:blue", "tab:red"


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
    card: dict[str, Any] | None
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


def _read_card(card_path: Path, evaluation: dict[str, Any]) -> dict[str, Any] | None:
    """The model card, when it describes this evaluation (a card from another run is ignored)."""
    if not card_path.is_file():
        return None
    card = _read_json(card_path)
    accuracy = evaluation["accuracy"]
    matches = isinstance(card, dict) and (
        card.get("test_images") == evaluation["test_images"]
        and card.get("int8_accuracy") == accuracy["int8_tflite"]
        and card.get("float_accuracy") == accuracy["float_keras"]
    )
    if not matches:
        print(
            f"warning: {card_path} is from another evaluation; model size left out of the report",
            file=sys.stderr,
        )
        return None
    return dict(card)


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


# --- choosing images ----------------------------------------------------------------------------


def misclassified_indices(labels: np.ndarray, scores: np.ndarray, count: int) -> np.ndarray:
    """Wrongly classified images, the most confident mistakes first."""
    predictions = scores.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = scores[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def disagreement_indices(
    float_scores: np.ndarray, int8_scores: np.ndarray, count: int
) -> np.ndarray:
    """Images where the float and INT8 models predict different classes, in test-set order."""
    differ = float_scores.argmax(axis=1) != int8_scores.argmax(axis=1)
    return np.flatnonzero(differ)[:count]


def probability_example_indices(
    labels: np.ndarray, float_predictions: np.ndarray, int8_predictions: np.ndarray, count: int
) -> np.ndarray:
    """A few images of each outcome: both right, the two models disagree, both wrong."""
    outcomes = [
        (float_predictions == labels) & (int8_predictions == labels),
        float_predictions != int8_predictions,
        (float_predictions == int8_predictions) & (float_predictions != labels),
    ]
    per_outcome = max(count // len(outcomes), 1)
    chosen = [np.flatnonzero(outcome)[:per_outcome] for outcome in outcomes]
    picked = list(dict.fromkeys(int(i) for i in np.concatenate(chosen)))
    # Top up from the test set's order when an outcome is rare (a perfect model has no mistakes).
    for index in range(len(labels)):
        if len(picked) >= count:
            break
        if index not in picked:
            picked.append(index)
    return np.array(picked[:count], dtype=np.int64)


# --- figures ------------------------------------------------------------------------------------


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _show_image(axes: Axes, image: np.ndarray) -> None:
    # Nearest-neighbour: a 32 x 32 image blurred by interpolation hides what the model saw.
    axes.imshow(image, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])


def training_curves_png(history: list[dict[str, Any]], model_name: str) -> bytes:
    epochs = np.arange(1, len(history) + 1)
    qat_epochs = [number for number, e in zip(epochs, history, strict=True) if e["phase"] == "qat"]
    float_count = len(history) - len(qat_epochs)
    figure = Figure(figsize=(11, 7), layout="constrained")
    figure.suptitle(
        f"{model_name}: training curves, {float_count} float then {len(qat_epochs)} QAT epochs",
        fontsize=13,
    )
    marker = "o" if len(history) <= 40 else None
    for axes, name in zip(figure.subplots(2, 2).flat, CURVE_METRICS, strict=True):
        if qat_epochs:
            axes.axvspan(
                min(qat_epochs) - 0.5,
                max(qat_epochs) + 0.5,
                color="tab:orange",
                alpha=0.15,
                label="QAT epochs",
            )
        axes.plot(epochs, [e[name] for e in history], marker=marker, label="train")
        # A final run on all training images has no validation curve.
        if any(f"val_{name}" in e for e in history):
            validation = [e.get(f"val_{name}", np.nan) for e in history]
            axes.plot(epochs, validation, marker=marker, linestyle="--", label="validation")
        axes.set_title(name)
        axes.set_xlabel("epoch (float, then QAT)")
        axes.set_ylabel(name)
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    # One legend for all four panels, outside them, where it cannot hide a curve.
    figure.legend(*figure.axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    return png_bytes(figure)


def confusion_png(
    labels: np.ndarray, predictions: np.ndarray, model_title: str, names: tuple[str, ...]
) -> bytes:
    """Counts and row-normalised shares side by side, for one model."""
    counts = metrics.confusion_matrix(labels, predictions, len(names))
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
    accuracy = float(np.trace(counts)) / max(int(counts.sum()), 1)
    figure = Figure(figsize=(14, 6.4), layout="constrained")
    figure.suptitle(
        f"{model_title}: confusion on {len(labels)} test images (accuracy {100 * accuracy:.2f}%)",
        fontsize=13,
    )
    panels = ((counts, "images"), (100 * shares, "% of the true class (row-normalised)"))
    for axes, (values, title) in zip(figure.subplots(1, 2), panels, strict=True):
        image = axes.imshow(values, cmap="Blues", vmin=0)
        peak = float(values.max()) or 1.0
        for (row, column), value in np.ndenumerate(values):
            colour = "white" if value > peak / 2 else "black"
            axes.text(
                column, row, f"{value:.0f}", ha="center", va="center", fontsize=8, color=colour
            )
        axes.set_title(title)
        axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
        axes.set_yticks(range(len(names)), names)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        figure.colorbar(image, ax=axes, shrink=0.8)
    return png_bytes(figure)


def gallery_png(
    images: np.ndarray, captions: list[str], colours: list[str], title: str, columns: int = 8
) -> bytes:
    """Images in a grid, each with a caption of a few lines."""
    rows = max(-(-len(images) // columns), 1)
    lines = max((caption.count("\n") + 1 for caption in captions), default=1)
    figure = Figure(
        figsize=(1.6 * columns, (1.5 + 0.17 * lines) * rows + 0.6), layout="constrained"
    )
    figure.suptitle(title, fontsize=12)
    for index, axes in enumerate(np.atleast_1d(figure.subplots(rows, columns)).flat):
        if index >= len(images):
            axes.set_axis_off()
            continue
        _show_image(axes, images[index])
        axes.set_title(captions[index], fontsize=8, color=colours[index])
    if len(images) == 0:
        figure.text(0.5, 0.45, "no such images", ha="center", fontsize=12)
    return png_bytes(figure)


def _label_and_score(scores: np.ndarray, names: tuple[str, ...]) -> str:
    predicted = int(scores.argmax())
    return f"{names[predicted]} {scores[predicted]:.2f}"


def misclassified_png(
    images: np.ndarray, labels: np.ndarray, scores: np.ndarray, kind: str, names: tuple[str, ...]
) -> bytes:
    chosen = misclassified_indices(labels, scores, GALLERY_SIZE)
    captions = [
        f"true: {names[labels[i]]}\npred: {_label_and_score(scores[i], names)}" for i in chosen
    ]
    title = (
        f"{MODEL_TITLES[kind]}: the {len(chosen)} most confident mistakes "
        f"of {int(np.sum(scores.argmax(axis=1) != labels))} (predicted class and its score)"
    )
    return gallery_png(images[chosen], captions, [WRONG_COLOUR] * len(chosen), title)


def disagreements_png(
    images: np.ndarray,
    labels: np.ndarray,
    float_scores: np.ndarray,
    int8_scores: np.ndarray,
    names: tuple[str, ...],
) -> bytes:
    chosen = disagreement_indices(float_scores, int8_scores, GALLERY_SIZE)
    total = int(np.sum(float_scores.argmax(axis=1) != int8_scores.argmax(axis=1)))
    captions = [
        f"true: {names[labels[i]]}\nfloat: {_label_and_score(float_scores[i], names)}\n"
        f"INT8: {_label_and_score(int8_scores[i], names)}"
        for i in chosen
    ]
    colours = [
        CORRECT_COLOUR if int8_scores[i].argmax() == labels[i] else WRONG_COLOUR for i in chosen
    ]
    title = (
        f"float and INT8 disagree on {total} of {len(labels)} test images; the first "
        f"{len(chosen)} (blue: INT8 right, red: INT8 wrong)"
    )
    return gallery_png(images[chosen], captions, colours, title)


def prediction_grid_png(
    images: np.ndarray, labels: np.ndarray, scores: np.ndarray, kind: str, names: tuple[str, ...]
) -> bytes:
    shown = min(GRID_SIDE * GRID_SIDE, len(labels))
    predictions = scores.argmax(axis=1)
    captions = [
        f"{_label_and_score(scores[i], names)}\n(true: {names[labels[i]]})" for i in range(shown)
    ]
    colours = [
        CORRECT_COLOUR if predictions[i] == labels[i] else WRONG_COLOUR for i in range(shown)
    ]
    title = (
        f"{MODEL_TITLES[kind]} on the first {shown} test images\n"
        "predicted class and confidence (blue: correct, red: wrong)"
    )
    return gallery_png(images[:shown], captions, colours, title, columns=GRID_SIDE)


def probability_bars_png(
    images: np.ndarray,
    labels: np.ndarray,
    float_scores: np.ndarray,
    int8_scores: np.ndarray,
    names: tuple[str, ...],
) -> bytes:
    chosen = probability_example_indices(
        labels, float_scores.argmax(axis=1), int8_scores.argmax(axis=1), PROBABILITY_EXAMPLES
    )
    predicted = np.stack([float_scores.argmax(axis=1), int8_scores.argmax(axis=1)], axis=1)
    pairs_per_row = 2
    rows = max(-(-len(chosen) // pairs_per_row), 1)
    figure = Figure(figsize=(13, 3.2 * rows + 0.6), layout="constrained")
    figure.suptitle(
        "Class scores: float and INT8 side by side (true class in bold green)", fontsize=13
    )
    grid = figure.subplots(rows, 2 * pairs_per_row, width_ratios=[1, 2.4] * pairs_per_row)
    grid = np.atleast_2d(grid)
    positions = np.arange(len(names))
    for slot in range(rows * pairs_per_row):
        image_axes, bar_axes = grid[slot // pairs_per_row, 2 * (slot % pairs_per_row) :][:2]
        if slot >= len(chosen):
            image_axes.set_axis_off()
            bar_axes.set_axis_off()
            continue
        index = chosen[slot]
        _show_image(image_axes, images[index])
        image_axes.set_title(
            f"test image {index}\n{_outcome(labels[index], predicted[index])}", fontsize=9
        )
        for offset, (kind, scores) in zip(
            (-0.2, 0.2), (("float_keras", float_scores), ("int8_tflite", int8_scores)), strict=True
        ):
            bar_axes.barh(positions + offset, scores[index], height=0.4, label=MODEL_TITLES[kind])
        bar_axes.set_yticks(positions, names, fontsize=8)
        bar_axes.invert_yaxis()
        true_tick = bar_axes.get_yticklabels()[labels[index]]
        true_tick.set_color("tab:green")
        true_tick.set_fontweight("bold")
        bar_axes.set_xlim(0, 1)
        bar_axes.set_xlabel("score")
        bar_axes.set_title(
            f"true {names[labels[index]]} · float {names[float_scores[index].argmax()]}"
            f" · INT8 {names[int8_scores[index].argmax()]}",
            fontsize=9,
        )
        bar_axes.grid(axis="x", alpha=0.3)
    figure.legend(*grid[0, 1].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return png_bytes(figure)


def _outcome(label: int, float_and_int8: np.ndarray) -> str:
    float_prediction, int8_prediction = (int(p) for p in float_and_int8)
    if float_prediction != int8_prediction:
        return "float and INT8 disagree"
    return "both right" if float_prediction == label else "both wrong"


def _sample_mosaic(split: Split, per_class: int, gap: int = 2) -> np.ndarray:
    """One image: a row per class, the first `per_class` images of that class, white gaps."""
    side = split.images.shape[1]
    cell = side + gap
    mosaic = np.full((split.classes * cell, per_class * cell, 3), 255, dtype=np.uint8)
    for label in range(split.classes):
        for column, index in enumerate(np.flatnonzero(split.labels == label)[:per_class]):
            top, left = label * cell, column * cell
            mosaic[top : top + side, left : left + side] = split.images[index]
    return mosaic


def data_overview_png(train: Split, validation: Split, test: Split) -> bytes:
    names = train.class_names
    figure = Figure(figsize=(14, 6.6), layout="constrained")
    figure.suptitle("The data the model was trained and tested on", fontsize=13)
    sample_axes, count_axes = figure.subplots(1, 2, width_ratios=[1, 1.3])
    mosaic = _sample_mosaic(train, SAMPLES_PER_CLASS)
    sample_axes.imshow(mosaic, interpolation="nearest")
    row_height = mosaic.shape[0] // len(names)
    row_centres = [row_height * label + train.images.shape[1] // 2 for label in range(len(names))]
    sample_axes.set_yticks(row_centres, names)
    sample_axes.set_xticks([])
    sample_axes.set_title(f"training images, the first {SAMPLES_PER_CLASS} of each class")
    positions = np.arange(len(names))
    named = (("train", train), ("validation", validation), ("test (evaluated)", test))
    # A final run on all training images has no validation split to draw.
    splits = tuple((name, split) for name, split in named if len(split))
    width = 0.8 / len(splits)
    tallest = 0
    for number, (name, split) in enumerate(splits):
        counts = np.bincount(split.labels, minlength=len(names))
        tallest = max(tallest, int(counts.max()))
        offset = (number - (len(splits) - 1) / 2) * width
        count_axes.bar(positions + offset, counts, width, label=f"{name}: {len(split):,} images")
    count_axes.set_xticks(positions, names, rotation=45, ha="right")
    count_axes.set_ylabel("images")
    count_axes.set_xlabel("class")
    count_axes.set_title("images per class")
    # Headroom above the tallest bar keeps the legend off the bars.
    count_axes.set_ylim(0, 1.25 * tallest)
    count_axes.legend(loc="upper right")
    count_axes.grid(axis="y", alpha=0.3)
    return png_bytes(figure)


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
    if run.card is not None:
        int8_bytes, float_bytes = run.card["int8_model"]["bytes"], run.card["float_model"]["bytes"]
        lines.append(
            f"- model size: INT8 {int8_bytes:,} bytes ({int8_bytes / 1024:.1f} KiB), "
            f"float {float_bytes:,} bytes ({float_bytes / 1024:.1f} KiB), "
            f"{run.card['parameters']:,} parameters (from `{run.card_path}`)"
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
    from train.robustness import markdown_table

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
        "disagreements.png": disagreements_png(images, labels, float_scores, int8_scores, names),
        "predictions_int8.png": prediction_grid_png(
            images, labels, int8_scores, "int8_tflite", names
        ),
        "probabilities.png": probability_bars_png(images, labels, float_scores, int8_scores, names),
        "data_overview.png": data_overview_png(train, validation, evaluated),
        "per_class.json": (json.dumps(reports, indent=1) + "\n").encode(),
        "index.md": index_markdown(run, reports, names).encode(),
    }
    if run.robustness is not None:
        from train.robustness import family_curves_png

        contents["robustness.png"] = family_curves_png(run.robustness)
    for name, content in contents.items():
        write_atomic(out_dir / name, content)
    return out_dir / "index.md"
