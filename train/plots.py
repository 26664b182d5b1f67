"""The report's figures, drawn from saved scores and images (train/report.py writes them).

Figures are drawn on `matplotlib.figure.Figure` objects, which render through Agg without pyplot:
no global figure state, no display, nothing to close.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from train import metrics
from train.data import Split

# ~90 dpi keeps a whole report well under 2 MB while 8-point captions stay legible.
DPI = 90
# The two models the figures compare: the float reference and the INT8 model that ships.
MODEL_TITLES = {"float_keras": "float (Keras)", "int8_tflite": "INT8 (TFLite)"}
CURVE_METRICS = ("loss", "accuracy", "precision", "recall")
GALLERY_SIZE = 32  # 4 rows of 8: enough to see a pattern, small enough to read every caption
GRID_SIDE = 5
PROBABILITY_EXAMPLES = 6
SAMPLES_PER_CLASS = 8
CORRECT_COLOUR, WRONG_COLOUR = "tab:blue", "tab:red"
FloatAndInt8 = tuple[np.ndarray, np.ndarray]  # both models' scores for the same images


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
    images: np.ndarray, labels: np.ndarray, scores: FloatAndInt8, names: tuple[str, ...]
) -> bytes:
    float_scores, int8_scores = scores
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
    images: np.ndarray, labels: np.ndarray, scores: FloatAndInt8, names: tuple[str, ...]
) -> bytes:
    float_scores, int8_scores = scores
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
        for offset, kind, kind_scores in zip((-0.2, 0.2), MODEL_TITLES, scores, strict=True):
            bar_axes.barh(
                positions + offset, kind_scores[index], height=0.4, label=MODEL_TITLES[kind]
            )
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
